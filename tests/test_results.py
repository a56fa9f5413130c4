import json

import awdlib
from awdlib.experiments import ladder_rows


def runs(name, values):
    return [{"name": name, "seed": seed, "valid_ppl": v, "test_ppl": v - 10.0, "epochs": 3,
             "seconds": 1.0} for seed, v in enumerate(values, start=141)]


def write_ladder(tmp_path, rows):
    path = tmp_path / "ladder-x.json"
    path.write_text(json.dumps(rows))
    return awdlib.Ladder.for_scale("x", tmp_path)


def test_table_gives_mean_and_std_and_stops_at_a_rung(tmp_path):
    ladder = write_ladder(tmp_path, ladder_rows(runs("plain LSTM", [310.0, 320.0, 330.0])
                                                + runs("+ weight drop", [300.0, 301.0, 302.0])
                                                + runs("+ locked dropout", [280.0, 290.0, 285.0])))
    table = ladder.table(upto=2)
    assert "320.00 ± 10.00" in table and "301.00 ± 1.00" in table and "+ locked dropout" not in table
    assert "-11.1" in table  # the paper's change for weight drop (Table 3: 71.1 -> 60.0)
    assert "+ locked dropout" in ladder.table()


def test_compare_measures_the_change_against_the_larger_seed_std(tmp_path):
    ladder = write_ladder(tmp_path, ladder_rows(runs("plain LSTM", [310.0, 320.0, 330.0])
                                                + runs("+ weight drop", [300.0, 301.0, 302.0])
                                                + runs("+ locked dropout", [260.0, 270.0, 280.0])))
    assert "(-19.00), 1.9 times" in ladder.compare("+ weight drop", "plain LSTM")
    assert "does not clear the noise" in ladder.compare("+ weight drop", "plain LSTM")
    assert "clears the noise" in ladder.compare("+ locked dropout", "+ weight drop")
    assert "not both in the ladder" in ladder.compare("+ AR/TAR", "plain LSTM")


def test_compare_counts_the_seeds_that_improved_pairing_runs_by_seed(tmp_path):
    ladder = write_ladder(tmp_path, ladder_rows(runs("plain LSTM", [310.0, 320.0, 330.0])
                                                + runs("+ weight drop", [312.0, 301.0, 302.0])))
    assert ladder.paired_changes("+ weight drop", "plain LSTM") == {141: 2.0, 142: -19.0, 143: -28.0}
    assert ladder.compare("+ weight drop", "plain LSTM").endswith(
        "seed by seed: lower in 2 of 3 (+2.00, -19.00, -28.00)")
