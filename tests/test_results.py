import json

import pytest

import awdlib
from awdlib.train import evaluate, perplexity


def test_ladder_upserts_by_name_keeps_rung_order_and_persists(tmp_path):
    ladder = awdlib.Ladder(tmp_path / "ladder.json")
    ladder.record("+ weight drop", 300.0, 290.0, rung=2)
    ladder.record("plain LSTM", 320.0, 310.0, rung=1)
    ladder.record("+ weight drop", 299.0, 289.0, rung=2)  # a re-run replaces its row
    rows = json.loads((tmp_path / "ladder.json").read_text())
    assert [(r["name"], r["valid_ppl"]) for r in rows] == [("plain LSTM", 320.0), ("+ weight drop", 299.0)]
    assert awdlib.Ladder(tmp_path / "ladder.json").get("+ weight drop")["test_ppl"] == 289.0


def test_table_can_stop_at_a_rung(tmp_path):
    ladder = awdlib.Ladder(tmp_path / "ladder.json")
    for rung, name in enumerate(["plain LSTM", "+ weight drop", "+ locked dropout"], start=1):
        ladder.record(name, 300.0 - rung, None, rung=rung)
    assert "+ locked dropout" in ladder.table()
    table = ladder.table(upto=2)
    assert "+ weight drop" in table and "+ locked dropout" not in table


def test_record_trainer_scores_the_best_checkpoint_on_test(tiny_corpus, tmp_path):
    preset = awdlib.PRESETS["smoke"].with_train(log_epochs=False, epochs=3)
    trainer = preset.trainer(tiny_corpus, checkpoint_dir=tmp_path / "run")
    trainer.fit()
    row = awdlib.Ladder(tmp_path / "ladder.json").record_trainer("run", trainer, rung=1,
                                                                notebook="test")
    best = awdlib.checkpoint.load_model(tmp_path / "run" / "best.pt")
    c = preset.train
    expected = perplexity(evaluate(best, tiny_corpus.test, c.bptt, c.test_batch_size))
    assert row["test_ppl"] == pytest.approx(expected, abs=0.01)
    assert row["valid_ppl"] == pytest.approx(trainer.history.best()["valid_ppl"], abs=0.01)
    assert len(row["valid_curve"]) == row["epochs"] == 3
