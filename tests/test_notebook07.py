"""Notebook 07 (the full recipe on a GPU): a finished run stays finished, the trained stage's row is
filled whoever trained the run, and without a GPU the default "Run All" explains itself without a
traceback. Real smoke-scale data (AWDLIB_DATA), one torch thread."""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

import awdlib
from awdlib.checkpoint import load_checkpoint

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "07_full_scale_gpu.ipynb"


@pytest.mark.slow
def test_a_smoke_run_whose_fine_tuning_criterion_fired_trains_nothing_when_resumed():
    # the notebook's scenario through the library: train, fine-tune until the criterion stops it,
    # resume from last.pt and ask for len(history) + 40 epochs, as the notebook used to
    smoke = awdlib.PRESETS["smoke"].with_train(log_epochs=False)
    corpus = smoke.corpus()
    with tempfile.TemporaryDirectory() as folder:
        trainer = smoke.trainer(corpus, checkpoint_dir=folder)
        trainer.fit()
        trainer.finetune(40)
        assert trainer.finetuning_done and trainer.epoch < smoke.train.epochs + 40
        assert "non-monotonic criterion" in trainer.history.stop_reason
        last = Path(folder) / "last.pt"
        saved = last.read_bytes()

        resumed = awdlib.Trainer.resume(last, corpus, log_epochs=False)
        epoch, steps = resumed.epoch, resumed.optimizer.steps
        history = resumed.fit(len(resumed.history.records) + 40)
        assert resumed.epoch == epoch == trainer.epoch and resumed.optimizer.steps == steps
        assert len(history.records) == epoch
        assert "fine-tuning has finished" in history.events[-1]
        resumed.finetune(40)
        assert resumed.epoch == epoch and resumed.optimizer.steps == steps
        assert last.read_bytes() == saved  # not even a checkpoint written


def execute(run_notebook, tmp_path, name, **parameters):
    """Run notebook 07 with papermill in ``tmp_path``; its outputs' texts, one string per cell."""
    out = tmp_path / name
    run_notebook(NOTEBOOK, out, parameters={"threads": 1, **parameters}, cwd=tmp_path, timeout=120,
                 progress_bar=False)
    cells = [c for c in json.loads(out.read_text())["cells"] if c["cell_type"] == "code"]
    for cell in cells:
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error", output
            assert "Traceback" not in "".join(output.get("text", "")), output
    return ["".join("".join(o.get("text", "")) for o in c.get("outputs", [])) for c in cells]


def printed(texts, phrase):
    return [t for t in texts if phrase in t]


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU the default trains the full recipe")
def test_run_all_at_the_default_full_scale_on_a_cpu_prints_one_paragraph_and_trains_nothing(
        tmp_path, monkeypatch, run_notebook):
    monkeypatch.delenv("AWDLIB_SCALE", raising=False)  # make test sets it to smoke
    texts = execute(run_notebook, tmp_path, "full.ipynb")  # no parameter but threads
    assert len(printed(texts, "NOTHING WILL TRAIN HERE")) == 1
    paragraph = printed(texts, "NOTHING WILL TRAIN HERE")[0]
    assert "scale = 'smoke'" in paragraph and "GPU" in paragraph and "stored" in paragraph
    assert printed(texts, "not run: no GPU")  # the table, with the published columns only
    assert not printed(texts, "a fresh model") and not (tmp_path / "results").exists()


@pytest.mark.slow
def test_running_the_notebook_again_on_its_finished_run_trains_nothing(tmp_path, run_notebook):
    folder = tmp_path / "run"
    run = dict(scale="smoke", resume=True, checkpoint_dir=str(folder))
    first = execute(run_notebook, tmp_path, "first.ipynb", **run)
    assert printed(first, "a fresh model") and printed(first, "epoch 1 took")
    stages = json.loads((folder / "stages.json").read_text())
    assert all(value is not None for value in stages["trained"])  # trained here: test measured
    checkpoints = {name: (folder / name).read_bytes() for name in ("last.pt", "best.pt")}

    again = execute(run_notebook, tmp_path, "again.ipynb", **run)
    epochs = load_checkpoint(folder / "last.pt")["epoch"]
    assert printed(again, f"resumed after epoch {epochs} (finetune)")
    assert printed(again, f"fine-tuning finished at epoch {epochs}")
    assert printed(again, "nothing to train") and not printed(again, "a fresh model")
    assert {name: (folder / name).read_bytes() for name in checkpoints} == checkpoints
    assert json.loads((folder / "stages.json").read_text()) == stages


@pytest.mark.slow
def test_a_run_trained_and_finetuned_from_the_command_line_is_reported_with_its_trained_row(
        tmp_path, run_notebook):
    folder = tmp_path / "cli"
    for command in (["train", "--preset", "smoke"], ["finetune", "--epochs", "40"]):
        subprocess.run([sys.executable, "-m", "awdlib", "--threads", "1", *command,
                        "--checkpoint-dir", str(folder)], check=True, capture_output=True)
    state = load_checkpoint(folder / "last.pt")
    assert state["phase"] == "finetune" and state["optimizer"]["trigger"]["fired_at"] is not None
    saved = (folder / "last.pt").read_bytes()

    texts = execute(run_notebook, tmp_path, "cli.ipynb", scale="smoke", resume=True,
                    checkpoint_dir=str(folder))
    assert printed(texts, f"fine-tuning finished at epoch {state['epoch']} (criterion met); "
                          f"nothing to train")
    assert (folder / "last.pt").read_bytes() == saved
    trained = [r["valid_ppl"] for r in state["history"]["records"] if r["phase"] == "train"]
    valid, test = json.loads((folder / "stages.json").read_text())["trained"]
    assert valid == pytest.approx(min(trained)) and test is None  # fine-tuning replaced best.pt
    table = printed(texts, "NOT a result")[0]
    row = next(line for line in table.splitlines() if line.startswith("trained"))
    assert row.split()[1:3] == [f"{min(trained):.2f}", "-"]
