import math
from pathlib import Path

import pytest
import torch

import awdlib
import awdlib.train as train_module
from awdlib.checkpoint import FORMAT, load_checkpoint, load_model, save_checkpoint
from awdlib.train import Trainer, evaluate

SMALL = awdlib.PRESETS["smoke"].with_train(log_epochs=False, progress=False, nonmono=2)


def _trainer(corpus, tmp_path=None, **train):
    preset = SMALL.with_train(**train)
    return preset.trainer(corpus, checkpoint_dir=tmp_path)


def test_evaluation_does_not_depend_on_the_window_length(tiny_corpus):
    torch.manual_seed(0)
    model = awdlib.AWDLSTM(SMALL.model_config(len(tiny_corpus.vocab)))
    losses = [evaluate(model, tiny_corpus.valid, bptt, batch_size=4) for bptt in (7, 35, 1000)]
    assert max(losses) - min(losses) < 1e-5


def test_evaluation_restores_training_mode_and_carries_state_only_when_asked(tiny_corpus):
    torch.manual_seed(0)
    model = awdlib.AWDLSTM(SMALL.model_config(len(tiny_corpus.vocab))).train()
    evaluate(model, tiny_corpus.valid, 20, batch_size=4)
    assert model.training


def test_training_learns_the_bigrams_of_the_synthetic_corpus(tiny_corpus):
    # One layer: a tiny three-layer stack with U[-0.1, 0.1] embeddings takes many epochs to start.
    preset = SMALL.plain().with_model(n_layers=1, emb_size=32, hidden_size=64)
    history = preset.with_train(epochs=4, lr=10, batch_size=5).trainer(tiny_corpus).fit()
    assert history.records[-1]["valid_ppl"] < 0.33 * len(tiny_corpus.vocab)  # uniform: 30
    assert [r["epoch"] for r in history.records] == [1, 2, 3, 4]


def test_learning_rate_is_rescaled_by_window_length(tiny_corpus, monkeypatch):
    trainer = _trainer(tiny_corpus, epochs=1, bptt=20)
    seen, lrs = [], []
    real_batches = train_module.bptt_batches

    def recording_batches(source, bptt, variable=True, generator=None, **where):
        for batch in real_batches(source, bptt, variable, generator, **where):
            if variable:  # training windows only, not evaluation's
                seen.append(batch[2])
            yield batch
    real_step = trainer.optimizer.sgd.step
    monkeypatch.setattr(train_module, "bptt_batches", recording_batches)
    monkeypatch.setattr(trainer.optimizer.sgd, "step",
                        lambda: (lrs.append(trainer.optimizer.sgd.param_groups[0]["lr"]), real_step()))
    trainer.fit()
    assert len(set(seen)) > 3
    assert lrs == pytest.approx([SMALL.train.lr * n / 20 for n in seen])


def test_resume_gives_the_same_next_epoch_as_an_uninterrupted_run(tiny_corpus, tmp_path):
    whole = _trainer(tiny_corpus, tmp_path / "whole", epochs=3)
    whole.fit()
    first = _trainer(tiny_corpus, tmp_path / "split", epochs=1)
    first.fit()
    del first
    resumed = Trainer.resume(tmp_path / "split" / "last.pt", tiny_corpus, epochs=3)
    assert resumed.epoch == 1
    resumed.fit()
    for a, b in zip(whole.history.records[1:], resumed.history.records[1:]):
        assert a["epoch"] == b["epoch"]
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6)
        assert a["valid_loss"] == pytest.approx(b["valid_loss"], rel=1e-6)
    for p, q in zip(whole.model.parameters(), resumed.model.parameters()):
        torch.testing.assert_close(p, q)


def test_best_checkpoint_holds_the_best_validation_weights(tiny_corpus, tmp_path):
    trainer = _trainer(tiny_corpus, tmp_path, epochs=3)
    history = trainer.fit()
    best = load_checkpoint(tmp_path / "best.pt")
    assert best["best_valid_loss"] == pytest.approx(history.best()["valid_loss"])
    model = load_model(tmp_path / "best.pt")
    loss = evaluate(model, tiny_corpus.valid, 20, batch_size=SMALL.train.eval_batch_size)
    assert loss == pytest.approx(history.best()["valid_loss"], rel=1e-5)


class _Payload:
    """Unpickling this would create a file: the proof that code ran."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (Path.touch, (self.target,))


def test_loading_a_checkpoint_never_executes_pickled_code(tmp_path):
    evil = tmp_path / "evil.pt"
    marker = tmp_path / "code-ran"
    torch.save({"format": FORMAT, "model": _Payload(marker)}, evil)
    with pytest.raises(Exception, match="Weights only load failed|Unsupported global"):
        load_checkpoint(evil)
    assert not marker.exists()


def test_time_budget_stops_training_and_says_so(tiny_corpus):
    trainer = _trainer(tiny_corpus, epochs=1000, time_budget=0.5)
    history = trainer.fit()
    assert len(history.records) < 1000 and "time budget" in history.stop_reason
    assert [r["epoch"] for r in history.records] == list(range(1, trainer.epoch + 1))  # whole epochs
    assert trainer.unfinished is not None or "used after epoch" in history.stop_reason


class FakeClock:
    """``time`` for awdlib.train whose clock advances one second per reading: a time budget of B
    seconds then pauses a run after about B training steps, the same ones on every run."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        self.now += 1.0
        return self.now


def _same_training_state(a: Trainer, b: Trainer) -> None:
    assert a.epoch == b.epoch and a.optimizer.steps == b.optimizer.steps
    for x, y in [(a.model.state_dict(), b.model.state_dict()),
                 (a.optimizer.average.state_dict(), b.optimizer.average.state_dict())]:
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
    assert a.history.column("valid_loss") == b.history.column("valid_loss")
    assert a.history.column("train_loss") == b.history.column("train_loss")
    assert a.optimizer.trigger.logs == b.optimizer.trigger.logs


@pytest.mark.parametrize("checkpoint_every", [1, 2])
def test_budget_pauses_and_ctrl_c_both_resume_to_the_uninterrupted_runs_weights(
        tiny_corpus, tmp_path, monkeypatch, checkpoint_every):
    settings = dict(epochs=3, optimizer="asgd", checkpoint_every=checkpoint_every)
    whole = _trainer(tiny_corpus, tmp_path / "whole", **settings)
    whole.fit()

    # Time budget: chunks of about 10 steps, most of them ending mid-epoch.
    monkeypatch.setattr(train_module, "time", FakeClock())
    chunked = _trainer(tiny_corpus, tmp_path / "budget", time_budget=10, **settings)
    chunked.fit()
    pauses = 0
    while chunked.epoch < 3:
        pauses += chunked.unfinished is not None
        chunked = Trainer.resume(tmp_path / "budget" / "last.pt", tiny_corpus)
        chunked.fit()
    assert pauses >= 3
    monkeypatch.undo()
    _same_training_state(whole, chunked)

    # Ctrl-C in the middle of epoch 3: last.pt holds epoch 2 (or 2 with checkpoint_every = 2).
    interrupted = _trainer(tiny_corpus, tmp_path / "sigint", **settings)
    real_step, steps = Trainer._step, iter(range(10 ** 6))

    def ctrl_c_in_epoch_3(trainer, *args):
        if trainer.epoch == 2 and next(steps) == 5:
            raise KeyboardInterrupt
        return real_step(trainer, *args)
    monkeypatch.setattr(Trainer, "_step", ctrl_c_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit()
    assert "training steps" in interrupted.history.events[-1]  # says what the stop threw away
    monkeypatch.undo()
    resumed = Trainer.resume(tmp_path / "sigint" / "last.pt", tiny_corpus)
    assert resumed.epoch == 2 and resumed.unfinished is None
    resumed.fit()
    _same_training_state(whole, resumed)


@pytest.mark.parametrize("budget", [3, 7, 11, 13])  # pauses at other steps of the epoch each time
def test_a_paused_epoch_goes_on_in_memory_without_a_checkpoint_folder(tiny_corpus, monkeypatch,
                                                                      budget):
    whole = _trainer(tiny_corpus, epochs=2, optimizer="asgd")
    whole.fit()
    monkeypatch.setattr(train_module, "time", FakeClock())
    chunked = _trainer(tiny_corpus, epochs=2, optimizer="asgd", time_budget=budget)
    while chunked.epoch < 2:
        chunked.fit()
        torch.rand(3)  # other code drawing random numbers between the chunks changes nothing
    monkeypatch.undo()
    _same_training_state(whole, chunked)


def test_evaluate_after_load_best_evaluates_the_best_weights_not_the_running_average(
        tiny_corpus, tmp_path, monkeypatch):
    losses = iter([1.0, 2.0])  # epoch 1 is the best; the running average moves on in epoch 2
    monkeypatch.setattr(train_module, "evaluate", lambda *args, **kwargs: next(losses))
    trainer = _trainer(tiny_corpus, tmp_path, epochs=2, optimizer="asgd")
    trainer.fit()
    monkeypatch.undo()
    trainer.load_best()
    best = load_model(tmp_path / "best.pt")
    expected = evaluate(best, tiny_corpus.valid, trainer.config.bptt, trainer.config.eval_batch_size)
    assert trainer.evaluate("valid") == pytest.approx(expected, rel=1e-6)
    with trainer.optimizer.averaged_weights():  # the running average is another set of weights
        assert any(not torch.equal(p, q) for p, q in zip(trainer.model.parameters(),
                                                          best.parameters()))


def test_checkpoint_every_k_epochs_writes_last_pt_at_multiples_of_k_and_at_the_stop(tiny_corpus,
                                                                                    tmp_path,
                                                                                    monkeypatch):
    written = []
    real_save = train_module.save_checkpoint
    monkeypatch.setattr(train_module, "save_checkpoint",
                        lambda path, state: (written.append((path.name, state["epoch"])),
                                             real_save(path, state)))
    _trainer(tiny_corpus, tmp_path, epochs=5, checkpoint_every=2).fit()
    assert [e for name, e in written if name == "last.pt"] == [2, 4, 5]
    names = [name for name, e in written]  # best.pt only just before a last.pt
    assert all(names[i + 1] == "last.pt" for i, name in enumerate(names) if name == "best.pt")
    assert load_checkpoint(tmp_path / "best.pt")["best_valid_loss"] == \
        load_checkpoint(tmp_path / "last.pt")["best_valid_loss"]


def test_perplexity_is_exp_of_loss():
    assert awdlib.perplexity(math.log(123.0)) == pytest.approx(123.0)


@pytest.mark.parametrize("field, value, allowed", [
    ("epochs", 0, "an integer >= 1"), ("batch_size", -1, "an integer >= 1"),
    ("bptt", 0, "an integer >= 1"), ("lr", -1.0, "a number > 0"), ("clip", float("nan"), "a number > 0"),
    ("weight_decay", -1e-6, "a number >= 0"), ("optimizer", "adam", "one of 'sgd', 'asgd', 'ntasgd'"),
    ("time_budget", 0, "none or a number of seconds > 0"), ("patience", 0, "none or an integer >= 1"),
])
def test_train_config_refuses_a_bad_value_naming_the_field_and_what_is_allowed(field, value, allowed):
    with pytest.raises(ValueError) as err:
        awdlib.TrainConfig(**{field: value})
    assert str(err.value) == f"train.{field} must be {allowed}, got {value!r}"


def test_best_checkpoint_stores_the_tied_embedding_and_decoder_once(tiny_corpus, tmp_path):
    _trainer(tiny_corpus, tmp_path, epochs=1, optimizer="asgd").fit()  # best.pt: averaged weights
    weights = torch.load(tmp_path / "best.pt", weights_only=True)["model"]
    assert weights["decoder.weight"].untyped_storage().data_ptr() == \
        weights["encoder.weight"].untyped_storage().data_ptr()
    model = load_model(tmp_path / "best.pt")
    assert model.decoder.weight is model.encoder.weight


def test_a_failed_save_names_the_file_and_leaves_the_old_one_and_no_temporary(tmp_path, monkeypatch,
                                                                             request):
    save_checkpoint(tmp_path / "last.pt", {"epoch": 1})
    request.getfixturevalue("full_disk")  # from here on, writing a checkpoint fills the disk
    with pytest.raises(OSError, match="No space left on device") as err:  # not torch's RuntimeError
        save_checkpoint(tmp_path / "last.pt", {"epoch": 2, "weights": torch.zeros(1000)})
    assert err.value.filename == str(tmp_path / "last.pt")
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
