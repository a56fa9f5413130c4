"""Issue 19: studies and checkpoints never give a wrong answer silently, and never lose finished work.

Each test names the case of the issue it covers (1-17, "smaller"). Studies run in this process with a
stand-in for ``run_one`` where the training itself is beside the point; the pool's tests use real
worker processes and real signals.
"""

import dataclasses
import errno
import json
import os
import shlex
import shutil
import signal
import time
from multiprocessing import active_children
from pathlib import Path

import pytest
import torch

import awdlib
from awdlib import experiments, pool
from awdlib.__main__ import EXIT_INTERRUPTED, EXIT_NOT_FINITE, how_to_continue, main
from awdlib.checkpoint import load_checkpoint, save_checkpoint
from awdlib.experiments import read_runs, run_study, settings_change, study_runs
from awdlib.presets import RESULT_NEUTRAL
from awdlib.results import RunsFileError, append_run

SMOKE = awdlib.PRESETS["smoke"]
RESULTS = Path(__file__).resolve().parents[1] / "notebooks" / "results"


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """One epoch of the smoke preset on real PTB, by the command line."""
    folder = tmp_path_factory.mktemp("run")
    assert main(["--threads", "1", "train", "--preset", "smoke", "--epochs", "1", "--checkpoint-dir",
                 str(folder), "--no-download"]) == 0
    return folder


@pytest.fixture
def run_copy(smoke_run, tmp_path):
    return Path(shutil.copytree(smoke_run, tmp_path / "a run"))


class FakeRuns:
    """A stand-in for ``experiments.run_one``: a row like the real one's, at once; ``fail`` maps
    (name, seed) to an exception to raise instead."""

    def __init__(self, fail=None):
        self.calls, self.fail = [], fail or {}

    def __call__(self, name, preset, seed, checkpoint_dir, *args, **kwargs):
        self.calls.append((name, seed))
        if (name, seed) in self.fail:
            raise self.fail[name, seed]
        preset = preset.with_train(seed=seed)
        return {"name": name, "seed": seed, "preset": preset.name,
                "fingerprint": preset.fingerprint(), "settings": preset.settings(),
                "valid_ppl": 100.0 + seed, "test_ppl": 90.0 + seed, "best_epoch": 1,
                "epochs": preset.train.epochs, "seconds": 0.1, "stop_reason": None,
                "valid_curve": [], "train_curve": []}


@pytest.fixture
def fake_runs(monkeypatch):
    fake = FakeRuns()
    monkeypatch.setattr(experiments, "run_one", fake)
    return fake


def study(results, *extra, workers="0"):
    return main(["--threads", "1", "experiment", "ladder", "--preset", "smoke", "--only", "plain LSTM",
                 "--workers", workers, "--results", str(results), "--no-download", *extra])


# ------------------------------------------------------------------------ 1. stale rows reused
def test_the_fingerprint_follows_every_setting_that_changes_a_result_and_no_other():
    base = SMOKE.fingerprint()
    for name in RESULT_NEUTRAL:
        value = {"progress": True, "log_epochs": True, "time_budget": 5.0}.get(name, 7)
        assert SMOKE.with_train(**{name: value}).fingerprint() == base, name
    assert SMOKE.with_train(seed=5).fingerprint() == base  # the seed is a row's own key
    assert SMOKE.with_train(lr=30).fingerprint() == base  # 30 and 30.0 are one setting
    changed = [SMOKE.with_train(epochs=3), SMOKE.with_train(lr=20.0), SMOKE.with_model(wdrop=0.2),
               dataclasses.replace(SMOKE, train_fraction=0.02), dataclasses.replace(SMOKE, dataset="wt2"),
               dataclasses.replace(SMOKE, finetune_epochs=1), SMOKE.with_train(eval_batch_size=5)]
    assert len({base, *(p.fingerprint() for p in changed)}) == len(changed) + 1
    assert settings_change(SMOKE.settings(), SMOKE.with_train(epochs=3).settings()) == \
        "train.epochs 2, here 3"


def test_a_row_of_another_configuration_is_never_reused_and_the_runner_says_so(tmp_path, fake_runs,
                                                                             capsys):
    assert study(tmp_path, "--seeds", "1") == 0
    assert study(tmp_path, "--seeds", "1", "--set", "train.epochs=3") == 0
    out = capsys.readouterr().out
    assert fake_runs.calls == [("plain LSTM", 1)] * 2  # trained again at 3 epochs
    assert "1 run(s) of another configuration, not reused: 1 with train.epochs 2, here 3" in out
    summary = json.loads((tmp_path / "ladder-smoke.json").read_text())
    assert summary[0]["scale"]["epochs"] == 3 and summary[0]["epochs_seeds"] == [3]
    rows = read_runs(tmp_path / "ladder-smoke.runs.jsonl")
    assert [r["settings"]["train"]["epochs"] for r in rows] == [2, 3]  # both kept, each labelled


def test_an_old_row_without_a_fingerprint_is_taken_as_the_presets_only_if_it_fits(tmp_path,
                                                                                 fake_runs, capsys):
    runs_file = tmp_path / "ladder-smoke.runs.jsonl"
    demo_row = json.loads((RESULTS / "ladder-demo.runs.jsonl").read_text().splitlines()[0])
    smoke_row = {**demo_row, "seed": 2, "epochs": 2}  # as an old smoke study wrote it
    runs_file.write_text(json.dumps(demo_row) + "\n" + json.dumps(smoke_row) + "\n")
    assert study(tmp_path, "--seeds", str(demo_row["seed"]), "2") == 0
    assert fake_runs.calls == [("plain LSTM", demo_row["seed"])]  # the pasted demo row is not reused
    assert "24 epochs, more than preset 'smoke' allows (2)" in capsys.readouterr().out
    assert study(tmp_path, "--seeds", "2", "--set", "train.lr=20") == 0  # old rows: the bare preset's
    assert fake_runs.calls[-1] == ("plain LSTM", 2)
    assert "no fingerprint (taken as a run of preset 'smoke'): train.lr 30.0, here 20.0" in \
        capsys.readouterr().out


@pytest.mark.parametrize("study_name, preset", [("ladder", "demo"), ("ablation", "ablation-demo")])
def test_the_committed_studies_without_fingerprints_still_give_their_stored_summaries(study_name,
                                                                                     preset):
    runs = read_runs(RESULTS / f"{study_name}-demo.runs.jsonl")
    assert not any("fingerprint" in r for r in runs)
    configs = experiments.STUDIES[study_name][0](awdlib.PRESETS[preset])
    kept = study_runs(runs, configs)
    assert kept == runs
    stored = [{k: v for k, v in row.items() if k != "scale"}
              for row in json.loads((RESULTS / f"{study_name}-demo.json").read_text())]
    assert experiments.STUDIES[study_name][1](kept) == stored
    changed = experiments.STUDIES[study_name][0](awdlib.PRESETS[preset].with_train(epochs=3))
    assert study_runs(runs, changed, legacy=configs) == []


def test_a_finished_run_of_other_settings_is_trained_again(tmp_path, monkeypatch):
    from awdlib import notebook_runs
    calls = []
    monkeypatch.setattr(notebook_runs, "_train_visibly", lambda *args: calls.append(args))
    monkeypatch.setattr(notebook_runs, "load_run", lambda folder, corpus: "loaded")
    monkeypatch.setattr(awdlib.Preset, "corpus", lambda self, *args: None)
    folder = experiments.run_folder(tmp_path / "checkpoints" / "smoke" / "s", "x", 1)
    folder.mkdir(parents=True)
    (folder / "result.json").write_text(json.dumps({"fingerprint": SMOKE.fingerprint()}))
    (tmp_path / "s-smoke.runs.jsonl").write_text(json.dumps(
        {"name": "x", "seed": 1, "valid_ppl": 1, "test_ppl": 1, "epochs": 1, "seconds": 1}) + "\n")
    def run(preset):
        return notebook_runs.study_run("s", "smoke", "x", 1, preset, results=tmp_path,
                                       weights=tmp_path / "w")
    assert run(SMOKE) == "loaded" and calls == []
    run(SMOKE.with_train(epochs=3))
    assert len(calls) == 1


# --------------------------------------------------------------------------- 2. duplicate seeds
def test_a_seed_given_twice_is_refused_on_the_command_line_and_run_once_by_the_library(
        tmp_path, fake_runs, capsys):
    assert study(tmp_path, "--seeds", "1", "2", "1") == 1
    assert "--seeds: 1 given more than once" in one_line_error(capsys)
    assert fake_runs.calls == []
    rows = run_study({"plain LSTM": SMOKE}, [1, 1], tmp_path / "x.runs.jsonl", tmp_path, workers=0,
                     log=lambda m: None)
    assert fake_runs.calls == [("plain LSTM", 1)] and len(rows) == 1


# -------------------------------------------------------------- 3. a checkpoint of another corpus
def _edited(run, name, change):
    state = load_checkpoint(run / "best.pt")
    change(state)
    save_checkpoint(run / name, state)
    return str(run / name)


@pytest.mark.parametrize("command", [["evaluate"], ["cache"], ["dynamic"],
                                     ["generate", "--words", "3"]])
@pytest.mark.parametrize("change", [
    lambda s: s.update(corpus="wikitext-2[0.003]"),
    lambda s: s["model_config"].update(vocab_size=33278),
], ids=["corpus", "vocabulary"])
def test_a_checkpoint_of_another_corpus_is_refused_before_it_is_used(run_copy, capsys, command,
                                                                    change):
    path = _edited(run_copy, "wt2.pt", change)
    assert main([command[0], path, *command[1:], "--no-download"]) == 1
    err = one_line_error(capsys)
    assert "wt2.pt was trained on" in err and "run.json describes a run on ptb" in err
    assert "do not belong together" in err


def test_finetune_and_resume_refuse_a_last_pt_of_another_corpus(run_copy, capsys):
    state = load_checkpoint(run_copy / "last.pt")
    state["corpus"] = "wikitext-2[0.003]"
    save_checkpoint(run_copy / "last.pt", state)
    assert main(["finetune", "--checkpoint-dir", str(run_copy), "--no-download"]) == 1
    assert "last.pt was trained on wikitext-2" in one_line_error(capsys)
    assert main(["train", "--checkpoint-dir", str(run_copy), "--resume", "--epochs", "2",
                 "--no-download"]) == 1
    assert "do not belong together" in one_line_error(capsys)


# ------------------------------------------------------------------ 4. infinite cache evaluation
def test_an_infinite_cache_loss_exits_3_and_an_overflowing_theta_is_refused(smoke_run, capsys):
    best = str(smoke_run / "best.pt")
    assert main(["cache", best, "--lambdah", "1", "--no-download"]) == EXIT_NOT_FINITE
    out, err = capsys.readouterr()
    assert "inf with it" in out and err.count("\n") == 1 and "use a lambdah below 1" in err
    assert main(["cache", best, "--theta", "1e300", "--no-download"]) == 1
    assert "--theta must be a finite number of at most 3.4e+38" in one_line_error(capsys)


# ---------------------------------------------------------------------------- 5. Ctrl-C, the pool
def _sleep_then_return(seconds, tag):
    time.sleep(seconds)
    return tag


def _kill_myself(tag):
    os.kill(os.getpid(), signal.SIGKILL)


def test_ctrl_c_stops_the_pool_at_once_and_hands_over_every_finished_result():
    # Python ignores Ctrl-C when it starts with SIGINT ignored (a background job of a script); make
    # it raise KeyboardInterrupt here as in a terminal
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _ctrl_c_stops_the_pool()
    finally:
        signal.signal(signal.SIGINT, previous)


def _ctrl_c_stops_the_pool():
    jobs = [(0.0, "quick"), (60.0, "slow"), (60.0, "queued")]
    finished = []

    def done(job, result):
        finished.append(result)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C once the first job is in

    started = time.perf_counter()
    with pytest.raises(pool.PoolInterrupted) as interrupted:
        pool.run_in_processes(_sleep_then_return, jobs, 2, done, lambda job, why: pytest.fail(why))
    assert time.perf_counter() - started < 30  # not the 60 s the running jobs would take
    assert finished == ["quick"]
    assert [j[1] for j in interrupted.value.stopped] == ["slow"]
    assert [j[1] for j in interrupted.value.cancelled] == ["queued"]
    assert active_children() == []  # the workers are gone


def test_ctrl_c_during_a_study_keeps_the_finished_runs_and_says_how_to_go_on(tmp_path, monkeypatch,
                                                                            capsys):
    fake = FakeRuns(fail={("plain LSTM", 2): KeyboardInterrupt()})
    monkeypatch.setattr(experiments, "run_one", fake)
    assert study(tmp_path, "--seeds", "1", "2", "3") == EXIT_INTERRUPTED
    err = capsys.readouterr().err
    assert "study interrupted: 1 run(s) finished and are recorded" in err
    assert "run the same command again" in err and err.count("\n") == 1
    assert [r["seed"] for r in read_runs(tmp_path / "ladder-smoke.runs.jsonl")] == [1]
    assert json.loads((tmp_path / "ladder-smoke.json").read_text())[0]["seeds"] == [1]
    monkeypatch.setattr(experiments, "run_one", FakeRuns())
    assert study(tmp_path, "--seeds", "1", "2", "3") == 0
    assert [s for _, s in experiments.run_one.calls] == [2, 3]  # seed 1 is not trained again


# --------------------------------------------------------------------- 6. a diverging run
def test_a_diverging_run_is_recorded_as_failed_the_study_goes_on_and_exits_3(tmp_path, capsys,
                                                                            monkeypatch):
    assert study(tmp_path, "--seeds", "1", "--set", "train.lr=1e30", "train.clip=1e30") == \
        EXIT_NOT_FINITE
    out, err = capsys.readouterr()
    assert "'plain LSTM' seed 1 failed: non-finite loss" in out
    assert err.count("\n") == 1 and "failed: non-finite loss" in err and "not retried" in err
    rows = read_runs(tmp_path / "ladder-smoke.runs.jsonl", failed=True)
    assert len(rows) == 1 and rows[0]["failed"].startswith("non-finite loss")
    assert read_runs(tmp_path / "ladder-smoke.runs.jsonl") == []  # not a result
    monkeypatch.setattr(experiments, "run_one", FakeRuns())
    assert study(tmp_path, "--seeds", "1", "--set", "train.lr=1e30", "train.clip=1e30") == \
        EXIT_NOT_FINITE
    assert experiments.run_one.calls == []  # a failed run is not retried


# ---------------------------------------------------------------- 7. Ctrl-C during finetune
def _interrupt_at_epoch(monkeypatch, epoch):
    real_epoch = awdlib.train.Trainer._train_epoch

    def interrupted(trainer, deadline):
        if trainer.epoch == epoch:
            raise KeyboardInterrupt
        return real_epoch(trainer, deadline)
    monkeypatch.setattr(awdlib.train.Trainer, "_train_epoch", interrupted)


def test_ctrl_c_during_finetune_gives_the_command_that_goes_on_fine_tuning(run_copy, capsys,
                                                                          monkeypatch):
    _interrupt_at_epoch(monkeypatch, 2)  # after fine-tuning epoch 2 (training ended at epoch 1)
    assert main(["--threads", "1", "finetune", "--checkpoint-dir", str(run_copy), "--epochs", "4",
                 "--no-download"]) == EXIT_INTERRUPTED
    err = one_line_error(capsys)
    assert "fine-tuning interrupted after epoch 2" in err
    command = err.split('"')[1]
    assert shlex.split(command)[3:] == ["train", "--checkpoint-dir", str(run_copy), "--resume",
                                        "--epochs", "5"]
    monkeypatch.undo()
    assert main(["--threads", "1", *shlex.split(command)[3:], "--no-download"]) == 0
    state = load_checkpoint(run_copy / "last.pt")
    assert state["phase"] == "finetune" and state["epoch"] > 2  # fine-tuning went on
    assert all(r["phase"] == "finetune" for r in state["history"]["records"][1:])


def test_ctrl_c_in_the_first_fine_tuning_epoch_says_to_fine_tune_again(run_copy, capsys,
                                                                      monkeypatch):
    _interrupt_at_epoch(monkeypatch, 1)
    assert main(["--threads", "1", "finetune", "--checkpoint-dir", str(run_copy), "--epochs", "4",
                 "--no-download"]) == EXIT_INTERRUPTED
    assert f"python -m awdlib finetune --checkpoint-dir {shlex.quote(str(run_copy))} --epochs 4" in \
        one_line_error(capsys)


# -------------------------------------------------------------------- 8 and 9. broken runs files
def _row(seed):
    return FakeRuns()("plain LSTM", experiments.ladder_configs(SMOKE)["plain LSTM"], seed, None)


def test_a_cut_off_last_line_is_skipped_with_a_warning_and_moved_aside_before_the_next_row(
        tmp_path, fake_runs, capsys):
    runs_file = tmp_path / "ladder-smoke.runs.jsonl"
    runs_file.write_text(json.dumps(_row(1)) + "\n" + '{"name": "plain')
    with pytest.warns(UserWarning, match=r"line 2 is cut off"):
        assert [r["seed"] for r in read_runs(runs_file)] == [1]
    assert study(tmp_path, "--seeds", "1", "2") == 0
    assert "line 2 is cut off" in capsys.readouterr().out
    lines = runs_file.read_text().splitlines()
    assert [json.loads(line)["seed"] for line in lines] == [1, 2]  # the new row on its own line
    assert (tmp_path / "ladder-smoke.runs.jsonl.broken").read_text() == '{"name": "plain\n'


def test_append_run_starts_a_new_line_after_a_last_line_without_one(tmp_path):
    path = tmp_path / "x.runs.jsonl"
    path.write_text(json.dumps(_row(1)))
    append_run(path, _row(2))
    assert [r["seed"] for r in read_runs(path)] == [1, 2]


@pytest.mark.parametrize("line, words", [
    ('{"foo": 1}', "line 2 is not a run: it lacks name, seed, valid_ppl"),
    ('{"name": "plain LSTM", "seed": "one", "failed": "x"}', "line 2 is not a run: seed has the wrong"),
    ("[1, 2]", "line 2 is not a run: expected a JSON object"),
    ("{not json", "line 2 is not a run: it is not JSON"),
])
def test_a_line_that_is_not_a_run_is_named_with_its_file_and_line_before_any_training(
        tmp_path, fake_runs, capsys, line, words):
    runs_file = tmp_path / "ladder-smoke.runs.jsonl"
    runs_file.write_text(json.dumps(_row(1)) + "\n" + line + "\n" + json.dumps(_row(2)) + "\n")
    assert study(tmp_path, "--seeds", "3") == 1
    err = one_line_error(capsys)
    assert str(runs_file) in err and words in err and "fix or delete that line" in err
    assert fake_runs.calls == []
    with pytest.raises(RunsFileError):
        read_runs(runs_file)


# --------------------------------------------------------------------- 10. unusable --results
def _a_file(tmp_path, monkeypatch):
    (tmp_path / "results").write_text("")
    return tmp_path / "results", "is a file: give a folder"


def _a_folder_where_the_summary_goes(tmp_path, monkeypatch):
    (tmp_path / "results" / "ladder-smoke.json").mkdir(parents=True)
    return tmp_path / "results", "ladder-smoke.json is a folder, where the study writes a file"


def _a_long_name(tmp_path, monkeypatch):
    return tmp_path / ("x" * 300), "(File name too long)"


def _read_only(tmp_path, monkeypatch):
    real_open = Path.open

    def denied(path, *args, **kwargs):  # chmod does not stop root: refuse the write itself
        if path.name.endswith(".probe"):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_open(path, *args, **kwargs)
    monkeypatch.setattr(Path, "open", denied)
    return tmp_path / "results", "(Permission denied); give a folder you can write to"


@pytest.mark.parametrize("make", [_a_file, _a_folder_where_the_summary_goes, _a_long_name,
                                  _read_only])
def test_results_that_cannot_be_written_are_refused_before_loading_data_or_training(
        tmp_path, fake_runs, capsys, monkeypatch, make):
    monkeypatch.setattr(awdlib.Preset, "corpus", lambda *args, **kwargs: pytest.fail("loaded data"))
    results, words = make(tmp_path, monkeypatch)
    assert study(results, "--seeds", "1") == 1
    assert words in one_line_error(capsys)
    assert fake_runs.calls == []


# ------------------------------------------------------------------ 11. a worker killed (kill -9)
def test_a_killed_worker_fails_only_its_own_job():
    finished, failed = [], []
    jobs = [(0.0, "a"), ("b",)]
    targets = {1: _kill_myself}

    pool.run_in_processes(_dispatch, [(i, targets.get(i, _sleep_then_return), job)
                                      for i, job in enumerate(jobs)], 2,
                          lambda job, result: finished.append(result),
                          lambda job, why: failed.append((job[2], why)))
    assert finished == ["a"]
    assert failed == [(("b",), "its worker process was killed by signal 9 (SIGKILL)")]
    assert active_children() == []


def _dispatch(index, target, job):
    return target(*job)


def test_a_run_that_did_not_finish_is_reported_in_one_line_and_the_others_are_kept(
        tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(experiments, "run_one", FakeRuns(fail={("plain LSTM", 1): MemoryError()}))
    assert study(tmp_path, "--seeds", "1", "2") == 1
    err = one_line_error(capsys)
    assert "did not finish: 'plain LSTM' seed 1: MemoryError" in err and "run the same command" in err
    assert [r["seed"] for r in read_runs(tmp_path / "ladder-smoke.runs.jsonl")] == [2]


# ------------------------------------------------------- 12, 13 and 17. the study's command line
def test_a_preset_the_ablation_cannot_use_is_refused_in_one_line(tmp_path, capsys):
    assert main(["experiment", "ablation", "--preset", "smoke-wt2", "--seeds", "1", "--workers",
                 "0", "--results", str(tmp_path), "--no-download"]) == 1
    err = one_line_error(capsys)
    assert "got 'smoke-wt2'" in err and "presets that fit the ablation study:" in err
    assert "smoke," in err and "smoke-wt2," not in err


SEED = str(2 ** 64)


@pytest.mark.parametrize("argv, code", [
    (["experiment", "ladder", "--preset", "smoke", "--seeds", "1", SEED], 2),
    (["train", "--preset", "smoke", "--set", f"train.seed={SEED}"], 1),
    (["generate", "best.pt", "--seed", SEED], 2),
])
def test_a_seed_beyond_64_bits_is_named_in_the_message(argv, code, capsys):
    try:
        returned = main(argv + ["--no-download"])
    except SystemExit as exit:  # argparse
        returned = exit.code
    assert returned == code
    assert SEED in capsys.readouterr().err.strip().splitlines()[-1]


def test_no_download_reaches_the_study_and_a_missing_dataset_stops_it_before_any_worker(
        tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(awdlib.data, "_download", lambda *args: pytest.fail("tried to download"))
    monkeypatch.setattr(pool, "run_in_processes", lambda *args: pytest.fail("started a worker"))
    assert main(["experiment", "ladder", "--preset", "smoke", "--seeds", "1", "--workers", "1",
                 "--results", str(tmp_path / "r"), "--data-root", str(tmp_path / "empty"),
                 "--no-download"]) == 1
    assert "not found (download=False)" in capsys.readouterr().err


# ------------------------------------------------------------------- 14. a malformed last.pt
@pytest.mark.parametrize("change, field", [
    (lambda s: s.update(optimizer={}), "lacks optimizer.mode"),
    (lambda s: s.update(history={}), "lacks history.records"),
    (lambda s: s["history"]["records"].append("x"), "history.records must be a list of epoch"),
    (lambda s: s.update(rng={"torch": 3, "batches": 3}), "rng.torch must be a CPU random"),
    (lambda s: s["rng"].update(batches=torch.zeros(3, dtype=torch.uint8)), "rng.batches must be"),
    (lambda s: s.update(epoch="x"), "epoch must be an integer >= 0, got 'x'"),
    (lambda s: s.update(phase="x"), "phase must be 'train' or 'finetune'"),
    (lambda s: s["optimizer"]["trigger"].update(logs=None), "optimizer.trigger.logs must be"),
    (lambda s: s.update(unfinished={"position": 1}), "lacks unfinished.tokens"),
    (lambda s: s["optimizer"]["sgd"].update(param_groups=[]), "optimizer state does not fit"),
])
def test_a_malformed_last_pt_is_named_field_by_field_on_resume(run_copy, capsys, change, field):
    state = load_checkpoint(run_copy / "last.pt")
    change(state)
    save_checkpoint(run_copy / "last.pt", state)
    assert main(["train", "--checkpoint-dir", str(run_copy), "--resume", "--epochs", "2",
                 "--no-download"]) == 1
    err = one_line_error(capsys)
    assert field in err and "last.pt" in err


# --------------------------------------------------------------------------- 15. a full disk
# Covered where the save and its message live: test_train.py's test_a_failed_save_names_the_file_...
# (an OSError naming the file, where torch's writer raised RuntimeError) and test_cli.py's
# test_a_full_disk_says_so_... (one "no space left ... make room" line), both with the conftest's
# full_disk, which fails the write part-way as a real full disk does.


# --------------------------------------------------------- 16. finetune from a broken best.pt
class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


@pytest.mark.parametrize("spoil", ["truncated", "pickled code"])
def test_finetune_refuses_a_broken_or_unsafe_best_pt_in_one_line(run_copy, capsys, spoil):
    best = run_copy / "best.pt"
    if spoil == "truncated":
        best.write_bytes(best.read_bytes()[:20000])
    else:
        torch.save({"format": "awdlib-checkpoint/1", "model": Payload()}, best)
    assert main(["finetune", "--checkpoint-dir", str(run_copy), "--no-download"]) == 1
    out, err = capsys.readouterr()
    assert "this must never run" not in out and err.count("\n") == 1
    assert "best.pt is not an awdlib checkpoint" in err and "weights_only" not in err


# --------------------------------------------------------------------------------- smaller
def test_evaluate_says_it_scored_the_raw_weights_of_a_last_pt_that_was_averaging(tmp_path, capsys):
    folder = tmp_path / "run"
    assert main(["--threads", "1", "train", "--preset", "smoke", "--epochs", "1", "--set",
                 "train.optimizer=asgd", "--checkpoint-dir", str(folder), "--no-download"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(folder / "last.pt"), "--no-download"]) == 0
    assert "scored: the raw weights of the last step" in capsys.readouterr().out
    assert main(["evaluate", str(folder / "best.pt"), "--no-download"]) == 0
    assert "scored:" not in capsys.readouterr().out


def test_resume_advice_quotes_a_folder_with_spaces(run_copy):
    advice = how_to_continue(run_copy)
    assert shlex.split(advice.split('"')[1])[5] == str(run_copy)


def test_a_summary_that_cannot_be_written_leaves_the_old_one_whole(tmp_path, monkeypatch):
    path = tmp_path / "ladder-x.json"
    experiments.write_summary("ladder", [_row(1)], path, SMOKE)
    before = path.read_text()

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError):
        experiments.write_summary("ladder", [_row(1), _row(2)], path, SMOKE)
    assert path.read_text() == before and list(tmp_path.glob("*.tmp")) == []


def test_a_study_run_starts_afresh_and_writes_its_result_atomically(tmp_path, monkeypatch):
    (tmp_path / "result.json").write_text("{stale")
    (tmp_path / "best.pt").write_text("stale")
    seen = {}

    def no_training(preset, corpus, device="cpu", checkpoint_dir=None):
        seen["files"] = sorted(p.name for p in tmp_path.iterdir())
        raise RuntimeError("stop here")
    monkeypatch.setattr(awdlib.Preset, "trainer", no_training)
    monkeypatch.setattr(awdlib.Preset, "corpus", lambda *args: None)
    with pytest.raises(RuntimeError, match="stop here"):
        experiments.run_one("x", SMOKE, 1, tmp_path)
    assert seen["files"] == ["stages.json"]  # stale files gone; what this run will resume from
