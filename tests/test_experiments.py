import dataclasses
import json

import pytest

import awdlib
from awdlib import experiments
from awdlib.experiments import LADDER, ladder_configs, ladder_rows, run_study, summarize


def differences(a: awdlib.Preset, b: awdlib.Preset) -> dict:
    """The model and training fields in which two presets differ."""
    changed = {k: (a.model.get(k), b.model.get(k)) for k in a.model.keys() | b.model.keys()
               if a.model.get(k) != b.model.get(k)}
    ta, tb = dataclasses.asdict(a.train), dataclasses.asdict(b.train)
    changed.update({k: (ta[k], tb[k]) for k in ta if ta[k] != tb[k]})
    return changed


def test_each_ladder_rung_adds_exactly_its_technique():
    preset = awdlib.PRESETS["demo"]
    configs = ladder_configs(preset)
    assert list(configs) == list(LADDER[:-1])  # "+ fine-tuning" is read from the NT-ASGD runs
    steps = [differences(a, b) for a, b in zip(list(configs.values()), list(configs.values())[1:])]
    assert [set(s) for s in steps] == [{"wdrop"}, {"dropouti", "dropouth", "dropout"}, {"dropoute"},
                                       {"alpha", "beta"}, {"optimizer"}]
    assert all(v == 0 for v in configs["plain LSTM"].model.values() if isinstance(v, float))
    full = configs["+ NT-ASGD"]
    assert differences(full, preset) == {} and full.finetune_epochs == preset.finetune_epochs
    assert all(c.finetune_epochs == 0 for name, c in configs.items() if name != "+ NT-ASGD")


def test_summary_gives_means_sample_std_and_finetuned_stage():
    runs = [{"name": "+ NT-ASGD", "seed": s, "valid_ppl": v, "test_ppl": v - 10, "epochs": 5,
             "seconds": 1.0, "finetuned": {"valid_ppl": v - 5, "test_ppl": v - 15, "epochs": 7,
                                            "seconds": 2.0}}
            for s, v in ((2, 104.0), (1, 100.0), (3, 102.0))]
    row = summarize(runs, "+ NT-ASGD")
    assert row["seeds"] == [1, 2, 3] and row["valid_ppl_seeds"] == [100.0, 104.0, 102.0]
    assert row["valid_ppl"] == 102.0 and row["valid_ppl_std"] == 2.0 and row["test_ppl"] == 92.0
    rows = ladder_rows(runs)
    assert [(r["name"], r["rung"]) for r in rows] == [("+ NT-ASGD", 6), ("+ fine-tuning", 7)]
    assert rows[1]["valid_ppl"] == 97.0 and rows[1]["epochs_seeds"] == [7, 7, 7]
    assert summarize(runs, "plain LSTM") is None


def test_patience_stops_after_that_many_epochs_without_a_better_validation_loss(tiny_corpus,
                                                                                 monkeypatch):
    losses = iter([5.0, 4.0, 4.5, 3.9, 4.1, 4.2, 4.0, 4.3, 3.0])
    monkeypatch.setattr(awdlib.train, "evaluate", lambda *args, **kwargs: next(losses))
    preset = awdlib.PRESETS["smoke"].with_train(epochs=9, patience=3, optimizer="sgd",
                                                log_epochs=False)
    history = preset.trainer(tiny_corpus).fit()
    assert len(history.records) == 7  # best at epoch 4, then 5, 6, 7 without a better one
    assert "3 epochs" in history.stop_reason


def test_min_improvement_ends_a_run_whose_gains_have_become_small(tiny_corpus, monkeypatch):
    import math

    # each perplexity lower than the last, but after 98.9 (< 100 x 0.99) by less than 1% of that
    # counted best until 97.9 (< 98.9 x 0.99 = 97.911)
    ppl = [100, 98.9, 98.6, 98.3, 98.1, 97.95, 97.9, 97.85, 97.8]
    losses = iter(math.log(p) for p in ppl)
    monkeypatch.setattr(awdlib.train, "evaluate", lambda *args, **kwargs: next(losses))
    preset = awdlib.PRESETS["smoke"].with_train(epochs=9, patience=3, optimizer="sgd",
                                                log_epochs=False, min_improvement=0.01)
    history = preset.trainer(tiny_corpus).fit()
    assert [r["epoch"] for r in history.records] == [1, 2, 3, 4, 5]  # 2 counted, then 3, 4, 5 not
    assert history.stop_reason == ("no better validation loss for 3 epochs (better: by more than "
                                   "1.00% in perplexity): stopped early at epoch 5")
    assert history.best()["epoch"] == 5  # best.pt still keeps the lowest loss
    records = [{"epoch": i + 1, "valid_loss": math.log(p)} for i, p in enumerate(ppl)]
    counted = awdlib.train.History(records)
    assert counted.last_improvement(0.01) == 7 and counted.last_improvement() == 9
    assert awdlib.train.History().last_improvement(0.01) == 0
    with pytest.raises(ValueError, match="train.min_improvement"):
        awdlib.TrainConfig(min_improvement=1.0)


def test_fine_tuning_after_early_stopping_gets_its_own_patience(tiny_corpus, monkeypatch):
    losses = iter([5.0, 4.0, 4.5, 4.6] + [4.7, 4.8, 4.9, 3.0])
    monkeypatch.setattr(awdlib.train, "evaluate", lambda *args, **kwargs: next(losses))
    preset = awdlib.PRESETS["smoke"].with_train(epochs=9, patience=2, log_epochs=False, nonmono=5)
    trainer = preset.trainer(tiny_corpus)
    trainer.fit()
    assert trainer.epoch == 4 and trainer.history.stop_reason.startswith("no better validation loss")
    trainer.finetune(9)
    # two fine-tuning epochs without a better loss, not stopped at its first one (4 - 2 >= 2)
    assert [r["phase"] for r in trainer.history.records[4:]] == ["finetune", "finetune"]
    assert trainer.history.stop_reason.endswith("stopped early at epoch 6")


def test_a_resumed_run_that_early_stopping_had_ended_trains_nothing_more(tiny_corpus, monkeypatch,
                                                                         tmp_path):
    losses = iter([5.0, 4.0, 4.5, 4.6])
    monkeypatch.setattr(awdlib.train, "evaluate", lambda *args, **kwargs: next(losses))
    preset = awdlib.PRESETS["smoke"].with_train(epochs=9, patience=2, log_epochs=False)
    trainer = preset.trainer(tiny_corpus, checkpoint_dir=tmp_path)
    trainer.fit()
    assert trainer.epoch == 4
    resumed = awdlib.Trainer.resume(tmp_path / "last.pt", tiny_corpus)
    resumed.fit()  # evaluate would raise StopIteration if it trained another epoch
    assert resumed.epoch == 4 and resumed.history.stop_reason == trainer.history.stop_reason


def test_min_improvement_at_zero_leaves_fingerprints_as_they_were():
    smoke = awdlib.PRESETS["smoke"]
    assert "min_improvement" not in smoke.settings()["train"]
    assert smoke.with_train(min_improvement=0.005).fingerprint() != smoke.fingerprint()


@pytest.mark.slow
def test_a_study_appends_each_run_once_and_resumes_without_rerunning(tmp_path):
    smoke = awdlib.PRESETS["smoke"].with_train(epochs=1)
    configs = {name: c for name, c in ladder_configs(smoke).items()
               if name in ("plain LSTM", "+ NT-ASGD")}
    results = tmp_path / "study.runs.jsonl"
    run_study(configs, [1], results, tmp_path / "runs", log=lambda message: None)
    first = results.read_text().splitlines()
    assert sorted(json.loads(line)["name"] for line in first) == ["+ NT-ASGD", "plain LSTM"]
    runs = run_study(configs, [1, 2], results, tmp_path / "runs", log=lambda message: None)
    lines = results.read_text().splitlines()
    assert lines[:2] == first and len(lines) == 4  # seed 1 was not run again
    assert sorted((r["name"], r["seed"]) for r in runs) == sorted(
        (name, seed) for name in configs for seed in (1, 2))
    assert "finetuned" in next(r for r in runs if r["name"] == "+ NT-ASGD")


@pytest.mark.slow
def test_a_run_is_reproducible_and_loads_back_with_its_history_and_best_weights(tmp_path):
    preset = awdlib.PRESETS["smoke"]
    one = experiments.run_one("smoke", preset, 7, tmp_path / "a", threads=None)
    two = experiments.run_one("smoke", preset, 7, tmp_path / "b", threads=None)
    assert one["valid_curve"] == two["valid_curve"] and one["test_ppl"] == two["test_ppl"]
    assert experiments.finished_run(tmp_path / "a") == json.loads(json.dumps(one))
    trainer = experiments.load_run(tmp_path / "a", preset.corpus())
    assert [round(v, 2) for v in trainer.history.column("valid_ppl")] == one["finetuned"][
        "valid_curve"]
    c = trainer.config
    test = awdlib.perplexity(awdlib.evaluate(trainer.model, trainer.corpus.test, c.bptt,
                                             c.test_batch_size))
    assert test == pytest.approx(one["finetuned"]["test_ppl"], rel=1e-9)
