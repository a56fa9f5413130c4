import dataclasses
import json

import pytest
import torch

import awdlib
import awdlib.train as train_module
from awdlib.experiments import (ABLATION, ABLATION_SMOKE, PAPER_ABLATION, ablation_configs,
                                study_preset, study_stem, write_summary)
from awdlib.results import rank_correlation, ranks
from test_experiments import differences


@pytest.mark.parametrize("variable", [True, False])
def test_variable_bptt_switch_decides_the_training_window_lengths(tiny_corpus, monkeypatch,
                                                                   variable):
    preset = awdlib.PRESETS["smoke"].with_train(epochs=1, bptt=20, batch_size=5, log_epochs=False,
                                                variable_bptt=variable)
    trainer = preset.trainer(tiny_corpus)
    lengths, real_batches = [], train_module.bptt_batches

    def recording_batches(source, bptt, variable=True, generator=None, **kwargs):
        for batch in real_batches(source, bptt, variable, generator, **kwargs):
            if source is trainer.train_data:  # training windows only, not evaluation's
                lengths.append(batch[2])
            yield batch
    monkeypatch.setattr(train_module, "bptt_batches", recording_batches)
    trainer.fit()
    steps = trainer.train_data.size(0) - 1
    assert sum(lengths) == steps and len(lengths) > 20  # one pass over the data either way
    if variable:  # Section 4.1: drawn with the run's own seed, so exactly the library sampler's
        sampler = real_batches(trainer.train_data, 20, True, torch.Generator().manual_seed(141))
        assert lengths == [n for _, _, n in sampler] and len(set(lengths)) > 3
    else:
        assert set(lengths[:-1]) == {20} and lengths[-1] == steps - 20 * (len(lengths) - 1)


def test_variable_bptt_must_be_true_or_false():
    with pytest.raises(ValueError, match="variable_bptt"):
        awdlib.TrainConfig(variable_bptt="no")


# ----------------------------------------------------------------------------- the configurations
def test_ablation_rows_are_the_papers_labels_and_each_removes_exactly_its_technique():
    smoke = awdlib.PRESETS["smoke"]
    configs = ablation_configs(smoke)
    assert ABLATION == ("AWD-LSTM", "– fine-tuning", "– NT-ASGD", "– variable sequence lengths",
                        "– embedding dropout", "– weight decay", "– AR/TAR",
                        "– full sized embedding", "– weight-dropping")
    assert list(configs) == [n for n in ABLATION if n != "– fine-tuning"]  # read from AWD-LSTM's runs
    assert set(PAPER_ABLATION["ptb"]) == set(PAPER_ABLATION["wikitext-2"]) == set(ABLATION)
    full = configs["AWD-LSTM"]
    assert full == smoke and full.train.optimizer == "ntasgd" and full.finetune_epochs > 0
    hidden = smoke.model["hidden_size"]
    assert {name: differences(full, c) for name, c in configs.items()} == {
        "AWD-LSTM": {},
        "– NT-ASGD": {"optimizer": ("ntasgd", "sgd")},
        "– variable sequence lengths": {"variable_bptt": (True, False)},
        "– embedding dropout": {"dropoute": (smoke.model["dropoute"], 0.0)},
        "– weight decay": {"weight_decay": (smoke.train.weight_decay, 0.0)},
        "– AR/TAR": {"alpha": (smoke.train.alpha, 0.0), "beta": (smoke.train.beta, 0.0)},
        "– full sized embedding": {"emb_size": (smoke.model["emb_size"], hidden)},
        "– weight-dropping": {"wdrop": (smoke.model["wdrop"], 0.0)},
    }
    assert all((c.finetune_epochs, c.train_fraction, c.eval_fraction, c.train.epochs)
               == (full.finetune_epochs, full.train_fraction, full.eval_fraction, full.train.epochs)
               for c in configs.values())  # the same budget for every row
    assert all(n in configs for n in ABLATION_SMOKE)


def test_full_sized_embedding_makes_every_layer_hidden_sized_and_still_tied():
    paper = awdlib.PRESETS["ptb"]
    sizes = {}
    for name in ("AWD-LSTM", "– full sized embedding"):
        model = awdlib.AWDLSTM(ablation_configs(paper)[name].model_config(10000))
        assert model.decoder.weight is model.encoder.weight
        sizes[name] = ([r.module.hidden_size for r in model.rnns], model.encoder.embedding_dim,
                       round(model.num_parameters() / 1e6, 1))
    assert sizes["AWD-LSTM"] == ([1150, 1150, 400], 400, 24.2)
    assert sizes["– full sized embedding"] == ([1150, 1150, 1150], 1150, 43.3)  # "43M" in the paper


def test_the_ablation_needs_a_full_recipe_to_remove_things_from():
    with pytest.raises(ValueError, match="NT-ASGD"):
        ablation_configs(awdlib.PRESETS["smoke"].with_train(optimizer="sgd"))


def test_ablation_demo_scale_is_the_demo_recipe_on_less_data():
    demo, ablation = awdlib.PRESETS["demo"], awdlib.PRESETS["ablation-demo"]
    assert ablation.model == demo.model and ablation.dataset == "ptb"
    assert differences(demo, ablation) == {"epochs": (40, 32)}
    assert (ablation.train_fraction, ablation.eval_fraction, ablation.finetune_epochs) == (0.05, 0.25, 5)
    assert study_preset("ablation", "demo") == "ablation-demo" and study_preset("ablation", "smoke") == "smoke"
    assert study_preset("ladder", "demo") == "demo"
    assert study_stem("ablation", "ablation-demo") == "ablation-demo"
    assert study_stem("ablation", "smoke") == "ablation-smoke" and study_stem("ladder", "demo") == "ladder-demo"


# ------------------------------------------------------------------------------------ the summary
def run(name, seed, valid, finetuned=None, trigger=None):
    row = {"name": name, "seed": seed, "valid_ppl": valid, "test_ppl": valid - 10, "epochs": 30,
           "seconds": 100.0, "trigger_epoch": trigger}
    if finetuned is not None:
        row["finetuned"] = {"valid_ppl": finetuned, "test_ppl": finetuned - 10, "epochs": 35,
                            "seconds": 120.0}
    return row


def study(tmp_path, runs):
    rows = write_summary("ablation", runs, tmp_path / "ablation-x.json", awdlib.PRESETS["smoke"])
    return rows, awdlib.Ablation.for_scale("x", tmp_path)


def test_rows_read_fine_tuned_results_and_minus_fine_tuning_before_them(tmp_path):
    runs = [run("AWD-LSTM", s, v, tuned, trigger=20)
            for s, v, tuned in ((141, 300, 290), (142, 310, 310), (143, 320, 300))]
    runs += [run("– weight-dropping", s, v, v - 2) for s, v in ((141, 400), (142, 420), (143, 410))]
    runs += [run("– AR/TAR", s, v, v - 10) for s, v in ((142, 305), (141, 290))]  # one seed to go
    rows, ablation = study(tmp_path, runs)
    assert [r["name"] for r in rows] == ["AWD-LSTM", "– fine-tuning", "– AR/TAR", "– weight-dropping"]
    full, no_ft, ar_tar, no_wdrop = rows
    assert full["valid_ppl_seeds"] == [290, 310, 300] and full["valid_ppl"] == 300  # fine-tuned
    assert full["before_finetuning"]["valid_ppl"] == 310 and full["trigger_epoch_seeds"] == [20] * 3
    assert no_ft["valid_ppl_seeds"] == [300, 310, 320] and "before_finetuning" not in no_ft
    assert ar_tar["seeds"] == [141, 142] and ar_tar["valid_ppl_seeds"] == [280, 295]
    assert no_wdrop["valid_ppl"] == 408 and full["scale"]["dataset"] == "ptb"
    assert full["scale"]["run_seconds"] == 8 * 120.0  # each run's time to the end of fine-tuning
    assert "parameters" not in full["scale"]  # it needs the vocabulary's size
    assert ablation.change("– weight-dropping") == 108 and ablation.paper_change("– weight-dropping") == 11.1
    assert ablation.seed_changes("– AR/TAR") == {141: -10, 142: -15}
    assert ablation.seed_changes("– weight-dropping") == {141: 108, 142: 108, 143: 108}
    assert ablation.noise("– weight-dropping") == 0  # paired: the seeds' spread cancels
    assert ablation.verdict("– weight-dropping") == "reproduced"  # 108 > 3 x 0
    assert ablation.seed_changes("– fine-tuning") == {141: 10, 142: 0, 143: 20}
    assert ablation.noise("– fine-tuning") == 10  # the sd of 10, 0, 20
    assert ablation.verdict("– fine-tuning") == "within noise"  # 10 < 3 x 10
    assert ablation.change("– AR/TAR") == -12.5  # the mean over the two shared seeds
    assert ablation.verdict("– NT-ASGD") == "not run"
    table = ablation.table()
    assert "408.00 ± 10.00" in table and "+108.00" in table and "+11.1" in table
    assert ablation.capped() == {name: [141, 142, 143] for name in
                                 ("AWD-LSTM", "– fine-tuning", "– weight-dropping")} | {
        "– AR/TAR": [141, 142]}  # no stop reason: the runs went to their cap
    assert not ablation.converged and ablation.gate().startswith("not converged: AWD-LSTM: seeds")
    assert "– AR/TAR" in table and "    2 " in table  # shown with its two seeds
    reading = ablation.reading()
    assert reading[-2].startswith("1 of 8 rows reproduce the paper's direction")
    assert "5 have not run" in reading[-2]
    assert reading[-1] == "Spearman rank correlation with the paper's changes over 3 rows: +0.50."


def test_summary_scale_counts_each_configurations_parameters(tmp_path):
    preset = awdlib.PRESETS["smoke"]
    runs = [run("AWD-LSTM", 141, 300, 290), run("– full sized embedding", 141, 310)]
    rows = write_summary("ablation", runs, tmp_path / "ablation-x.json", preset, vocab_size=50)
    counts = rows[0]["scale"]["parameters"]
    assert list(counts) == list(ablation_configs(preset))
    full = awdlib.AWDLSTM(preset.model_config(50)).num_parameters()
    assert counts["AWD-LSTM"] == counts["– weight-dropping"] == full
    assert counts["– full sized embedding"] > full
    assert rows[0]["scale"]["run_seconds"] == 120.0 + 100.0


def test_a_change_against_the_paper_beyond_the_noise_is_called_opposite(tmp_path):
    runs = [run("AWD-LSTM", s, v, v) for s, v in ((1, 300), (2, 302))]
    runs += [run("– embedding dropout", s, v, v) for s, v in ((1, 250), (2, 252))]
    _, ablation = study(tmp_path, runs)
    assert ablation.verdict("– embedding dropout") == "opposite"
    _, one_seed = study(tmp_path, runs[:1] + runs[2:3])
    assert one_seed.verdict("– embedding dropout") == "one seed"
    assert awdlib.Ablation(tmp_path / "missing.json").reading()[0].startswith("The full model")


def test_rank_correlation_is_spearmans_rho_with_mean_ranks_for_ties():
    assert ranks([10, 30, 20, 20]) == [1, 4, 2.5, 2.5]
    assert rank_correlation([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert rank_correlation([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    a, b = [3.1, 0.2, 7.5, 1.0, 5.5], [2.0, 1.0, 5.0, 3.0, 4.0]
    d2 = sum((x - y) ** 2 for x, y in zip(ranks(a), ranks(b)))
    assert rank_correlation(a, b) == pytest.approx(1 - 6 * d2 / (5 * (25 - 1)))  # no ties: 1 - 6Σd²/n(n²-1)
    assert rank_correlation([1], [2]) is None and rank_correlation([1, 1], [1, 2]) is None


@pytest.mark.slow
def test_the_ablation_study_runs_from_the_command_line_at_smoke_scale(tmp_path):
    from awdlib.__main__ import main

    assert main(["experiment", "ablation", "--preset", "smoke", "--seeds", "141", "--only",
                 *ABLATION_SMOKE, "--results", str(tmp_path), "--set", "train.epochs=1",
                 "--workers", "0"]) == 0  # in this process
    ablation = awdlib.Ablation.for_scale("smoke", tmp_path)
    assert [r["name"] for r in ablation.rows] == ["AWD-LSTM", "– fine-tuning", "– weight-dropping"]
    run = json.loads((tmp_path / "ablation-smoke.runs.jsonl").read_text().splitlines()[0])
    before = ablation.get("– fine-tuning")
    if run["name"] == "AWD-LSTM":
        assert before["valid_ppl_seeds"] == [round(run["valid_ppl"], 2)]
    assert ablation.verdict("– weight-dropping") == "one seed"
    scale = json.loads((tmp_path / "ablation-smoke.json").read_text())[0]["scale"]
    assert tuple(scale["parameters"]) == ABLATION[:1] + ABLATION[2:]  # every trained configuration
    assert scale["run_seconds"] > 0


def test_plot_ablation_keeps_every_row_and_shows_each_rows_seed_count(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from awdlib.plots import plot_ablation

    runs = [run("AWD-LSTM", s, v, v) for s, v in ((141, 300), (142, 310))]
    runs += [run("– weight-dropping", 141, 380, 370)]
    _, ablation = study(tmp_path, runs)
    fig = plot_ablation(ablation)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert len(labels) == 8 and labels[-1] == "– weight-dropping (1 seed)"  # the paper's largest on top
    assert "– fine-tuning (2 seeds)" in labels and "– AR/TAR" in labels  # not run yet: no count
    matplotlib.pyplot.close(fig)


def stopped(row: dict, finetune_rule: str = "non-monotonic criterion met at epoch 60: done") -> dict:
    """A run whose training ended by early stopping and whose fine-tuning ended by ``finetune_rule``."""
    row = {**row, "stop_reason": "no better validation loss for 20 epochs: stopped early at epoch 50"}
    if "finetuned" in row:
        row["finetuned"] = {**row["finetuned"], "stop_reason": finetune_rule}
    return row


def test_the_gate_passes_only_when_every_run_stopped_by_its_rule(tmp_path):
    runs = [stopped(run("AWD-LSTM", s, 300 + s, 290 + s)) for s in (1, 2)]
    runs += [stopped(run("– AR/TAR", s, 310 + s, 305 + s)) for s in (1, 2)]
    _, ablation = study(tmp_path, runs)
    assert not ablation.converged and ablation.capped() == {}  # 3 rows of 9, 2 seeds: too few
    assert ablation.gate().startswith("not converged yet: incomplete, 3 of 9 rows from 4 runs")
    full = [stopped(run(name, s, 300 + s, 290 + s)) for name in ABLATION[2:] for s in (1, 2, 3)]
    full += [stopped(run("AWD-LSTM", s, 300 + s, 290 + s)) for s in (1, 2, 3)]
    _, complete = study(tmp_path, full)
    assert complete.converged and complete.gate().startswith(
        "converged: all 24 runs of the 9 rows stopped by their rule")
    _, short = study(tmp_path, full[:-1])  # the full model lacks seed 3
    assert not short.converged and "incomplete" in short.gate()
    runs[3] = stopped(runs[3], finetune_rule=None)  # seed 2's fine-tuning ran to its cap
    _, ablation = study(tmp_path, runs)
    assert not ablation.converged and ablation.capped() == {"– AR/TAR": [2]}
    assert ablation.gate() == "not converged: – AR/TAR: seed 2 at the cap"
    runs[3] = {**runs[3], "stop_reason": None}  # and its training too
    runs[0] = stopped(runs[0], finetune_rule="no better validation loss for 20 epochs: early")
    _, ablation = study(tmp_path, runs)
    assert ablation.capped() == {"– AR/TAR": [2]}  # early stopping may end fine-tuning too


def test_rank_correlation_evidence_bootstraps_seeds_and_permutes_rows_exactly(tmp_path):
    from awdlib.experiments import PAPER_ABLATION
    from awdlib.results import rank_correlation

    paper = {n: r["valid"] - PAPER_ABLATION["ptb"]["AWD-LSTM"]["valid"]
             for n, r in PAPER_ABLATION["ptb"].items() if n != "AWD-LSTM"}
    # seed 1: twice the paper's changes; seed 2: the paper's, with its two largest swapped
    swap = {"– full sized embedding": "– weight-dropping", "– weight-dropping": "– full sized embedding"}
    change = {1: {n: 2 * d for n, d in paper.items()}, 2: {n: paper[swap.get(n, n)] for n in paper}}
    runs = [run("AWD-LSTM", s, 300 + change[s]["– fine-tuning"], 300) for s in (1, 2)]
    runs += [run(name, s, 0, 300 + change[s][name]) for name in ABLATION[2:] for s in (1, 2)]
    _, ablation = study(tmp_path, runs)
    evidence = ablation.rank_correlation_evidence()
    assert evidence["seeds"] == [1, 2] and len(evidence["rows"]) == 8
    assert evidence["rho"] == pytest.approx(1.0)  # the means keep the paper's order
    # the bootstrap's four draws (1,1), (1,2), (2,1), (2,2): rho 1, 1, 1 and seed 2's alone
    seed2 = rank_correlation([change[2][n] for n in evidence["rows"]],
                             [paper[n] for n in evidence["rows"]])
    assert seed2 == pytest.approx(1 - 6 * 2 / (8 * 63))  # one swapped pair: sum d^2 = 2
    low, high = evidence["interval"]
    assert high == pytest.approx(1.0) and low == pytest.approx(seed2 + (1 - seed2) * 0.075)
    # only the paper's own order (1 of 8! = 40,320) reaches rho = 1
    assert evidence["p_value"] == pytest.approx(1 / 40_320)


def test_the_ladders_last_rungs_are_runs_the_ablation_trained_already():
    from awdlib.experiments import ladder_configs, ladder_rows, ladder_runs_from_ablation

    preset = awdlib.PRESETS["ablation-converged"]
    ladder, ablation = ladder_configs(preset), ablation_configs(preset)
    assert ladder["+ NT-ASGD"].fingerprint() == ablation["AWD-LSTM"].fingerprint()
    no_finetuning = dataclasses.replace(ablation["– NT-ASGD"], finetune_epochs=0)
    assert ladder["+ AR/TAR"].fingerprint() == no_finetuning.fingerprint()
    runs = [run("AWD-LSTM", s, 300 + s, 290 + s) for s in (1, 2)]
    runs += [run("– NT-ASGD", s, 310 + s, 305 + s) for s in (1, 2)]
    runs += [run("– AR/TAR", 1, 400, 390)]
    rows = {r["name"]: r for r in ladder_rows(ladder_runs_from_ablation(runs))}
    assert list(rows) == ["+ AR/TAR", "+ NT-ASGD", "+ fine-tuning"]
    assert rows["+ AR/TAR"]["valid_ppl_seeds"] == [311, 312]  # before the ablation's fine-tuning
    assert rows["+ NT-ASGD"]["valid_ppl_seeds"] == [301, 302]
    assert rows["+ fine-tuning"]["valid_ppl_seeds"] == [291, 292]


@pytest.mark.slow
def test_the_crossover_pilot_runs_from_the_command_line_at_smoke_scale(tmp_path):
    from awdlib.__main__ import main

    assert main(["experiment", "crossover", "--preset", "smoke", "--seeds", "141", "--results",
                 str(tmp_path), "--set", "train.epochs=1", "--workers", "0"]) == 0
    runs = [json.loads(line) for line in (tmp_path / "crossover-smoke.runs.jsonl").read_text().splitlines()]
    assert [r["name"] for r in runs] == ["AWD-LSTM", "– weight-dropping", "plain LSTM"]
    assert "finetuned" not in runs[2] and "finetuned" in runs[0]  # the plain LSTM: no fine-tuning
    rows = json.loads((tmp_path / "crossover-smoke.json").read_text())
    assert [r["name"] for r in rows] == ["AWD-LSTM", "– weight-dropping", "plain LSTM"]
