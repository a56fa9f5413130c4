"""benchmarks/gpu.py, the GPU evidence of issue #10, runs end to end (quick mode on the CPU), and it and
awdlib import nothing a bare GPU machine lacks (Jupyter, ipywidgets, matplotlib, pooch)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCHMARK = REPO / "benchmarks" / "gpu.py"


@pytest.mark.slow
def test_quick_cpu_mode_prints_the_table_last(tmp_path):
    out = tmp_path / "gpu.json"
    run = subprocess.run([sys.executable, str(BENCHMARK), "--device", "cpu", "--quick", "--synthetic",
                          "--json", str(out)], capture_output=True, text=True, timeout=600, cwd=REPO,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    rows = json.loads(out.read_text())["rows"]
    # on a CPU: every configuration once (FP32), AWD-LSTM and nn.LSTM each
    assert [(r["config"], r["model"]) for r in rows] == [
        (c, m) for c in ("ptb", "ptb-b20", "wt2") for m in ("AWD-LSTM", "nn.LSTM")]
    assert lines[-len(rows) - 1].split()[:3] == ["config", "model", "prec"]
    assert "QUICK MODE" in run.stdout and "not a measurement" in run.stdout
    assert [r["batch"] for r in rows[::2]] == [40, 20, 80]
    assert all(r["tokens_per_s"] > 0 and r["valid_ppl"] > 1 and not r["cudnn_rnn"] for r in rows)


def test_gpu_benchmark_and_awdlib_import_no_notebook_packages():
    code = ("import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location('gpu', {str(BENCHMARK)!r})\n"
            "sys.modules['gpu'] = module = importlib.util.module_from_spec(spec)\n"
            "spec.loader.exec_module(module)\n"
            "import awdlib, awdlib.published, awdlib.cache, awdlib.__main__\n"
            "bad = sorted({m.split('.')[0] for m in sys.modules} & {'jupyter_core', 'jupyter_client', "
            "'IPython', 'ipykernel', 'ipywidgets', 'matplotlib', 'pooch', 'papermill', 'nbformat'})\n"
            "print(bad)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
