"""Trainer behaviour around NT-ASGD: checkpoints after the switch, fine-tuning's stop, NaN stops."""

import math
import shutil

import pytest
import torch

import awdlib
import awdlib.train
from awdlib.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def corpus():
    return awdlib.synthetic_corpus(n_train=1500, n_eval=300)


def make_trainer(corpus, tmp_path, **train):
    torch.manual_seed(0)
    model = awdlib.AWDLSTM(awdlib.AWDLSTMConfig(len(corpus.vocab), emb_size=8, hidden_size=12,
                                                n_layers=2))
    config = awdlib.TrainConfig(**{**dict(epochs=10, batch_size=4, bptt=10, lr=5.0, nonmono=1,
                                          progress=False, log_epochs=False), **train})
    return awdlib.Trainer(model, corpus, config, checkpoint_dir=tmp_path)


def scripted_validation(monkeypatch, losses):
    """Make the Trainer's per-epoch validation return ``losses`` in turn."""
    sequence = iter(losses)
    monkeypatch.setattr(awdlib.train, "evaluate", lambda *args, **kwargs: next(sequence))


def test_checkpoint_after_the_switch_resumes_with_the_same_average(corpus, tmp_path, monkeypatch):
    # nonmono = 1: the loss 3.0 at check 2 is worse than check 0's: averaging starts after epoch 3
    scripted_validation(monkeypatch, [2.0, 1.0, 3.0, 2.5, 2.4, 2.4])
    trainer = make_trainer(corpus, tmp_path)
    trainer.fit(4)
    assert trainer.optimizer.trigger.fired_at == 2 and trainer.history.column("averaging") == \
        [False, False, False, True]
    resumed = awdlib.Trainer.resume(tmp_path / "last.pt", corpus)
    a, b = trainer.optimizer, resumed.optimizer
    assert b.averaging and int(b.average.n_averaged) == int(a.average.n_averaged) > 1
    assert (b.switch_step, b.steps, resumed.epoch) == (a.switch_step, a.steps, 4)
    for p, q in zip(a.average.module.parameters(), b.average.module.parameters()):
        assert torch.equal(p, q)
    for p, q in zip(trainer.model.parameters(), resumed.model.parameters()):  # the iterate too
        assert torch.equal(p, q)
    saved = tmp_path / "copy" / "last.pt"
    saved.parent.mkdir()
    shutil.copy(tmp_path / "last.pt", saved)
    trainer.fit(5)  # one more epoch from the original and from the checkpoint (its RNG states too)
    again = awdlib.Trainer.resume(saved, corpus)
    again.fit(5)
    for p, q in zip(a.average.module.parameters(), again.optimizer.average.module.parameters()):
        assert torch.equal(p, q)


def test_finetune_averages_from_its_first_step_and_stops_by_the_criterion(corpus, tmp_path,
                                                                         monkeypatch):
    # fit: 2 epochs of SGD; fine-tune: check 2 (1.3) is worse than check 0 (1.2): stop after 3 epochs
    scripted_validation(monkeypatch, [2.0, 1.5, 1.2, 1.1, 1.3, 0.5, 0.4])
    trainer = make_trainer(corpus, tmp_path, optimizer="ntasgd")
    trainer.fit(2)
    best_before = load_checkpoint(tmp_path / "best.pt")["model"]
    trainer.finetune(epochs=10)
    tuned = [r for r in trainer.history.records if r["phase"] == "finetune"]
    assert len(tuned) == 3 and trainer.epoch == 5  # well before 2 + 10
    assert all(r["averaging"] for r in tuned) and trainer.optimizer.switch_step == 0
    assert "non-monotonic criterion" in trainer.history.stop_reason
    assert trainer.best_valid_loss == 1.1  # best.pt now holds fine-tuning epoch 2's average
    best_after = load_checkpoint(tmp_path / "best.pt")
    assert best_after["epoch"] == 4 and best_after["phase"] == "finetune"
    assert any(not torch.equal(best_before[k], v) for k, v in best_after["model"].items())


def test_finetune_starts_from_the_best_weights(corpus, tmp_path, monkeypatch):
    scripted_validation(monkeypatch, [1.0, 2.0, 1.5])
    trainer = make_trainer(corpus, tmp_path)
    trainer.fit(2)
    best = load_checkpoint(tmp_path / "best.pt")["model"]  # epoch 1's weights
    starts = []
    original = trainer._make_optimizer

    def record_start(mode):
        starts.append({k: v.clone() for k, v in trainer.model.state_dict().items()})
        return original(mode)

    monkeypatch.setattr(trainer, "_make_optimizer", record_start)
    trainer.finetune(epochs=1)
    assert all(torch.equal(best[k], v) for k, v in starts[0].items())


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(corpus, tmp_path):
    trainer = make_trainer(corpus, tmp_path, optimizer="sgd")
    trainer.fit(1)
    good = load_checkpoint(tmp_path / "last.pt")["model"]
    with torch.no_grad():
        trainer.model.encoder.weight[0, 0] = float("nan")
    history = trainer.fit(5)
    assert "non-finite loss" in history.stop_reason and "epoch 2" in history.stop_reason
    assert trainer.epoch == 1 and len(history.records) == 1
    last = load_checkpoint(tmp_path / "last.pt")
    assert last["epoch"] == 1 and all(torch.isfinite(v).all() for v in last["model"].values())
    for k, v in trainer.model.state_dict().items():  # the model holds the last good weights again
        assert torch.equal(v, good[k])


def test_huge_learning_rate_gives_a_non_finite_loss_and_a_stop(corpus, tmp_path):
    trainer = make_trainer(corpus, tmp_path, optimizer="sgd")
    trainer.fit(1)
    trainer.config.lr = 1e30
    history = trainer.fit(3)
    assert "non-finite loss" in history.stop_reason and trainer.epoch == 1
    assert math.isfinite(history.records[-1]["valid_loss"])
    assert all(torch.isfinite(v).all() for v in trainer.model.state_dict().values())


def test_validation_test_and_best_checkpoint_use_the_averaged_weights(corpus, tmp_path):
    trainer = make_trainer(corpus, tmp_path, optimizer="asgd")
    trainer.fit(1)  # the first epoch is always the best so far: best.pt is written
    average, bptt = trainer.optimizer.average.module, trainer.config.bptt
    on_average = awdlib.evaluate(average, trainer.valid_data, bptt)
    assert trainer.history.records[-1]["valid_loss"] == pytest.approx(on_average, rel=1e-6)
    assert on_average != pytest.approx(awdlib.evaluate(trainer.model, trainer.valid_data, bptt),
                                       rel=1e-6)  # the raw iterate gives another loss
    assert trainer.evaluate("test") == pytest.approx(
        awdlib.evaluate(average, corpus.test, bptt, trainer.config.test_batch_size), rel=1e-6)
    best = load_checkpoint(tmp_path / "best.pt")["model"]  # the average ...
    assert all(torch.equal(best[k], v) for k, v in average.state_dict().items())
    last = load_checkpoint(tmp_path / "last.pt")["model"]  # ... and last.pt the raw iterate
    assert all(torch.equal(last[k], v) for k, v in trainer.model.state_dict().items())


def test_only_ntasgd_announces_a_switch_to_averaging(corpus, tmp_path, monkeypatch):
    scripted_validation(monkeypatch, [1.0, 2.0, 3.0] * 2)  # nonmono = 1: fires at check 2
    for mode in ["sgd", "ntasgd"]:
        trainer = make_trainer(corpus, tmp_path / mode, optimizer=mode)
        trainer.fit(3)
        announced = any("averaging from now on" in e for e in trainer.history.events)
        assert trainer.optimizer.trigger.fired and announced == (mode == "ntasgd")
        assert trainer.optimizer.averaging == (mode == "ntasgd")


def test_a_resumed_finetune_still_stops_by_the_criterion(corpus, tmp_path, monkeypatch):
    # fit 1 epoch (2.0), fine-tune 1 epoch (check 0: 1.2), resume: with n = 1 fine-tuning's check 2
    # (1.6, epoch 4) is worse than its check 0, so the resumed run stops there, not at epoch 12
    scripted_validation(monkeypatch, [2.0, 1.2, 1.3, 1.6, 1.0, 0.9])
    trainer = make_trainer(corpus, tmp_path)
    trainer.fit(1)
    trainer.finetune(epochs=1)
    resumed = awdlib.Trainer.resume(tmp_path / "last.pt", corpus)
    assert resumed.phase == "finetune" and resumed.optimizer.averaging
    resumed.fit(12)
    assert resumed.epoch == 4 and "non-monotonic criterion" in resumed.history.stop_reason


def test_a_nan_before_any_checkpoint_says_nothing_was_restored(corpus, monkeypatch):
    trainer = make_trainer(corpus, None, epochs=2, log_epochs=False)
    with torch.no_grad():
        trainer.model.encoder.weight.fill_(math.nan)
    history = trainer.fit()
    assert history.records == [] and "non-finite loss" in history.stop_reason
    assert history.events[-1].startswith("no checkpoint to restore")


def test_a_resumed_run_whose_fine_tuning_has_finished_trains_nothing_more(corpus, tmp_path,
                                                                          monkeypatch):
    # nonmono = 1: fine-tuning's criterion fires at its 4th check (3.0 is worse than its 1st, 2.0)
    scripted_validation(monkeypatch, [2.0, 1.9, 2.0, 1.0, 3.0] + [2.5] * 100)
    trainer = make_trainer(corpus, tmp_path)
    trainer.fit(1)
    trainer.finetune(40)
    assert trainer.finetuning_done and trainer.epoch == 5
    assert "fine-tuning done" in trainer.history.stop_reason
    resumed = awdlib.Trainer.resume(tmp_path / "last.pt", corpus)
    steps = resumed.optimizer.steps
    history = resumed.fit(len(resumed.history.records) + 40)
    assert resumed.epoch == 5 and len(history.records) == 5 and resumed.optimizer.steps == steps
    assert "fine-tuning has finished" in history.events[-1]
    resumed.finetune(40)  # a finished stage stays finished: no new fine-tuning either
    assert resumed.epoch == 5 and resumed.optimizer.steps == steps
