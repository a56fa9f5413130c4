"""Executors: a study runs the same on this machine's processes and through submitit (its local
cluster: a process per job, results pickled back as on Slurm), and resumes whichever ran it.
The jobs are importable functions: a cluster job imports what it runs, as on Slurm."""

import json
from operator import add, truediv

import pytest
import torch

import awdlib
from awdlib import experiments
from awdlib.executors import LocalExecutor, SubmititExecutor
from awdlib.experiments import ladder_configs, run_study



@pytest.fixture
def submitit():
    """For the tests that use submitit: they skip where it is not installed (a bare GPU machine)."""
    return pytest.importorskip("submitit")


def smoke_configs() -> dict:
    smoke = awdlib.PRESETS["smoke"].with_train(epochs=1)
    return {name: c for name, c in ladder_configs(smoke).items() if name in ("plain LSTM", "+ NT-ASGD")}


def strip_times(row: dict) -> dict:
    """A row without its wall-clock seconds (the only field two runs of one job may differ in)."""
    out = {k: v for k, v in row.items() if k != "seconds"}
    if "finetuned" in out:
        out["finetuned"] = strip_times(out["finetuned"])
    return out


def test_both_executors_report_each_result_and_each_failure_with_its_reason(tmp_path, submitit):
    for executor in (LocalExecutor(0), SubmititExecutor(tmp_path / "jobs", 2, cluster="local",
                                                        poll_s=0.1)):
        done, failed = [], []
        executor.run(add, [(1, 2), (3, 4)], lambda job, r: done.append((job, r)),
                     lambda job, why: failed.append((job, why)))
        assert sorted(done) == [((1, 2), 3), ((3, 4), 7)] and failed == []
        executor.run(truediv, [(1, 0)], lambda job, r: done.append((job, r)),
                     lambda job, why: failed.append((job, why)))
        assert len(failed) == 1 and failed[0][0] == (1, 0)
        assert "ZeroDivisionError: division by zero" in failed[0][1], failed[0][1]


def test_submitit_keeps_at_most_workers_jobs_in_flight(tmp_path, submitit, monkeypatch):
    executor = SubmititExecutor(tmp_path / "jobs", 1, cluster="local", poll_s=0.05)
    submitit_executor = executor._executor()
    in_flight, most = [], []
    real_submit = type(submitit_executor).submit

    def counting_submit(self, *args, **kwargs):
        in_flight[:] = [j for j in in_flight if not j.done()]
        job = real_submit(self, *args, **kwargs)
        in_flight.append(job)
        most.append(len(in_flight))
        return job

    monkeypatch.setattr(type(submitit_executor), "submit", counting_submit)
    monkeypatch.setattr(executor, "_executor", lambda: submitit_executor)
    done = []
    executor.run(add, [(1, 1), (2, 2), (3, 3)], lambda job, r: done.append(r), lambda job, w: None)
    assert sorted(done) == [2, 4, 6] and max(most) == 1


@pytest.mark.slow
def test_a_study_through_submitit_equals_the_same_study_in_this_process(tmp_path, submitit):
    configs = smoke_configs()
    here = run_study(configs, [5], tmp_path / "here.runs.jsonl", tmp_path / "here",
                     executor=LocalExecutor(0), log=lambda m: None)
    there = run_study(configs, [5], tmp_path / "there.runs.jsonl", tmp_path / "there",
                      executor=SubmititExecutor(tmp_path / "jobs", 2, cluster="local", poll_s=0.2),
                      log=lambda m: None)
    key = lambda r: r["name"]  # noqa: E731
    assert [strip_times(r) for r in sorted(here, key=key)] == \
        [strip_times(r) for r in sorted(there, key=key)]
    assert len(list((tmp_path / "jobs").glob("*/*_result.pkl"))) == 2  # pickled back, one per job
    # resumed with the other executor: nothing runs again
    log = []
    again = run_study(configs, [5], tmp_path / "there.runs.jsonl", tmp_path / "there",
                      executor=LocalExecutor(0), log=log.append)
    assert [strip_times(r) for r in again] == [strip_times(r) for r in there]
    assert any("2 runs already in" in m and "0 to go on" in m for m in log), log


@pytest.mark.slow
def test_a_run_that_finished_in_its_folder_is_recorded_not_trained_again(tmp_path, monkeypatch):
    configs = smoke_configs()
    results = tmp_path / "study.runs.jsonl"
    run_study(configs, [5], results, tmp_path / "runs", workers=0, log=lambda m: None)
    lines = results.read_text().splitlines()
    results.write_text(lines[0] + "\n")  # the driver died before recording the second run

    def must_not_train(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(experiments, "run_one", must_not_train)
    log = []
    runs = run_study(configs, [5], results, tmp_path / "runs", workers=0, log=log.append)
    assert len(runs) == 2 and results.read_text().splitlines() == lines
    assert any("finished in its folder without being recorded" in m for m in log), log
    # a result of other settings in that folder is not taken for this run
    changed = {name: c.with_train(lr=29.0) for name, c in configs.items()}
    results.unlink()
    with pytest.raises(experiments.StudyIncomplete, match="trained again"):
        run_study(changed, [5], results, tmp_path / "runs", workers=0, log=lambda m: None)


@pytest.mark.slow
def test_the_fine_tuning_control_continues_training_where_early_stopping_ended_it(tmp_path):
    preset = awdlib.PRESETS["smoke"].with_train(epochs=30, patience=1, nonmono=1)
    row = experiments.run_one("full", preset, 3, tmp_path / "run", threads=None, longer=True)
    longer, tuned = row["trained_longer"], row["finetuned"]
    assert row["stop_reason"].startswith("no better validation loss for 1 epochs")
    assert row["epochs"] < 30 and tuned["epochs"] > row["epochs"]
    # as many epochs as fine-tuning took, the same training before them, no early stopping
    assert longer["epochs"] == tuned["epochs"] and longer["stop_reason"] is None
    assert longer["valid_curve"][:row["epochs"]] == row["valid_curve"]
    assert tuned["valid_curve"][:row["epochs"]] == row["valid_curve"]
    assert longer["valid_curve"][row["epochs"]:] != tuned["valid_curve"][row["epochs"]:]
    assert abs(longer["valid_ppl"] - min(longer["valid_curve"])) < 0.01  # its best epoch's
    assert json.loads((tmp_path / "run" / "result.json").read_text()) == row


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_two_workers_share_one_cuda_gpu(tmp_path):
    configs = smoke_configs()
    runs = run_study(configs, [5, 6], tmp_path / "gpu.runs.jsonl", tmp_path / "runs", workers=2,
                     device="cuda", log=lambda m: None)
    assert len(runs) == 4 and all(r["valid_ppl"] > 0 for r in runs)


@pytest.mark.slow
def test_the_command_runs_a_study_through_submitit(tmp_path, submitit, capsys):
    from awdlib.__main__ import main

    argv = ["experiment", "ladder", "--preset", "smoke", "--seeds", "5", "--only", "plain LSTM",
            "--results", str(tmp_path), "--set", "train.epochs=1"]
    assert main(argv + ["--executor", "submitit", "--cluster", "local", "--workers", "1",
                        "--timeout-min", "10"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "ladder-smoke.runs.jsonl").read_text().splitlines()]
    assert [(r["name"], r["seed"]) for r in rows] == [("plain LSTM", 5)]
    assert "submitit (local), at most 1 job(s) at a time" in capsys.readouterr().out
    assert list((tmp_path / "checkpoints" / "smoke" / "ladder" / "submitit").glob("*/*_result.pkl"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_the_command_refuses_cuda_where_there_is_none_before_any_training(tmp_path, capsys):
    from awdlib.__main__ import main

    assert main(["experiment", "ladder", "--preset", "smoke", "--results", str(tmp_path),
                 "--device", "cuda"]) == 1
    assert "--device cuda: this machine's torch" in capsys.readouterr().err
    assert not (tmp_path / "ladder-smoke.runs.jsonl").exists()


@pytest.mark.slow
@pytest.mark.parametrize("stop_at", [("train", 2), ("finetune", 1), ("train", 99)])
def test_an_interrupted_run_goes_on_where_it_stopped_and_ends_as_if_it_had_not(tmp_path, monkeypatch,
                                                                               stop_at):
    preset = awdlib.PRESETS["smoke"].with_train(epochs=3, patience=1, nonmono=1)
    whole = experiments.run_one("full", preset, 3, tmp_path / "whole", threads=None, longer=True)
    phase, count = stop_at
    real_end_epoch = awdlib.Trainer._end_epoch
    seen = {"train": 0, "finetune": 0, "control": 0}

    def interrupting_end_epoch(self, *args):
        stage = "control" if self.checkpoint_dir.name == experiments.LONGER_FOLDER else self.phase
        seen[stage] += 1
        if stage == phase and seen[stage] == count or phase == "train" and count == 99 \
                and stage == "control":
            raise KeyboardInterrupt
        return real_end_epoch(self, *args)

    monkeypatch.setattr(awdlib.Trainer, "_end_epoch", interrupting_end_epoch)
    with pytest.raises(KeyboardInterrupt):
        experiments.run_one("full", preset, 3, tmp_path / "cut", threads=None, longer=True)
    assert (tmp_path / "cut" / experiments.STAGES_FILE).exists()
    monkeypatch.setattr(awdlib.Trainer, "_end_epoch", real_end_epoch)
    resumed = experiments.run_one("full", preset, 3, tmp_path / "cut", threads=None, longer=True)
    assert resumed.pop("resumed") == 1

    def without_times(row):
        out = strip_times(row)
        for stage in ("trained_longer",):
            if stage in out:
                out[stage] = strip_times(out[stage])
        return out

    assert without_times(resumed) == without_times(whole)
    assert not (tmp_path / "cut" / experiments.STAGES_FILE).exists()
    # another configuration in that folder is not resumed from it: it starts afresh
    other = experiments.run_one("other", preset.with_train(lr=20.0), 3, tmp_path / "cut", threads=None)
    assert "resumed" not in other and other["valid_curve"] != whole["valid_curve"]
