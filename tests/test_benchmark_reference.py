"""The benchmarks' baseline (benchmarks/reference.py) has the AWD-LSTM's shape and interface, and the
step benchmark that compares the two, and the dynamic evaluation benchmark, run end to end."""

import os
import subprocess
import sys
from pathlib import Path

import torch

from awdlib import AWDLSTM, AWDLSTMConfig

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.reference import PlainLSTMLM  # noqa: E402


def test_plain_model_has_the_awd_lstm_sizes_and_tied_weights():
    awd, plain = AWDLSTM(AWDLSTMConfig(50, 8, 16)), PlainLSTMLM(50, 8, 16)
    assert sum(p.numel() for p in plain.parameters()) == awd.num_parameters()
    assert [r.hidden_size for r in plain.rnns] == [16, 16, 8]
    assert plain.decoder.weight is plain.encoder.weight


def test_plain_model_returns_logits_and_hidden_like_the_awd_lstm():
    plain = PlainLSTMLM(50, 8, 16).double()
    hidden = plain.init_hidden(3)
    assert all(h.dtype == torch.float64 and h.shape == (1, 3, size)
               for (h, c), size in zip(hidden, (16, 16, 8)))
    out = plain(torch.randint(0, 50, (5, 3)), hidden)
    assert out.logits.shape == (5, 3, 50)
    assert [h.shape for h, _ in out.hidden] == [(1, 3, 16), (1, 3, 16), (1, 3, 8)]
    # the carried state is the state after the last token, not the initial zeros
    assert not torch.equal(out.hidden[0][0], hidden[0][0])


def test_step_benchmark_prints_one_row_per_size():
    run = subprocess.run([sys.executable, str(REPO / "benchmarks" / "step_speed.py"), "--threads", "1",
                          "--repeats", "2", "--warmup", "0", "--sizes", "8x16", "--vocab", "50",
                          "--batch", "2", "--bptt", "5"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    row = run.stdout.strip().splitlines()[-1].split()
    assert row[0] == "8x16" and float(row[4]) > 0  # the AWD-LSTM / plain tokens/s ratio


def test_dynamic_benchmark_prints_one_row_per_run():
    run = subprocess.run([sys.executable, str(REPO / "benchmarks" / "dynamic_speed.py"), "--threads",
                          "1", "--synthetic", "--tokens", "40", "--repeats", "1", "--stat-batches", "1",
                          "--segment-lens", "5"], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert run.returncode == 0, run.stderr
    rows = [line for line in run.stdout.splitlines() if line.startswith("| ") and "---" not in line]
    assert [row.split(" | ")[0] for row in rows[1:]] == [
        "| plain evaluate, windows of 70", "| plain evaluate, windows of 5",
        "| dynamic_evaluate, segments of 5"]
    assert float(rows[-1].split(" | ")[2]) > 0  # the ratio to plain evaluation
