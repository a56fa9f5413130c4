import errno
import math
import os
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

    def recording_batches(source, bptt, variable=True, generator=None):
        for batch in real_batches(source, bptt, variable, generator):
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
    assert 1 <= len(history.records) < 1000
    assert "time budget" in history.stop_reason


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


def test_a_failed_save_names_the_file_and_leaves_the_old_one_and_no_temporary(tmp_path, monkeypatch):
    save_checkpoint(tmp_path / "last.pt", {"epoch": 1})

    def full_disk(obj, f, *args, **kwargs):
        f.write(b"the first bytes")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match="No space left on device") as err:
        save_checkpoint(tmp_path / "last.pt", {"epoch": 2})
    assert err.value.filename == str(tmp_path / "last.pt")
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
