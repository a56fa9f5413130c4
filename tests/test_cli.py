"""The command line ``python -m awdlib`` and ``awdlib.generate``, on real PTB at smoke scale."""

import math
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import awdlib
from awdlib.__main__ import CommandError, apply_settings, main
from awdlib.checkpoint import load_checkpoint, load_model
from awdlib.generate import sample_words

REPO = Path(__file__).resolve().parents[1]
# Not installed on the GPU machine (it has torch, numpy, tqdm, matplotlib): the CLI must not need them.
NOTEBOOK_EXTRAS = ("IPython", "ipykernel", "ipywidgets", "jupyter_client", "jupyter_core",
                   "jupyterlab", "nbformat", "papermill", "pooch", "matplotlib")


def run_without_extras(code: str, env=None) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter where importing any notebook extra raises ImportError."""
    blocker = f"import sys\nsys.modules.update(dict.fromkeys({NOTEBOOK_EXTRAS!r}))\n"
    return subprocess.run([sys.executable, "-c", blocker + textwrap.dedent(code)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """One epoch of the smoke preset on real PTB, checkpointed by the command line."""
    folder = tmp_path_factory.mktemp("smoke-run")
    code = main(["--threads", "1", "train", "--preset", "smoke", "--epochs", "1",
                 "--checkpoint-dir", str(folder), "--no-download"])
    assert code == 0
    return folder


def test_train_writes_last_and_best_checkpoints_after_one_epoch(smoke_run):
    assert (smoke_run / "best.pt").is_file() and (smoke_run / "last.pt").is_file()
    state = load_checkpoint(smoke_run / "last.pt")
    assert state["epoch"] == 1 and len(state["history"]["records"]) == 1
    assert state["model_config"]["emb_size"] == awdlib.PRESETS["smoke"].model["emb_size"]


def test_evaluate_prints_the_checkpoints_test_perplexity(smoke_run, capsys):
    assert main(["evaluate", str(smoke_run / "best.pt"), "--split", "test"]) == 0
    printed = float(re.search(r"perplexity ([\d.]+)", capsys.readouterr().out).group(1))
    preset = awdlib.PRESETS["smoke"]  # the run's data slice: 5% of the test split
    loss = awdlib.evaluate(load_model(smoke_run / "best.pt"), preset.corpus().test, preset.train.bptt,
                           preset.train.test_batch_size)
    assert printed == pytest.approx(math.exp(loss), abs=0.01)


def test_resume_continues_the_epoch_count(smoke_run, tmp_path, capsys):
    folder = tmp_path / "run"
    shutil.copytree(smoke_run, folder)
    first_epoch = load_checkpoint(folder / "last.pt")["history"]["records"][0]
    assert main(["--threads", "1", "train", "--preset", "smoke", "--epochs", "2",
                 "--checkpoint-dir", str(folder), "--resume", "--no-download"]) == 0
    assert "resuming after epoch 1" in capsys.readouterr().out
    state = load_checkpoint(folder / "last.pt")
    assert state["epoch"] == 2
    assert [r["epoch"] for r in state["history"]["records"]] == [1, 2]
    assert state["history"]["records"][0] == first_epoch  # epoch 1 kept, not trained again


def test_generate_prints_n_words_from_the_vocabulary_reproducibly(smoke_run, capsys):
    args = ["generate", str(smoke_run / "best.pt"), "--words", "12", "--seed", "3", "--start", "the"]
    assert main(args) == 0
    text = capsys.readouterr().out.removesuffix("\n")
    vocab = awdlib.PRESETS["smoke"].corpus().vocab
    words = text.split()
    assert len(words) + text.count("\n") == 12  # each <eos> is printed as a line break
    assert all(w in vocab for w in words)
    assert main(args) == 0
    assert capsys.readouterr().out.removesuffix("\n") == text


def test_sample_words_returns_exactly_n_vocabulary_words_and_follows_the_seed(tiny_corpus):
    torch.manual_seed(0)
    model = awdlib.AWDLSTM(awdlib.AWDLSTMConfig(len(tiny_corpus.vocab), 8, 8, n_layers=2))
    words = sample_words(model, tiny_corpus.vocab, 30, seed=5)
    assert len(words) == 30 and all(w in tiny_corpus.vocab for w in words)
    assert sample_words(model, tiny_corpus.vocab, 30, seed=5) == words
    assert sample_words(model, tiny_corpus.vocab, 30, seed=6) != words


def test_low_temperature_concentrates_on_the_most_likely_word(tiny_corpus):
    torch.manual_seed(0)
    model = awdlib.AWDLSTM(awdlib.AWDLSTMConfig(len(tiny_corpus.vocab), 8, 8, n_layers=2)).eval()
    out = model(tiny_corpus.vocab.encode("<eos>").view(1, 1), model.init_hidden(1))
    greedy = tiny_corpus.vocab.itos[int(out.logits[-1, 0].argmax())]
    firsts = {sample_words(model, tiny_corpus.vocab, 1, temperature=1e-3, seed=s)[0] for s in range(5)}
    assert firsts == {greedy}


def test_set_maps_keys_onto_model_train_and_preset_fields():
    preset = apply_settings(awdlib.PRESETS["smoke"], ["model.wdrop=0.3", "train.lr=20",
                                                      "train_fraction=0.2", "train.time_budget=60",
                                                      "model.tie_weights=false"])
    assert preset.model["wdrop"] == 0.3 and preset.model["tie_weights"] is False
    assert preset.train.lr == 20.0 and isinstance(preset.train.lr, float)
    assert preset.train.time_budget == 60 and preset.train_fraction == 0.2
    with pytest.raises(CommandError, match="unknown setting 'model.wdorp'"):
        apply_settings(preset, ["model.wdorp=0.3"])
    with pytest.raises(CommandError, match="expected an integer"):
        apply_settings(preset, ["train.epochs=ten"])


def test_bad_checkpoint_is_reported_in_one_line_with_a_nonzero_exit(tmp_path, capsys):
    bad = tmp_path / "best.pt"
    bad.write_text("not a checkpoint")
    assert main(["evaluate", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "is not an awdlib checkpoint" in err


def test_missing_dataset_prints_the_librarys_message_without_a_traceback(tmp_path):
    env = {**os.environ, "AWDLIB_DATA": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    result = run_without_extras("""
        from awdlib.__main__ import main
        sys.exit(main(["train", "--preset", "smoke", "--no-download"]))
    """, env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "Dataset 'ptb' not found" in result.stderr and "AWDLIB_DATA" in result.stderr


def test_import_and_cli_need_none_of_the_notebook_extras(smoke_run):
    result = run_without_extras(f"""
        import awdlib, awdlib.generate
        from awdlib.__main__ import main
        assert main(["data", "ptb", "--no-download"]) == 0
        assert main(["generate", {str(smoke_run / "best.pt")!r}, "--words", "3", "--seed", "0"]) == 0
    """)
    assert result.returncode == 0, result.stderr
    assert "vocab 10,000 words" in result.stdout


def test_evaluate_reads_a_checkpoint_without_run_json_on_the_whole_split(smoke_run, tmp_path, capsys,
                                                                         ptb):
    # Checkpoints written by the notebooks' Trainer have no run.json: the corpus name stored in the
    # checkpoint ("ptb[0.01]") says which dataset; valid and test are then used whole.
    shutil.copy(smoke_run / "best.pt", tmp_path / "best.pt")
    assert main(["evaluate", str(tmp_path / "best.pt"), "--split", "valid", "--batch-size", "20"]) == 0
    out = capsys.readouterr().out
    assert f"{len(ptb.valid):,} tokens of ptb[0.01]," in out  # train fraction from the name
    assert re.search(r"perplexity [\d.]+", out)
