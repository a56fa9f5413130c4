"""notebooks/execute.py: papermill with a kernel client whose waits cannot hang past their deadline."""

import asyncio
import importlib.util
import time
from pathlib import Path
from queue import Empty

import pytest

pytest.importorskip("papermill")
zmq_asyncio = pytest.importorskip("zmq.asyncio")
import zmq  # noqa: E402
from jupyter_client.session import Session  # noqa: E402

PATH = Path(__file__).resolve().parents[1] / "notebooks" / "execute.py"
spec = importlib.util.spec_from_file_location("notebook_execute", PATH)
execute = importlib.util.module_from_spec(spec)
spec.loader.exec_module(execute)


async def _channel_pair():
    context = zmq_asyncio.Context()
    receiver, sender = context.socket(zmq.PAIR), context.socket(zmq.PAIR)
    port = receiver.bind_to_random_port("tcp://127.0.0.1")
    sender.connect(f"tcp://127.0.0.1:{port}")
    session = Session()
    return context, execute.SlicedChannel(receiver, session), sender, session


def test_a_sliced_wait_returns_a_message_sent_while_it_waits_and_gives_up_at_its_deadline():
    async def scenario():
        context, channel, sender, session = await _channel_pair()
        try:
            async def send_later():
                await asyncio.sleep(3 * execute.SLICE_S)  # lands in a later slice than the first
                session.send(sender, "execute_reply", {"status": "ok"})
            task = asyncio.ensure_future(send_later())
            msg = await channel.get_msg(timeout=10)
            await task
            assert msg["msg_type"] == "execute_reply" and msg["content"] == {"status": "ok"}

            started = time.monotonic()
            with pytest.raises(Empty):
                await channel.get_msg(timeout=0.5)
            waited = time.monotonic() - started
            assert 0.5 <= waited < 0.5 + 2 * execute.SLICE_S, waited
        finally:
            context.destroy(linger=0)
    asyncio.run(scenario())


def test_a_missed_wake_up_delays_a_message_by_at_most_one_slice(monkeypatch):
    # the bug, simulated: a wait does not notice a message that arrives during it until its timeout
    arrived_at = time.monotonic() + 2 * execute.SLICE_S

    async def blind_get_msg(self, timeout=None):
        await asyncio.sleep(timeout)
        if time.monotonic() >= arrived_at:
            return {"msg_type": "execute_reply"}
        raise Empty

    monkeypatch.setattr(execute.AsyncZMQSocketChannel, "get_msg", blind_get_msg)
    channel = execute.SlicedChannel.__new__(execute.SlicedChannel)
    msg = asyncio.run(channel.get_msg(timeout=30))
    late = time.monotonic() - arrived_at
    assert msg["msg_type"] == "execute_reply" and late < 2 * execute.SLICE_S, late


def test_the_kernel_manager_hands_out_clients_with_sliced_channels():
    client = execute.SlicedKernelManager(kernel_name="python3").client()
    assert isinstance(client, execute.SlicedKernelClient)
    assert client.shell_channel_class is execute.SlicedChannel
    assert client.iopub_channel_class is execute.SlicedChannel


def test_a_notebook_runs_in_place_without_an_injected_cell(tmp_path):
    import nbformat
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import os\nprint(os.getcwd())")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "tiny.ipynb"
    nbformat.write(nb, path)
    execute.main([str(path), "--timeout", "60"])
    cells = nbformat.read(path, as_version=4).cells
    assert len(cells) == 1
    assert cells[0].outputs[0]["text"].strip() == str(execute.NOTEBOOK_DIR)
