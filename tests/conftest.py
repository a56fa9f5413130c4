import errno
import importlib.util
import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def run_notebook():
    """``notebooks/execute.py``'s ``execute``: papermill with a kernel client that cannot miss a
    cell's reply under load (that file says why)."""
    pytest.importorskip("papermill")
    path = Path(__file__).resolve().parents[1] / "notebooks" / "execute.py"
    spec = importlib.util.spec_from_file_location("notebook_execute", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.execute


@pytest.fixture(scope="session")
def smoke_checkpoint(tmp_path_factory):
    """One epoch of the smoke preset on real PTB, checkpointed by the command line (``best.pt``);
    shared by the cache and dynamic-evaluation command tests, which only read it."""
    from awdlib.__main__ import main
    folder = tmp_path_factory.mktemp("smoke-checkpoint")
    assert main(["--threads", "1", "train", "--preset", "smoke", "--epochs", "1",
                 "--checkpoint-dir", str(folder), "--no-download"]) == 0
    return folder / "best.pt"


@pytest.fixture(scope="session")
def ptb():
    import awdlib
    return awdlib.load_corpus("ptb")


@pytest.fixture
def tiny_corpus():
    import awdlib
    return awdlib.synthetic_corpus(vocab_size=30, n_train=3000, n_eval=600)


class FullDisk:
    """A file on a disk that fills up after its first bytes: ``write`` raises ENOSPC part-way."""

    def __init__(self, file):
        self.file = file

    def write(self, data):
        self.file.write(bytes(data[:100]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()


@pytest.fixture
def full_disk(monkeypatch):
    """Every checkpoint (``.pt``) write runs out of space part-way, as on a full disk."""
    import awdlib.checkpoint

    def opened(path, mode="r", *args, **kwargs):
        file = open(path, mode, *args, **kwargs)
        return FullDisk(file) if str(path).endswith(".pt.tmp") else file
    monkeypatch.setattr(awdlib.checkpoint, "open", opened, raising=False)


def pytest_terminal_summary(terminalreporter):
    from test_notebooks import TIMINGS
    if TIMINGS:
        terminalreporter.write_sep("-", "notebook smoke-scale times (papermill, 1 torch thread)")
        for name, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{name:<45} {seconds:6.1f} s")
