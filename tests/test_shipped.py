"""Shipped demo weights (awdlib.shipped) and a notebook's run built from them (awdlib.notebook_runs)."""

import itertools
import json
from pathlib import Path

import pytest
import torch

import awdlib
from awdlib import notebook_runs
from awdlib.experiments import ladder_configs, read_runs, run_one
from awdlib.notebook_runs import history_from_row, study_run
from awdlib.shipped import SUMS, load_weights, read_sums, save_weights, sha256, weights_name

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def small_model(seed=0, **changes):
    torch.manual_seed(seed)
    return awdlib.AWDLSTM(awdlib.AWDLSTMConfig(50, **{"emb_size": 8, "hidden_size": 12, **changes}))


def test_weights_round_trip_in_half_precision_with_the_tied_matrix_stored_once(tmp_path):
    model = small_model()
    digest = save_weights(model, tmp_path / "m.safetensors", corpus="ptb", run="x", seed=3)
    assert read_sums(tmp_path) == {"m.safetensors": digest} == {"m.safetensors":
                                                                 sha256(tmp_path / "m.safetensors")}
    loaded, header = load_weights(tmp_path / "m.safetensors")
    assert header["corpus"] == "ptb" and header["run"] == "x" and header["seed"] == "3"
    assert loaded.config == model.config and not loaded.training
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert b.dtype == torch.float32
        assert torch.equal(a.half().float(), b), name  # exactly the half-precision values
    assert loaded.decoder.weight is loaded.encoder.weight  # still tied
    from safetensors import safe_open
    with safe_open(str(tmp_path / "m.safetensors"), framework="pt") as f:
        assert "decoder.weight" not in f.keys()
        assert all(f.get_tensor(k).dtype == torch.float16 for k in f.keys())


def test_an_untied_model_keeps_its_decoder(tmp_path):
    model = small_model(tie_weights=False, emb_size=12)
    save_weights(model, tmp_path / "u.safetensors")
    loaded, _ = load_weights(tmp_path / "u.safetensors")
    assert torch.equal(loaded.decoder.weight, model.decoder.weight.half().float())
    assert loaded.decoder.weight is not loaded.encoder.weight


def test_a_changed_file_is_refused_naming_it_and_both_digests(tmp_path):
    path = tmp_path / "m.safetensors"
    expected = save_weights(small_model(), path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 1  # one flipped bit in the last weight
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError) as err:
        load_weights(path)
    message = str(err.value)
    assert str(path) in message and expected in message and sha256(path) in message
    assert "git checkout" in message


def test_a_missing_or_unlisted_file_gets_a_clear_error(tmp_path):
    path = tmp_path / "m.safetensors"
    save_weights(small_model(), path)
    (tmp_path / "other.safetensors").write_bytes(path.read_bytes())
    with pytest.raises(ValueError, match="no SHA-256 for it"):
        load_weights(tmp_path / "other.safetensors")
    path.unlink()
    with pytest.raises(FileNotFoundError, match="missing"):
        load_weights(path)


def test_weights_names_are_study_scale_run_and_seed():
    assert weights_name("ladder", "demo", "+ AR/TAR", 141) == "ladder-demo-AR-TAR-seed141.safetensors"
    assert weights_name("notebooks", "demo", "cache on WikiText-2", 141) == \
        "notebooks-demo-cache-on-WikiText-2-seed141.safetensors"


@pytest.mark.slow
def test_history_from_a_study_row_matches_the_trained_history(tmp_path, monkeypatch):
    # scripted validation losses and n = 0: the trigger fires at the second check of each phase, so
    # both phases and the switch are covered
    losses = itertools.cycle([2.0, 3.0, 2.5])
    monkeypatch.setattr(awdlib.train, "evaluate", lambda *args, **kwargs: next(losses))
    preset = ladder_configs(awdlib.PRESETS["smoke"])["+ NT-ASGD"].with_train(epochs=3, nonmono=0)
    row = json.loads(json.dumps(run_one("+ NT-ASGD", preset, 1, tmp_path, threads=None)))
    trainer = awdlib.Trainer.resume(tmp_path / "last.pt", preset.corpus())
    history = history_from_row(row, "ntasgd")
    assert not any(r["averaging"] for r in history_from_row(row, "sgd").records
                   if r["phase"] == "train")  # an SGD run's trigger switches nothing
    assert row["trigger_epoch"] is not None and len(history.records) > row["epochs"]
    for ours, theirs in zip(history.records, trainer.history.records, strict=True):
        assert ours["epoch"] == theirs["epoch"] and ours["phase"] == theirs["phase"]
        assert ours["averaging"] == theirs["averaging"], ours["epoch"]
        assert ours["valid_ppl"] == round(theirs["valid_ppl"], 2)
        assert ours["valid_loss"] == pytest.approx(theirs["valid_loss"], abs=0.01 / ours["valid_ppl"])
    assert history.stop_reason == row["finetuned"]["stop_reason"]


@pytest.fixture
def shipped_smoke_run(tmp_path):
    """A smoke-scale ladder run recorded in a study file with its weights shipped, as at demo scale."""
    results, weights = tmp_path / "results", tmp_path / "weights"
    preset = ladder_configs(awdlib.PRESETS["smoke"])["+ weight drop"]
    row = run_one("+ weight drop", preset, 141, tmp_path / "run", threads=None)
    results.mkdir()
    (results / "ladder-smoke.runs.jsonl").write_text(json.dumps(row) + "\n")
    trained = awdlib.Trainer.resume(tmp_path / "run" / "last.pt", preset.corpus())
    trained.load_best()
    save_weights(trained.model, weights / weights_name("ladder", "smoke", "+ weight drop", 141),
                 corpus=trained.corpus.name)
    return results, weights, row, trained


@pytest.mark.slow
def test_a_shipped_run_loads_without_training(shipped_smoke_run, monkeypatch, capsys):
    results, weights, row, trained = shipped_smoke_run
    monkeypatch.setattr(notebook_runs, "run_one", lambda *a, **k: pytest.fail("it trained"))
    trainer = study_run("ladder", "smoke", "+ weight drop", results=results, weights=weights)
    assert "SHA-256 checked" in capsys.readouterr().out
    assert trainer.history.column("valid_ppl") == row["valid_curve"]
    assert trainer.epoch == row["epochs"] and trainer.history.stop_reason == row["stop_reason"]
    for a, b in zip(trainer.model.parameters(), trained.model.parameters()):
        assert torch.equal(a, b.half().float())
    loss = trainer.evaluate("valid")  # the best (shipped) weights, not an average
    assert awdlib.perplexity(loss) == pytest.approx(row["valid_ppl"], rel=2e-3)


@pytest.mark.slow
def test_retrain_trains_visibly_and_compares_with_the_study(shipped_smoke_run, capsys):
    results, weights, row, _ = shipped_smoke_run
    study = (results / "ladder-smoke.runs.jsonl").read_text()
    trainer = study_run("ladder", "smoke", "+ weight drop", retrain=True, results=results,
                        weights=weights, threads=None)
    out = capsys.readouterr().out
    assert "training '+ weight drop' seed 141 now" in out and "the study's run of it took" in out
    assert "epoch   1 | train ppl" in out and "min left" in out  # one line per epoch, time left
    assert f"the study's run with seed 141: valid {row['valid_ppl']:.2f} (+0.00)" in out  # same seed
    assert (results / "ladder-smoke.runs.jsonl").read_text() == study  # the study is left alone
    assert trainer.history.column("epoch") == list(range(1, row["epochs"] + 1))


@pytest.mark.slow
def test_a_run_the_study_lacks_is_trained_and_joins_it(tmp_path, capsys):
    results = tmp_path / "results"
    results.mkdir()
    study_run("ladder", "smoke", "plain LSTM", results=results, weights=tmp_path / "w", threads=None)
    assert [r["name"] for r in read_runs(results / "ladder-smoke.runs.jsonl")] == ["plain LSTM"]
    assert json.loads((results / "ladder-smoke.json").read_text())[0]["name"] == "plain LSTM"
    capsys.readouterr()
    study_run("ladder", "smoke", "plain LSTM", results=results, weights=tmp_path / "w", threads=None)
    assert "training" not in capsys.readouterr().out  # the finished run is reused


def test_every_shipped_file_is_listed_checked_and_recorded_by_its_study():
    weights = NOTEBOOKS / "weights"
    sums = read_sums(weights)
    files = sorted(p.name for p in weights.glob("*.safetensors"))
    assert files and sorted(sums) == files
    total = sum((weights / name).stat().st_size for name in files)
    assert total <= 30 * 1024 * 1024
    for name, digest in sums.items():
        assert sha256(weights / name) == digest, name
        study, scale = name.split("-")[:2]
        runs = read_runs(NOTEBOOKS / "results" / f"{study}-{scale}.runs.jsonl")
        assert any(weights_name(study, scale, r["name"], r["seed"]) == name for r in runs), name


@pytest.mark.slow
def test_a_record_is_read_from_the_study_or_trained_when_missing(shipped_smoke_run, monkeypatch,
                                                                 capsys):
    from awdlib.notebook_runs import study_record
    results, weights, row, _ = shipped_smoke_run
    preset = ladder_configs(awdlib.PRESETS["smoke"])["+ weight drop"]
    trained = study_record("ladder", "smoke", "+ weight drop", preset=preset, results=results)
    assert trained == json.loads(json.dumps(row)) and "read '+ weight drop'" in capsys.readouterr().out
    other = study_record("notebooks", "smoke", "ASGD", 141, preset.with_train(optimizer="asgd"),
                         results=results, threads=None)
    assert other["name"] == "ASGD" and other["valid_curve"]
    assert read_runs(results / "notebooks-smoke.runs.jsonl") == [other]
