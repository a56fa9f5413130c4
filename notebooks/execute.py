"""Execute notebooks headless with papermill, in place, as `make demo` and the tests do.

    python notebooks/execute.py notebooks/02_weight_drop.ipynb [...] [--timeout 1800]

The same as the ``papermill`` command (working folder ``notebooks/``, kernel ``python3``) with one fix.
papermill's asyncio kernel client waits for a cell's reply on one socket while it reads the cell's
outputs from another, and under load it can miss the wake-up for the reply: the cell then looks busy
until its timeout, or for ever without one. Measured here on a loaded 2-core machine: a notebook with one
ipywidgets slider hit a 15 s timeout in 3 to 5 of 10 runs (the kernel had replied within 0.4 s; a
blocking client saw no delay in 15 runs), and notebooks 02 and 04 took 74 s and 76 s at smoke scale
instead of about 15 s. Here both channels wait in slices of :data:`SLICE_S` seconds, so a missed wake-up
costs at most one slice.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from queue import Empty

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from jupyter_client.manager import AsyncKernelManager
from traitlets import Type

NOTEBOOK_DIR = Path(__file__).resolve().parent
SLICE_S = 0.2


class SlicedChannel(AsyncZMQSocketChannel):
    """A kernel channel whose wait for the next message looks again every :data:`SLICE_S` seconds."""

    async def get_msg(self, timeout: float | None = None) -> dict:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = SLICE_S if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return await super().get_msg(timeout=min(SLICE_S, left))
            except Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise


class SlicedKernelClient(AsyncKernelClient):
    shell_channel_class = Type(SlicedChannel)
    iopub_channel_class = Type(SlicedChannel)


class SlicedKernelManager(AsyncKernelManager):
    def _client_factory_default(self) -> type:
        return SlicedKernelClient


def execute(notebook: str | Path, output: str | Path | None = None, *, parameters: dict | None = None,
            timeout: int | None = None, cwd: str | Path = NOTEBOOK_DIR, **options) -> dict:
    """Run ``notebook`` with papermill (into ``output``, default in place) and return the executed
    notebook; ``options`` go to ``papermill.execute_notebook``."""
    import papermill

    return papermill.execute_notebook(
        str(notebook), str(output or notebook), kernel_name="python3", parameters=parameters or {},
        cwd=str(cwd), execution_timeout=timeout, kernel_manager_class=SlicedKernelManager, **options)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--timeout", type=int, default=None, help="seconds a cell may take")
    args = parser.parse_args(argv)
    for notebook in args.notebooks:
        started = time.perf_counter()
        execute(notebook, timeout=args.timeout, progress_bar=False)
        print(f"{notebook}: {time.perf_counter() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
