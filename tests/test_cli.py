"""The command line ``python -m awdlib`` and ``awdlib.generate``, on real PTB at smoke scale."""

import errno
import math
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import awdlib
from awdlib.__main__ import EXIT_NOT_FINITE, CommandError, apply_settings, build_parser, main
from awdlib.checkpoint import load_checkpoint, load_model, save_checkpoint
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


# ------------------------------------------------------------------------- reliability (issue 12)
def train(folder, *extra, epochs="1"):
    return main(["--threads", "1", "train", "--preset", "smoke", "--epochs", epochs,
                 "--checkpoint-dir", str(folder), "--no-download", *extra])


def files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("again", [[], ["--overwrite"]])
def test_a_failed_train_into_a_run_folder_leaves_every_file_byte_identical(smoke_run, tmp_path, again):
    folder = tmp_path / "run"
    shutil.copytree(smoke_run, folder)
    before = files(folder)
    assert main(["train", "--preset", "demo", "--set", "train.optimizer=adam", "--checkpoint-dir",
                 str(folder), "--no-download", *again]) == 1
    assert files(folder) == before


def test_a_fresh_train_into_a_folder_holding_a_run_is_refused_until_overwrite(smoke_run, tmp_path,
                                                                             capsys):
    folder = tmp_path / "run"
    shutil.copytree(smoke_run, folder)
    before = files(folder)
    assert train(folder) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--resume" in err and "--overwrite" in err
    assert files(folder) == before
    assert train(folder, "--overwrite", "--set", "train.seed=7") == 0
    state = load_checkpoint(folder / "last.pt")
    assert state["train_config"]["seed"] == 7 and len(state["history"]["records"]) == 1


def test_ctrl_c_says_how_to_continue_and_resume_reaches_the_runs_own_epochs(tmp_path, capsys,
                                                                           monkeypatch):
    real_epoch = awdlib.train.Trainer._train_epoch

    def interrupted_in_epoch_2(trainer, budget):
        if trainer.epoch == 1:
            raise KeyboardInterrupt
        return real_epoch(trainer, budget)
    monkeypatch.setattr(awdlib.train.Trainer, "_train_epoch", interrupted_in_epoch_2)
    folder = tmp_path / "run"
    assert train(folder, epochs="3") == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "interrupted after epoch 1" in err and "--resume" in err
    monkeypatch.undo()
    assert main(["--threads", "1", "train", "--checkpoint-dir", str(folder), "--resume",
                 "--no-download"]) == 0  # no --epochs: the run's own 3, not the preset's 2
    assert load_checkpoint(folder / "last.pt")["epoch"] == 3


def test_ctrl_c_says_how_much_work_it_threw_away(tmp_path, capsys, monkeypatch):
    real_step = awdlib.train.Trainer._step

    def interrupted_in_epoch_2(trainer, *args):
        if trainer.epoch == 1:
            raise KeyboardInterrupt
        return real_step(trainer, *args)
    monkeypatch.setattr(awdlib.train.Trainer, "_step", interrupted_in_epoch_2)
    assert train(tmp_path / "run", epochs="2") == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "the 0 training steps and" in err and "since last.pt was written (after epoch 1)" in err


def test_a_time_budget_pauses_mid_epoch_and_resume_reports_and_finishes_it(tmp_path, capsys,
                                                                           monkeypatch):
    clock = iter(range(10 ** 6))  # one "second" per reading: the budget pauses after a few steps
    monkeypatch.setattr(awdlib.train, "time", SimpleNamespace(perf_counter=lambda: float(next(clock))))
    folder = tmp_path / "run"
    assert train(folder, "--time-budget", "5") == 0
    place = load_checkpoint(folder / "last.pt")["unfinished"]
    assert place is not None and place["steps"] >= 1 and "paused after" in capsys.readouterr().out
    monkeypatch.undo()
    assert main(["--threads", "1", "train", "--checkpoint-dir", str(folder), "--resume",
                 "--no-download", "--set", "train.time_budget=none"]) == 0
    state = load_checkpoint(folder / "last.pt")
    assert state["epoch"] == 1 and state["unfinished"] is None


@pytest.mark.parametrize("name", ["ptb", "wt2", "ptb-official", "wt2-official"])
def test_the_full_scale_presets_are_accepted_by_the_command_line(name):
    args = build_parser().parse_args(["train", "--preset", name, "--set", "train.epochs=3"])
    preset = apply_settings(awdlib.PRESETS[args.preset], args.set)
    assert preset.train.epochs == 3 and preset.published["fine-tuned"][1] > 0


def test_a_non_finite_loss_exits_with_its_own_code(tmp_path, capsys):
    assert EXIT_NOT_FINITE not in (0, 1, 2)
    assert train(tmp_path / "run", "--set", "train.lr=1e8") == EXIT_NOT_FINITE
    assert "error: non-finite loss" in capsys.readouterr().err


def test_an_evaluation_that_is_not_finite_exits_with_the_same_code(smoke_run, tmp_path, capsys):
    state = load_checkpoint(smoke_run / "best.pt")
    state["model"] = {k: torch.full_like(v, math.nan) for k, v in state["model"].items()}
    save_checkpoint(tmp_path / "nan.pt", state)
    shutil.copy(smoke_run / "run.json", tmp_path)
    assert main(["evaluate", str(tmp_path / "nan.pt"), "--no-download"]) == EXIT_NOT_FINITE
    assert "weights are not finite" in capsys.readouterr().err


def test_best_pt_keeps_the_embedding_and_decoder_tied(smoke_run):
    weights = torch.load(smoke_run / "best.pt", weights_only=True)["model"]
    assert weights["decoder.weight"].untyped_storage().data_ptr() == \
        weights["encoder.weight"].untyped_storage().data_ptr()
    assert (smoke_run / "best.pt").stat().st_size < 1.1 * (smoke_run / "last.pt").stat().st_size
    model = load_model(smoke_run / "best.pt")
    assert model.decoder.weight is model.encoder.weight


def test_a_full_disk_says_so_and_leaves_no_temporary_file(tmp_path, capsys, full_disk):
    folder = tmp_path / "run"
    assert train(folder) == 1
    out, err = capsys.readouterr()
    assert "epoch   1 |" in out  # the finished epoch's result is logged before the save
    assert err.count("\n") == 1 and "no space left on device; make room" in err.lower()
    assert str(folder / "best.pt") in err
    assert list(folder.glob("*.tmp")) == []


def _data_with_a_folder_for_train(tmp_path, run):
    (tmp_path / "data" / "ptb" / "ptb.train.txt").mkdir(parents=True)
    return ["--data-root", str(tmp_path / "data")]


def _folder_under_a_file(tmp_path, run):
    (tmp_path / "file").write_text("")
    return ["--checkpoint-dir", str(tmp_path / "file" / "run")]


def _run_copy(tmp_path, run):
    shutil.copytree(run, tmp_path / "run")
    return tmp_path / "run"


def _bad_run_json(tmp_path, run):
    (_run_copy(tmp_path, run) / "run.json").write_text("{not json")
    return [str(tmp_path / "run" / "best.pt")]


def _checkpoint_with(tmp_path, run, change):
    state = load_checkpoint(run / "best.pt")
    change(state)
    save_checkpoint(_run_copy(tmp_path, run) / "edited.pt", state)
    return [str(tmp_path / "run" / "edited.pt")]


TRAIN = ["train", "--preset", "smoke", "--epochs", "1", "--no-download"]
BAD = {  # command line (a function of tmp_path and the smoke run for those that need files), code, words
    "directory as data file": (lambda t, r: TRAIN + _data_with_a_folder_for_train(t, r), 1,
                               "ptb.train.txt cannot be read"),
    "unwritable checkpoint folder": (lambda t, r: TRAIN + _folder_under_a_file(t, r), 1,
                                     "cannot write to --checkpoint-dir"),
    "unknown dataset": (TRAIN + ["--set", "dataset=foo"], 1, "Unknown dataset 'foo'"),
    "unknown optimizer": (TRAIN + ["--set", "train.optimizer=adam"], 1,
                          "train.optimizer must be one of 'sgd', 'asgd', 'ntasgd', got 'adam'"),
    "batch_size 0": (TRAIN + ["--set", "train.batch_size=0"], 1,
                     "train.batch_size must be an integer >= 1, got 0"),
    "bptt 0": (TRAIN + ["--set", "train.bptt=0"], 1, "train.bptt must be an integer >= 1"),
    "negative lr": (TRAIN + ["--set", "train.lr=-1"], 1, "train.lr must be a number > 0"),
    "negative clip": (TRAIN + ["--set", "train.clip=-1"], 1, "train.clip must be a number > 0"),
    "patience 0": (TRAIN + ["--set", "train.patience=0"], 1, "train.patience must be none or"),
    "dropouti 1": (TRAIN + ["--set", "model.dropouti=1"], 1, r"model.dropouti must be in \[0, 1\)"),
    "dropoute 1": (TRAIN + ["--set", "model.dropoute=1"], 1, r"model.dropoute must be in \[0, 1\)"),
    "dropout 1.5": (TRAIN + ["--set", "model.dropout=1.5"], 1,
                    r"model.dropout must be in \[0, 1\), got 1.5"),
    "wdrop 1.5": (TRAIN + ["--set", "model.wdrop=1.5"], 1, r"model.wdrop must be in \[0, 1\), got 1.5"),
    "checkpoint_every 0": (TRAIN + ["--set", "train.checkpoint_every=0"], 1,
                           "train.checkpoint_every must be an integer >= 1, got 0"),
    "sync_every -1": (TRAIN + ["--set", "train.sync_every=-1"], 1,
                      "train.sync_every must be an integer >= 1, got -1"),
    "tf32 maybe": (TRAIN + ["--set", "train.tf32=maybe"], 1, "train.tf32: expected true or false"),
    "workers -1": (["experiment", "ladder", "--preset", "smoke", "--workers", "-1"], 2,
                   "--workers: expected an integer >= 0, got '-1'"),
    "not a number": (TRAIN + ["--set", "train.lr=abc"], 1, "train.lr: expected a number, got 'abc'"),
    "epochs 0": (TRAIN + ["--epochs", "0"], 1, "train.epochs must be an integer >= 1, got 0"),
    "epochs -1": (TRAIN + ["--epochs", "-1"], 1, "train.epochs must be an integer >= 1, got -1"),
    "device tpu": (TRAIN + ["--device", "tpu"], 1, "--device tpu: .* use --device cpu"),
    "device mps": (TRAIN + ["--device", "mps"], 1, "--device mps: .* use --device cpu"),
    "threads -2": (["--threads", "-2"] + TRAIN, 2, "--threads: expected an integer >= 1, got '-2'"),
    "temperature nan": (lambda t, r: ["generate", str(r / "best.pt"), "--temperature", "nan"], 1,
                        "temperature must be a finite number > 0, got nan"),
    "words 0": (lambda t, r: ["generate", str(r / "best.pt"), "--words", "0"], 2, "--words: expected"),
    "words -5": (lambda t, r: ["generate", str(r / "best.pt"), "--words", "-5"], 2, "--words: expected"),
    "words -3": (lambda t, r: ["generate", str(r / "best.pt"), "--words", "-3"], 2,
                 "--words: expected an integer >= 1, got '-3'"),
    "batch size 0": (lambda t, r: ["evaluate", str(r / "best.pt"), "--batch-size", "0"], 2,
                     "--batch-size: expected an integer >= 1"),
    "bad run.json": (lambda t, r: ["evaluate"] + _bad_run_json(t, r), 1, "run.json is not a run file"),
    "checkpoint missing keys": (
        lambda t, r: ["evaluate"] + _checkpoint_with(t, r, lambda s: s.pop("model_config")), 1,
        "edited.pt lacks model_config"),
    "checkpoint shape mismatch": (
        lambda t, r: ["evaluate"] + _checkpoint_with(
            t, r, lambda s: s["model_config"].update(emb_size=17)),
        1, "weights do not fit its model_config .*size mismatch"),
}


@pytest.mark.parametrize("case", BAD)
def test_each_fixable_mistake_gives_one_line_and_no_traceback(case, smoke_run, tmp_path, capsys):
    argv, code, words = BAD[case]
    if callable(argv):
        argv = argv(tmp_path, smoke_run)
    try:
        returned = main(argv + ["--no-download"] if argv[0] in ("evaluate", "generate") else argv)
    except SystemExit as exit:  # argparse
        returned = exit.code
    assert returned == code
    lines = capsys.readouterr().err.strip().splitlines()
    if code == 1:
        assert len(lines) == 1 and lines[0].startswith("error: ")
    assert re.search(words, lines[-1]), lines[-1]


def test_an_unreadable_data_file_gives_one_line(tmp_path, capsys, monkeypatch):
    def denied(path, chunk=0):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
    monkeypatch.setattr(awdlib.data, "md5sum", denied)
    assert main(TRAIN) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot be read (Permission denied)" in err
