# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: -papermill,-execution
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 08 · Ablations: what each technique is worth, at a scale a CPU can run
#
# Notebooks 01–05 built the AWD-LSTM by *adding* one technique at a time (the results ladder). The
# paper measures the techniques the other way round: it trains the full model, then trains it again
# with **one technique removed**, and reports how much worse each "– X" model is. A technique that
# matters shows up as a large rise in perplexity when it is taken away; one that another technique
# can stand in for shows up as a small one.
#
# This notebook runs that table with the same library, on a CPU, with several seeds, and reads our
# numbers against the paper's: which removals hurt beyond the seed-to-seed noise, and whether our
# ordering of the techniques agrees with the paper's. It runs it twice: with a short budget (32 epochs,
# the runs still improving when they end) and trained to convergence (every run stopped by early
# stopping), because what a regulariser is worth depends on when you stop looking. A pilot measures
# that first.

# %% tags=["parameters"]
import os
scale = os.environ.get("AWDLIB_SCALE", "demo")  # "smoke": seconds (CI) | "demo": the ablation study (CPU hours)
threads = int(os.environ.get("AWDLIB_THREADS", "1"))  # 1, as the studies (nothing trains at demo scale)
seeds = [141, 142, 143]  # used only when the study has to run here (smoke: the first)
workers = 2  # runs side by side when the study has to run here, one torch thread each

# %%
# %matplotlib inline
from pathlib import Path

import matplotlib.pyplot as plt
import torch

import awdlib
from awdlib.experiments import (ABLATION, ABLATION_SMOKE, PAPER_ABLATION, ablation_configs,
                                crossover_configs, read_runs, run_study, study_preset, study_runs,
                                study_stem, summary_rows)
from awdlib.plots import plot_ablation, plot_crossover
from awdlib.results import crossover, rank_correlation

torch.set_num_threads(threads)
preset_name = study_preset("ablation", scale)  # the short-budget study: "ablation-demo" at demo scale
converged_name = "ablation-converged" if scale == "demo" else scale  # trained to convergence
pilot_name = "crossover-pilot" if scale == "demo" else scale  # the pilot below
preset, converged_preset = awdlib.PRESETS[preset_name], awdlib.PRESETS[converged_name]
for name in dict.fromkeys((pilot_name, preset_name, converged_name)):
    print(f"{name!r}: {awdlib.PRESETS[name].description}")

# %% [markdown]
# ## When does regularisation pay? A pilot
#
# A regulariser makes training harder on purpose: the model fits the training text more slowly, in
# exchange for fitting it less *too well*. So early in training a regularised model is behind, and it
# can only pull ahead once the unregularised one starts to overfit. Where is that point, and is it
# inside the budget of a study?
#
# The pilot trains three configurations with one seed, on the first 3% of PTB's training text (an
# epoch takes seconds) and a quarter of validation and test, each until early stopping ends it:
# **the full recipe** (notebook 05), the full recipe **without weight drop** (the paper's largest
# ablation row) and the **plain LSTM** of notebook 01. "Stopped" means 20 epochs without a better
# validation loss (room for NT-ASGD's n = 5 to fire and for the average to work), within a cap of 300
# epochs that no run reached. The full recipe then switches to fine-tuning, which the pilot does not
# read. The command:
#
# ```bash
# python -m awdlib experiment crossover --preset crossover-pilot --seeds 141 --workers 2
# ```

# %%
pilot = awdlib.PRESETS[pilot_name]
pilot_file = (Path("results") / study_stem("crossover", pilot_name)).with_suffix(".runs.jsonl")
pilot_configs = crossover_configs(pilot)
pilot_runs = study_runs(read_runs(pilot_file), pilot_configs)
if len(pilot_runs) < len(pilot_configs):
    print(f"{pilot_file} lacks runs: training the pilot here")
    pilot_runs = run_study(pilot_configs, seeds[:1], pilot_file,
                           Path("results/checkpoints") / pilot_name / "crossover",
                           workers=0 if scale == "smoke" else workers)
pilot_runs = {r["name"]: r for r in pilot_runs}
print(f"{'':20} {'best valid':>10} {'at epoch':>8} {'epochs':>6} {'averaging after':>15} "
      f"{'train ppl at best':>17}")
for name, r in pilot_runs.items():
    trigger = r.get("trigger_epoch")
    print(f"{name:20} {r['valid_ppl']:10.2f} {r['best_epoch']:8d} {r['epochs']:6d} "
          f"{'never' if trigger is None else f'epoch {trigger}':>15} "
          f"{r['train_curve'][r['best_epoch'] - 1]:17.2f}")

# %% [markdown]
# Where does the full recipe overtake each of the others *for good* (ahead at that epoch and at every
# later epoch both runs had), and by how much is it ahead once each run has stopped?

# %%
full_curve = pilot_runs["AWD-LSTM"]["valid_curve"]
cap = preset.train.epochs  # the short-budget study's epoch cap
for name in ("– weight-dropping", "plain LSTM"):
    r = pilot_runs[name]
    epoch = crossover(full_curve, r["valid_curve"])
    ahead = [t + 1 for t in range(min(len(full_curve), len(r["valid_curve"])))
             if full_curve[t] < r["valid_curve"][t]]
    print(f"full recipe vs {name}: "
          + ("never ahead for good" if epoch is None else f"ahead for good from epoch {epoch}")
          + f" (ahead in {len(ahead)} of {min(len(full_curve), len(r['valid_curve']))} shared epochs"
          + (f", the last at epoch {ahead[-1]}" if ahead and epoch is None else "") + ")")
    if len(full_curve) >= cap and len(r["valid_curve"]) >= cap:
        print(f"  at epoch {cap}: {full_curve[cap - 1]:.2f} against {r['valid_curve'][cap - 1]:.2f} "
              f"(best so far {min(full_curve[:cap]):.2f} against {min(r['valid_curve'][:cap]):.2f})")
    print(f"  once both stopped: best validation perplexity {pilot_runs['AWD-LSTM']['valid_ppl']:.2f} "
          f"against {r['valid_ppl']:.2f} ({r['valid_ppl'] - pilot_runs['AWD-LSTM']['valid_ppl']:+.2f} "
          f"for {name})")
for name, r in pilot_runs.items():
    if r["best_epoch"] > cap:  # still improving at the short budget's cap
        print(f"{name}: at epoch {cap}, {r['valid_curve'][cap - 1] - r['valid_ppl']:.2f} above its "
              f"best (epoch {r['best_epoch']})")

# %% [markdown]
# ### Early stopping for averaged weights
#
# Once NT-ASGD averages, the validation curve becomes smooth and falls by ever smaller steps long
# after the SGD iterate has begun to overfit (its training perplexity keeps falling). Waiting for "no
# lower loss for 20 epochs" can then take hundreds of epochs for gains of a tenth of a point. So the
# converged study counts an epoch as *better* only if its perplexity is at least 0.5% below the last
# counted best (about 2 points here, less than seeds differ by). The rule only decides when to stop,
# never what is trained, so it can be applied to the pilot's curves after the fact. From scratch, then
# checked against the library's rule (`History.last_improvement`, which `TrainConfig.min_improvement`
# uses):

# %%
import math


def stop_epoch(curve, patience, share):
    """The epoch at which early stopping ends a run with these validation perplexities: `patience`
    epochs after the last one that was more than `share` below the best counted before it."""
    counted, last = math.inf, 0
    for epoch, ppl in enumerate(curve, start=1):
        if ppl < counted * (1 - share):
            counted, last = ppl, epoch
        if epoch - last >= patience:
            return epoch
    return None


rule = converged_preset.train
stops = {}
for name, r in pilot_runs.items():
    curve = r["valid_curve"]
    records = [{"epoch": e, "valid_loss": math.log(p)} for e, p in enumerate(curve, start=1)]
    patience = rule.patience or 1
    ours = stop_epoch(curve, patience, rule.min_improvement)
    seen = records[:ours] if ours else records  # what the library's rule had seen by then
    library = awdlib.train.History(seen).last_improvement(rule.min_improvement)
    assert library == ours - patience if ours else len(curve) - library < patience
    if ours is not None:
        stops[name] = {f"{rule.min_improvement:.1%} rule stops": ours}
    print(f"{name:20} strict rule: stopped after epoch {r['epochs']} (best {r['valid_ppl']:.2f}); "
          + (f"{rule.min_improvement:.1%} rule: after epoch {ours}, best by then "
             f"{min(curve[:ours]):.2f}" if ours else "the share rule would not have stopped it yet"))

# %%
plot_crossover(list(pilot_runs.values()), "AWD-LSTM", ["– weight-dropping", "plain LSTM"],
               stops=stops, title=f"{pilot_name}, seed {seeds[0]}: validation perplexity per epoch")
plt.show()

# %% [markdown]
# ## The paper's table
#
# Validation and test perplexity of the paper's best LSTM on Penn Treebank and WikiText-2, and of the
# same model with one technique removed; Δ is the rise in validation perplexity over the full model.

# %%
print(f"{'':28} {'PTB valid':>9} {'test':>5} {'Δ valid':>8}   {'WT2 valid':>9} {'test':>5} {'Δ valid':>8}")
for name in ABLATION:
    cells = []
    for dataset in ("ptb", "wikitext-2"):
        table = PAPER_ABLATION[dataset]
        row, change = table[name], table[name]["valid"] - table["AWD-LSTM"]["valid"]
        cells.append(f"{row['valid']:9.1f} {row['test']:5.1f} "
                     + (f"{change:+8.1f}" if name != "AWD-LSTM" else " " * 8))
    print(f"{name:28} " + "   ".join(cells))

# %% [markdown]
# On both datasets removing weight-dropping (DropConnect on the recurrent weights, notebook 02) costs
# the most, and fine-tuning and variable sequence lengths the least. The middle of the ranking differs
# between the two datasets: AR/TAR costs more on WikiText-2 than on PTB, weight decay and embedding
# dropout less. So even at full scale the order is not a law of nature.
#
# ## The design
#
# Every row is the full recipe with **one thing removed**, trained with the **same seeds**, on the same
# data, with the same budget: the same epoch cap, the same early stopping (stop after a number of
# epochs without a better validation loss) and the same fine-tuning afterwards. So every row except
# "– NT-ASGD" averages its iterates once NT-ASGD's trigger fires, and **every row is fine-tuned**
# (averaged SGD from its best weights, notebook 05), so every row is scored on averaged weights, which
# removes most of plain SGD's epoch-to-epoch noise. Each run is scored at its best validation epoch;
# test perplexity is that checkpoint's, at batch 1, as in the paper.
#
# - **AWD-LSTM**: the full recipe: weight drop, locked dropout, embedding dropout, AR/TAR, weight decay,
#   variable sequence lengths, the small tied embedding, NT-ASGD, then fine-tuning.
# - **– fine-tuning** costs no run of its own: it is the full model's runs *before* their fine-tuning.
#   So it also trains for fewer epochs than every other row (no fine-tuning epochs), which matters
#   when the runs are still improving (below).
# - **– NT-ASGD**: plain SGD at the constant learning rate, never averaging during training. We still
#   fine-tune it: the row should remove one technique, as every other row does, and be scored on
#   averaged weights like them. (The paper's text describes its "– NT-ASGD" model as SGD whose learning
#   rate is halved, by the same non-monotonic criterion; we do not decay the learning rate: our row is
#   the plain SGD of the ladder's rungs 1–5.) The runs' results before fine-tuning are kept too, so
#   the row without both averaging steps can be read as well (below).
# - **– variable sequence lengths**: every training window exactly `bptt` long
#   (`TrainConfig(variable_bptt=False)`) instead of Section 4.1's random lengths (notebook 00); the
#   learning rate is then never rescaled.
# - **– embedding dropout**, **– weight-dropping**: that dropout's rate set to 0; **– AR/TAR**: both
#   penalties' weights set to 0; **– weight decay**: weight decay 0.
# - **– full sized embedding**, our reading of Section 4.5 and of the paper's ablation text. The full
#   model's embedding is *smaller* than its hidden state (400 against 1150 on PTB): the first LSTM
#   layer takes 400-wide inputs and the last one is made 400 wide, so that the decoder can share
#   (be tied to) the embedding matrix. Removing this means going back to "matching the sizes of the
#   embedding vectors and the hidden states": an embedding as wide as the hidden size, every LSTM layer
#   hidden-sized, still tied. At the paper's size that is the "43M parameters" the paper gives for
#   PTB, against 24M (the cell below counts them); here it means `emb_size = hidden_size`.
#
# ## Build the rows, check them against the library
#
# Each row as the change it makes to the full recipe, applied with `Preset.with_model` /
# `Preset.with_train`; `awdlib.experiments.ablation_configs` must give exactly these configurations.

# %%
hidden = preset.model["hidden_size"]
removals = {
    "– NT-ASGD": dict(train=dict(optimizer="sgd")),
    "– variable sequence lengths": dict(train=dict(variable_bptt=False)),
    "– embedding dropout": dict(model=dict(dropoute=0.0)),
    "– weight decay": dict(train=dict(weight_decay=0.0)),
    "– AR/TAR": dict(train=dict(alpha=0.0, beta=0.0)),
    "– full sized embedding": dict(model=dict(emb_size=hidden)),
    "– weight-dropping": dict(model=dict(wdrop=0.0)),
}


def remove(full, model=None, train=None):
    return full.with_model(**(model or {})).with_train(**(train or {}))


ours = {"AWD-LSTM": preset, **{name: remove(preset, **change) for name, change in removals.items()}}
assert ours == ablation_configs(preset)
print("the same configurations as ablation_configs(preset):", ours == ablation_configs(preset))
for name, change in removals.items():
    print(f"{name:28} {change}")

# %% [markdown]
# "– full sized embedding" at the paper's PTB size (vocabulary 10,000), against the full model:

# %%
paper_configs = ablation_configs(awdlib.PRESETS["ptb"])
for name in ("AWD-LSTM", "– full sized embedding"):
    model = awdlib.AWDLSTM(paper_configs[name].model_config(vocab_size=10_000))
    tied = model.decoder.weight is model.encoder.weight
    print(f"{name:24} embedding {model.encoder.embedding_dim:4d}, LSTM widths "
          f"{[rnn.module.hidden_size for rnn in model.rnns]}, tied: {tied}, "
          f"{model.num_parameters() / 1e6:.1f}M parameters")
del model

# %% [markdown]
# ## Two budgets
#
# The paper's runs take hours on a GPU each; this study trains 8 configurations with 3 seeds each on a
# CPU, twice. Both keep notebooks 01–05's 100/200 model, its dropout rates and learning rate:
#
# - **the short budget** (`"ablation-demo"`): the first 5% of PTB's training text, at most 32 epochs
#   and 5 of fine-tuning. Most runs were still improving when the cap ended them.
# - **trained to convergence** (`"ablation-converged"`): the pilot's slice (3% of the training text),
#   every run until early stopping ends it (20 epochs without a 0.5% better validation perplexity,
#   at most 300), fine-tuning alike. The full model's runs also train the control for fine-tuning
#   (below).
#
# `notebooks/README.md` has the arithmetic. At smoke scale (CI) only two configurations with one seed
# run, which proves the code path in seconds and shows nothing about the techniques.

# %%
for name, c in ablation_configs(preset).items():
    model = awdlib.AWDLSTM(c.model_config(vocab_size=10_000))
    print(f"{name:28} {model.num_parameters() / 1e6:5.2f}M parameters")
del model
for p in [preset] + ([converged_preset] if converged_name != preset_name else []):
    t = p.train
    rule = (f", stopped after {t.patience} epochs without a "
            + (f"{t.min_improvement:.1%} " if t.min_improvement else "") + "better validation loss"
            if t.patience else "")
    print(f"{p.name}: {p.train_fraction:.0%} of the training text; every row: at most {t.epochs} "
          f"epochs{rule}, then at most {p.finetune_epochs} epochs of fine-tuning")

# %% [markdown]
# ## Run the studies, or load them
#
# Each study is one resumable command (the stored results come from them):
#
# ```bash
# python -m awdlib experiment ablation --preset ablation-demo --seeds 141 142 143 --workers 2
# python -m awdlib experiment ablation --preset ablation-converged --seeds 141 142 143 --workers 2
# ```
#
# Each appends every finished run to `results/<preset>.runs.jsonl` (runs go seed by seed, so a
# study stopped part way has every row for its first seeds) and writes the summary
# `results/<preset>.json` when it ends. The cell below reads the runs files, even while a study is
# still going: a row shows how many seeds it has so far. At smoke scale it runs two rows with one
# seed here, in this process. On a cluster, `--executor submitit` hands each run to Slurm as a job of
# its own (`--device cuda --gpus-per-node 1 --partition ...`); the results file is the same.


# %%
def load_study(name, run_here):
    """The ablation study run at preset `name`: its summary (an awdlib.Ablation) and its runs."""
    p = awdlib.PRESETS[name]
    configs = ablation_configs(p)
    runs_file = (Path("results") / study_stem("ablation", name)).with_suffix(".runs.jsonl")
    runs = study_runs(read_runs(runs_file), configs)
    if not runs and run_here:
        configs = {n: configs[n] for n in ABLATION_SMOKE}
        print(f"no {runs_file} yet: running {len(configs)} configurations x 1 seed here")
        runs = run_study(configs, seeds[:1], runs_file, Path("results/checkpoints") / name / "ablation",
                         workers=0)
    return awdlib.Ablation.from_rows(summary_rows("ablation", runs, p)), runs


ablation, runs = load_study(preset_name, run_here=scale == "smoke")  # the short budget
converged, converged_runs = load_study(converged_name, run_here=scale == "smoke")
for name, study, study_runs_ in (("short budget", ablation, runs),
                                 ("converged", converged, converged_runs)):
    print(f"{name}: {len(study.rows)} of {len(ABLATION)} rows, from {len(study_runs_)} finished runs "
          f"(seeds {sorted({r['seed'] for r in study_runs_})})")

# %% [markdown]
# ## The gate: did every run converge?
#
# A study "trained to convergence" is only that if no run was cut off by its epoch cap: each must
# have ended by its own rule, training by early stopping and fine-tuning by its non-monotonic
# criterion (or early stopping). The runs file records why each stage stopped, in the trainer's
# words, so the gate is read from it; it also asks for every row with the same three or more seeds.
# Until it passes, every number below describes runs that were still improving, or too few runs,
# and the rank correlation is shown as such, not as a result.

# %%
for name, study in (("short budget", ablation), ("converged", converged)):
    print(f"{name}: {study.gate()}")
print()
def why(result):
    """How a stage ended, from the stop reason its run recorded."""
    reason = result.get("stop_reason") or ""
    return ("early stopping" if reason.startswith("no better validation loss") else
            "criterion" if reason.startswith("non-monotonic criterion") else "CAP")


print(f"{'converged study, by seed':28} {'epochs trained + fine-tuned, and how each ended':>60}")
for name in ABLATION:
    trained = sorted((r for r in converged_runs if r["name"] == name), key=lambda r: r["seed"])
    if trained:
        print(f"{name:28} " + "; ".join(
            f"{r['seed']}: {r['epochs']} ({why(r)}) + {r['finetuned']['epochs'] - r['epochs']} "
            f"({why(r['finetuned'])})" for r in trained))

# %% [markdown]
# ## The converged table, beside the short budget
#
# Each row's Δ is **paired**: the row's run minus the full model's run *with the same seed* (the same
# data order and, before the configurations part ways, the same dropout draws), averaged over seeds;
# ± is the sample standard deviation of those per-seed differences, so what the seeds share cancels.
# A Δ counts as beyond the noise when it exceeds three of those deviations. Both studies are read by
# the same rule (`awdlib.Ablation`), the short budget in the second column.

# %%
def cell(study, name):
    change, noise = study.change(name), study.noise(name)
    if change is None:
        return f"{'not run':>35}"
    spread = f" ± {noise:6.2f}" if noise is not None else " " * 9
    return f"{change:+8.2f}{spread} {study.verdict(name):>16} ({len(study.seed_changes(name))})"


print(f"{'Δ validation perplexity':28} {'converged (seeds)':>35}   {'short budget (seeds)':>35} "
      f"{'paper':>6}")
for name in converged.removed:
    print(f"{name:28} {cell(converged, name)}   {cell(ablation, name)} "
          f"{converged.paper_change(name):+6.1f}")
for label, study in (("converged", converged), ("short budget", ablation)):
    full = study.get(study.full)
    if full:
        print(f"the full model ({label}): validation perplexity {full['valid_ppl']:.2f}, test "
              f"{full['test_ppl']:.2f}, seeds {full['seeds']}")


def print_seed_changes(study, heading):
    """Each row's paired Δ, seed by seed: its run minus the full model's run with the same seed."""
    print(f"{heading}Δ by seed (each run against the full model's run with the same seed):")
    for name in study.removed:
        changes = study.seed_changes(name)
        if changes:
            print(f"  {name:28} " + ", ".join(f"{seed}: {d:+.2f}" for seed, d in changes.items()))


print_seed_changes(converged, "converged, ")

# %% [markdown]
# ### Fine-tuning, and its control
#
# Every row is fine-tuned, so a row's Δ mixes what the removal did during training with how much
# fine-tuning then helped that row. The rows before and after fine-tuning, side by side, separate the
# two. And "– fine-tuning" (the full model before its fine-tuning) also trains fewer epochs than the
# full model; its control is the full model's training continued, without the restart, for as many
# epochs as its fine-tuning took ("trained longer", a separate branch of each full-model run).

# %%
print(f"{'converged, mean valid ppl':28} {'before fine-tuning':>18} {'after':>8} {'gained':>7}")
for row in converged.rows:
    if "before_finetuning" in row:
        before = row["before_finetuning"]["valid_ppl"]
        print(f"{row['name']:28} {before:18.2f} {row['valid_ppl']:8.2f} {before - row['valid_ppl']:7.2f}")
print()
print(f"{'full model, by seed':20} {'trained':>8} {'fine-tuned':>11} {'trained longer':>15} "
      f"{'fine-tuned minus longer':>24}")
differences = []
for r in sorted((r for r in converged_runs if r["name"] == "AWD-LSTM"), key=lambda r: r["seed"]):
    longer = r.get("trained_longer")
    if longer is None:
        print(f"seed {r['seed']:<15} {r['valid_ppl']:8.2f} {r['finetuned']['valid_ppl']:11.2f} "
              f"{'(no control)':>15}")
        continue
    differences.append(r["finetuned"]["valid_ppl"] - longer["valid_ppl"])
    print(f"seed {r['seed']:<15} {r['valid_ppl']:8.2f} {r['finetuned']['valid_ppl']:11.2f} "
          f"{longer['valid_ppl']:15.2f} {differences[-1]:+24.2f}")
if len(differences) > 1:
    mean_d = sum(differences) / len(differences)
    sd_d = (sum((d - mean_d) ** 2 for d in differences) / (len(differences) - 1)) ** 0.5
    print(f"fine-tuning minus training longer: {mean_d:+.2f} ± {sd_d:.2f} over "
          f"{len(differences)} seeds (negative: fine-tuning did better than more epochs)")

# %% [markdown]
# ### Δ per removed technique, against the paper's
#
# Left: our paired Δ for each row of the converged study, sorted by the paper's Δ (right: largest at
# the top); the error bar is the paired standard deviation, the dots each seed's Δ. Blue: the paper's
# direction beyond the noise; vermillion: the opposite direction beyond it; grey: within it, or one
# seed so far.

# %%
plot_ablation(converged, title=f"{converged_name}: seeds "
              f"{sorted(set(r['seed'] for r in converged_runs))}" + ("" if converged.converged
                                                                      else " (not converged yet)"))
plt.show()

# %% [markdown]
# ### Does the ranking agree with the paper's?
#
# Rank our Δs from smallest to largest, rank the paper's the same way, and correlate the ranks:
# Spearman's $\rho = 1$ is the same order, $-1$ the reverse, near 0 no relation. Without ties it has a
# closed form, $\rho = 1 - \frac{6 \sum_i d_i^2}{n (n^2 - 1)}$ with $d_i$ the difference of row
# $i$'s two ranks. From scratch with torch, checked against the library's `rank_correlation` (which
# gives tied values their mean rank) on the paper's own PTB and WikiText-2 Δs, a yardstick for ours:

# %%
def spearman(a, b):
    """Spearman's rho for lists without ties: 1 - 6 sum(d^2) / (n (n^2 - 1))."""
    rank_a = torch.tensor(a).argsort().argsort().float()
    rank_b = torch.tensor(b).argsort().argsort().float()
    n = len(a)
    return 1 - 6 * ((rank_a - rank_b) ** 2).sum().item() / (n * (n * n - 1))


removed = [name for name in ABLATION if name != "AWD-LSTM"]
ptb, wt2 = ([PAPER_ABLATION[d][n]["valid"] - PAPER_ABLATION[d]["AWD-LSTM"]["valid"] for n in removed]
            for d in ("ptb", "wikitext-2"))
rho = spearman(ptb, wt2)
assert abs(rho - rank_correlation(ptb, wt2)) < 1e-12
print(f"the paper's PTB ranking against its WikiText-2 ranking: rho = {rho:+.3f} "
      f"(library: {rank_correlation(ptb, wt2):+.3f})")

# %% [markdown]
# One number over 8 rows needs its uncertainty. Two measures (`Ablation.rank_correlation_evidence`):
#
# - a **bootstrap over seeds**: redraw the seeds with replacement, recompute every row's paired Δ from
#   the drawn seeds and ρ from those; the middle 95% of ρ over every possible draw. It shows how much
#   ρ depends on *which* seeds ran (with 3 seeds there are only 27 draws: a coarse interval).
# - a **permutation test**: of all 8! = 40,320 orderings of our Δs, the share whose ρ with the paper's
#   is at least ours: how often an ordering unrelated to the paper's would agree as well by chance.

# %%
orders = torch.tensor(list(__import__("itertools").permutations(range(8))), dtype=torch.float)
null = 1 - 6 * ((orders - torch.arange(8.0)) ** 2).sum(1) / (8 * 63)  # rho of every ordering
print(f"with 8 rows and no ties, a random ordering reaches rho >= {null.quantile(0.95):.3f} "
      f"5% of the time, and rho >= 0.5 {float((null >= 0.5 - 1e-9).float().mean()):.1%} of the time")
for label, study in (("converged", converged), ("short budget", ablation)):
    evidence = study.rank_correlation_evidence()
    if evidence["rho"] is None:
        print(f"{label}: rho undefined (fewer than two rows, or a constant ranking)")
        continue
    interval = evidence["interval"]
    print(f"{label}: rho = {evidence['rho']:+.3f} over {len(evidence['rows'])} rows"
          + (f", 95% seed-bootstrap interval [{interval[0]:+.3f}, {interval[1]:+.3f}] over seeds "
             f"{evidence['seeds']}" if interval else ", one shared seed: no interval")
          + f", permutation p = {evidence['p_value']:.4f}"
          + ("" if study.converged else f"  ({study.gate().split(':')[0]}: not a result)"))

# %% [markdown]
# What ρ over 8 rows can show: whether our ordering and the paper's agree more than chance would
# (the permutation test), and how much that depends on our seeds (the bootstrap). What it cannot
# show: that the paper's order is right. The paper's Δs are single runs with no spread; its three
# smallest (fine-tuning, variable sequence lengths, AR/TAR: 0.7 to 2.7 points) are within what seeds
# move by at full scale, so swaps among them say little, and a ρ of 1 is not a realistic target.
#
# ### What the numbers say (converged)
#
# Generated from the table by one rule (the paired three-deviations rule):

# %%
for line in converged.reading():
    print(line)
print(converged.gate())

# %% [markdown]
# ## The short budget, read closely
#
# The first study stopped every run at 32 epochs (plus 5 of fine-tuning). Its runs were still
# improving, and it is kept beside the converged one because the contrast is the lesson: what follows
# is how that study looked on its own, and which of its rows were confounded.
#
# ### Our table
#
# Mean ± sample standard deviation over the seeds each row has, our paired Δ and the paper's Δ on
# PTB. Under it: after which epoch NT-ASGD's
# trigger switched to averaging in each seed's run (None: it did not fire within the epoch cap), and
# the rows before their fine-tuning.

# %%
print(ablation.table())
print()
print("NT-ASGD switched after epoch, by seed:")
for row in ablation.rows:
    if "trigger_epoch_seeds" in row:
        print(f"  {row['name']:28} {dict(zip(row['seeds'], row['trigger_epoch_seeds']))}")
print_seed_changes(ablation, "")
print("before fine-tuning (mean validation perplexity):")
for row in ablation.rows:
    if "before_finetuning" in row:
        print(f"  {row['name']:28} {row['before_finetuning']['valid_ppl']:8.2f}")

# %% [markdown]
# Two readings of "removing NT-ASGD" sit in those lines. The "– NT-ASGD" row (fine-tuned) removes only
# the averaging *during training*. The "– NT-ASGD" line before fine-tuning against the "– fine-tuning"
# line compares plain SGD with NT-ASGD with neither of them fine-tuned. Where the trigger never fired
# in a seed's full-model run, that run *is* its "– NT-ASGD" run, fine-tuning included: the same seed,
# the same windows and masks, no averaging before the switch (and averaging never changes the SGD
# iterate, notebook 05), so fine-tuning starts from the same weights. That seed's Δ is then exactly 0.
#
# ### Rows to read with care: what else changed with the technique
#
# An ablation row should differ from the full model in the one technique it removes. Two checks, both
# computed from the study's files:
#
# - **Does a row's verdict survive without fine-tuning?** Every row is fine-tuned, so a row's Δ mixes
#   what the removal did during training with how much fine-tuning then helped that row. The same
#   table *before* fine-tuning (the same library rule: three paired standard deviations) separates the
#   two. A row whose verdict changes between the two tables owes it to fine-tuning.
# - **Did the row train as long as the full model?** "– fine-tuning" is the full model stopped before
#   its fine-tuning epochs. If the full model was still improving when its training ended, some of
#   what fine-tuning gains, more epochs of the same training would gain too.

# %%
full = ablation.get(ablation.full)
before = awdlib.Ablation.from_rows(  # the same table, every row scored before its fine-tuning
    [{**r, **r["before_finetuning"]} for r in ablation.rows if "before_finetuning" in r])


def finetuning_gain(name):
    """How far fine-tuning lowered the row's mean validation perplexity."""
    return ablation.get(name)["before_finetuning"]["valid_ppl"] - ablation.get(name)["valid_ppl"]


confounds = {}
print(f"{'':28} {'Δ before fine-tuning':>34} {'Δ after (the table)':>34} {'fine-tuning gained':>18}")
for name in before.removed:
    if before.get(name) is None:
        continue
    tuned = [r for r in runs if r["name"] == name and "finetuned" in r]
    better = sum(r["finetuned"]["best_epoch"] > r["epochs"] for r in tuned)
    print(f"{name:28} {before.change(name):+8.2f} {before.verdict(name):>25} "
          f"{ablation.change(name):+8.2f} {ablation.verdict(name):>25} {finetuning_gain(name):8.2f} "
          f"(better in {better} of {len(tuned)} seeds)")
    if before.verdict(name) != ablation.verdict(name):
        confounds[name] = "confounded by fine-tuning"
print(f"{'the full model (AWD-LSTM)':28} {'':>34} {'':>34} {finetuning_gain(ablation.full):8.2f}")
for name in confounds:
    row, ref = ablation.get(name)["before_finetuning"], full["before_finetuning"]
    print(f"{name}: {ablation.change(name):+.2f} after fine-tuning, but {before.change(name):+.2f} "
          f"before it ({row['valid_ppl']:.2f} against {ref['valid_ppl']:.2f}, "
          f"{abs(before.change(name)) / before.noise(name, before.full):.1f} x the paired std): "
          f"fine-tuning lowered the full model by {finetuning_gain(before.full):.2f} and this row by "
          f"{finetuning_gain(name):.2f}. The Δ is fine-tuning failing on this row, not the technique's "
          "effect during training.")

short = ablation.get("– fine-tuning")
long_epochs, short_epochs = max(full["epochs_seeds"]), max(short["epochs_seeds"])
extra = long_epochs - short_epochs
full_runs = sorted((r for r in runs if r["name"] == ablation.full), key=lambda r: r["seed"])
still_improving = sum(r["best_epoch"] == r["epochs"] for r in full_runs)
if extra > 0 and still_improving:
    confounds["– fine-tuning"] = f"confounded by {extra} more epochs"
    # how far each run's best validation perplexity so far fell over its last `window` training epochs
    window = min([extra] + [len(r["valid_curve"]) - 1 for r in full_runs])
    last_epochs = {r["seed"]: min(r["valid_curve"][:len(r["valid_curve"]) - window]) - min(r["valid_curve"])
                   for r in full_runs}
    print(f"– fine-tuning: {ablation.change('– fine-tuning'):+.2f} compares the full model's "
          f"{long_epochs} epochs ({short_epochs} + {extra} of fine-tuning) with {short_epochs} "
          f"epochs. The full model's best epoch before fine-tuning was its "
          f"last one in {still_improving} of {len(full_runs)} runs: still improving. Over its last "
          f"{window} training epochs its best validation perplexity fell by "
          f"{sum(last_epochs.values()) / len(last_epochs):.2f} on average ("
          + ", ".join(f"{seed}: {d:.2f}" for seed, d in last_epochs.items())
          + f"), against {finetuning_gain(ablation.full):.2f} in its {extra} epochs of fine-tuning: "
          f"part of the {ablation.change('– fine-tuning'):+.2f} may be just {extra} more epochs.")
print("confounded:", confounds)

# %% [markdown]
# ### Δ per removed technique (short budget)
#
# The same figure for the short budget. A hatched bar is one of the confounded rows above (its label
# says by what). If our ranking agreed with the paper's, the bars on the left would grow from bottom
# to top as those on the right do.

# %%
plot_ablation(ablation, title=f"{preset_name}: seeds {sorted(set(r['seed'] for r in runs))}",
              notes=confounds)
plt.show()

# %% [markdown]
# ### What the numbers say (short budget)
#
# Generated by the same paired rule as the converged study's. The rule sees only the Δs, so the
# confounded rows found above get a note after their line.

# %%
for line in ablation.reading():
    name = line.split(":")[0]
    note = confounds.get(name)
    print(line + (f" But {note}: not a clean measure of the technique." if note else ""))
reproduced = [name for name in ablation.removed if ablation.verdict(name) == "reproduced"]
clean = [name for name in reproduced if name not in confounds]
print(f"Of the {len(reproduced)} rows in the paper's direction beyond the noise, "
      f"{len(reproduced) - len(clean)} are confounded; {len(clean)} remain"
      + (f": {', '.join(clean)}." if clean else "."))

# %% [markdown]
# ## Was the budget the limit? Both studies
#
# A regulariser earns its keep when the model would otherwise *overfit*: when its validation perplexity
# stops falling while its training perplexity keeps going down. Every regulariser also slows learning
# (it trains on a noisier version of the model). So in a run that ends while the model is still
# improving, removing a regulariser, or adding capacity, can only look good. How many SGD steps did a
# run get, where was its best epoch, and how far did its training perplexity fall? (Runs before their
# fine-tuning; training perplexity is measured with dropout on, at the best epoch.)

# %%
for label, p, study, study_runs_ in (("short budget", preset, ablation, runs),
                                     ("converged", converged_preset, converged, converged_runs)):
    corpus = p.corpus()
    c = p.train
    steps = len(corpus.train) // (c.batch_size * c.bptt)
    print(f"{label}: training text {len(corpus.train):,} tokens, about {steps} SGD steps per epoch "
          f"(batch {c.batch_size}, windows of about {c.bptt} tokens), at most {c.epochs * steps:,} "
          f"steps per run")
    print(f"{'':28} {'best epoch/epochs run, by seed':>31} {'train ppl':>10} {'valid ppl':>10}")
    for name in ABLATION:
        trained = sorted((r for r in study_runs_ if r["name"] == name), key=lambda r: r["seed"])
        if not trained or study.get(name) is None or "before_finetuning" not in study.get(name):
            continue
        epochs = ", ".join(f"{r['best_epoch']}/{r['epochs']}" for r in trained)
        train_ppl = sum(r["train_curve"][r["best_epoch"] - 1] for r in trained) / len(trained)
        valid_ppl = study.get(name)["before_finetuning"]["valid_ppl"]  # the summary's mean
        print(f"{name:28} {epochs:>31} {train_ppl:10.2f} {valid_ppl:10.2f}")
    at_cap = sum(r["best_epoch"] == c.epochs for r in study_runs_)
    print(f"{at_cap} of {len(study_runs_)} runs had their best validation perplexity in their last "
          f"allowed epoch; {sum(r['epochs'] * steps for r in study_runs_) / max(len(study_runs_), 1):,.0f}"
          f" SGD steps of training per run on average")
    print()
print("the ladder's demo study (notebooks 01-05: 10% of PTB, 40 epochs, no other regulariser yet):")
print(" ", awdlib.Ladder.for_scale("demo", "results").compare("+ weight drop", "plain LSTM"))

# %% [markdown]
# ## Reading the stored outputs
#
# The stored outputs come from three studies on a 2-core CPU: the pilot (seed 141), the short budget
# (8 configurations × seeds 141, 142 and 143) and the converged study (the same, every run until its
# rule stopped it). What the printed numbers say:
#
# **The pilot.** Regularisation as a whole pays, and late: the full recipe is ahead of the plain LSTM
# for good from epoch 16, when the plain LSTM starts to overfit (its training perplexity keeps falling
# while its validation perplexity climbs), and ends 106.97 better (456.99 against 563.97). Weight drop
# on its own does not pay at this size, even at convergence: the full recipe leads the recipe without
# weight drop only while its own averaging is young: from epoch 42 (its first averaged epoch) to 76,
# then it falls behind and ends 3.37 worse (456.99 against 453.62), both runs stopped by early
# stopping. At epoch 32, the short budget's cap, the recipe without weight drop was 18.47 ahead
# (505.15 against 523.62), much as in the short-budget study; at convergence the gap has shrunk to a
# few points. One seed: the converged study's three put what is left within the noise (+0.44 ± 3.70).
#
# **The short budget.** Paired by seed:
#
# - *Two rows go the paper's way beyond the noise, and neither is a clean measure of its technique*
#   (the lines under "Rows to read with care").
#   - *– fine-tuning*, +7.35 (paper +0.7), also trains 5 fewer epochs than the full model, whose runs
#     were still improving when their training ended: over their last 5 training epochs their best
#     validation perplexity fell by 11.46 on average, more than the 7.36 that fine-tuning gained. Part
#     of the +7.35 may be just more epochs: the converged study's control measures that.
#   - *– embedding dropout*, +8.08 (paper +5.1), is +0.73 before fine-tuning (410.14 against 409.42),
#     within the noise. Fine-tuning lowered the full model by 7.36 and this row by 0.00: it beat the
#     row's best epoch in 0 of 3 seeds. So the +8.08 is fine-tuning failing on this row. Training
#     without embedding dropout does show the one clear sign of overfitting in the budget table: the
#     training perplexity falls much further than the full model's (218.89 against 271.27) while the
#     validation perplexity does not.
# - *Two rows go the opposite way beyond the noise.* Removing weight-dropping *lowers* validation
#   perplexity by 13.36 (−13.36, −13.40, −13.31 by seed; paper +11.1), and the "full sized embedding"
#   lowers it by 22.63 (paper +8.0).
# - *Four rows are within the noise:* NT-ASGD, variable sequence lengths, weight decay and AR/TAR.
# - *The ranking:* ρ = −0.50 against the paper's PTB ranking (seed-bootstrap interval [−0.667, −0.452],
#   permutation p = 0.90), while the paper's own two datasets agree at ρ = +0.905.
#
# Why that is plausible at this budget: most runs had their best epoch in their last allowed one, after
# about a thousand SGD steps. A model stopped that early is limited by how fast it learns, not by
# overfitting, so every regulariser's cost (slower learning) shows and its benefit (less overfitting)
# does not; more capacity (the wider embedding and last layer) fits fastest. The pilot shows the same
# thing over time: at 32 epochs its regularised runs were still about 50 to 70 points above where they
# ended.
#
# **The converged study.** The gate passes: every row has seeds 141, 142 and 143, and all 24 runs
# ended by their own rule (training by early stopping after 62 to 149 epochs, fine-tuning by its
# criterion after 7 to 18). Paired by seed:
#
# - *One row goes the paper's way beyond the noise:* removing embedding dropout costs +40.45 ± 10.85
#   (paper +5.1), and it does so before fine-tuning as well: the short budget's confound
#   (fine-tuning failing on this row) is gone. Without it the model's validation perplexity turns up
#   early (best epochs 45 to 68, against 90 to 127 for the full model) and never gets near the full
#   model's.
# - *Two rows are large, in the paper's direction for every seed, and still under three paired
#   deviations:* removing AR/TAR, +24.40 ± 8.58 (2.8 deviations; paper +2.7), and removing NT-ASGD,
#   +14.09 ± 8.18 (1.7; paper +6.3). Three seeds give a rough deviation, and the rule is strict on
#   purpose: "not shown", not "no effect".
# - *The rest are within the noise:* variable sequence lengths +2.74 ± 9.81, weight decay
#   −3.89 ± 16.92 (by seed −21.81, −1.67, +11.82), the full sized embedding −12.12 ± 5.93 and
#   weight-dropping +0.44 ± 3.70. No row goes the opposite way beyond the noise; the full sized
#   embedding comes closest (2.0 deviations), lower for every seed (−14.31, −5.41, −16.64) and so
#   still against the paper's +8.0: its training perplexity falls furthest (61.51 at the best
#   epochs, against the full model's 96.43).
# - *Fine-tuning* gains nothing once training has converged: +0.00 for every seed, because its
#   criterion fired after 7 to 9 epochs without beating the trained weights in every row but
#   "– NT-ASGD" (the "gained" column). A likely reason: restarting averaged SGD at the full learning
#   rate first moves away from the averaged weights it starts from, and the criterion stops it
#   before the new average catches up. It helps only the row whose training never averaged:
#   fine-tuning's value here is the averaging itself. The control agrees: the full model trained as
#   many epochs longer without the restart ends where fine-tuning ends (fine-tuned minus trained
#   longer: +0.03 ± 0.05 over the 3 seeds).
# - *The ranking does not emerge:* ρ = −0.119 against the paper's PTB ranking, seed-bootstrap
#   interval [−0.286, −0.023] (27 draws: coarse), permutation p = 0.62. The target (ρ above 0.5 with
#   an interval that excludes 0) is not met, with the gate passed: this is not the model still
#   learning. It is a negative result at this scale, and the per-row evidence above says where: the
#   paper's two largest Δs (weight-dropping +11.1 and the full sized embedding +8.0) are the two
#   rows that do not show here, while embedding dropout and AR/TAR, middling in the paper, cost the
#   most. (The bootstrap interval excludes 0 on the negative side, but with p = 0.62 our order
#   agrees with the paper's no better than a random one does.)
#
# **What changed from the short budget** (paired Δ, short budget → converged):
# – fine-tuning +7.35 → +0.00 (at convergence neither fine-tuning nor as many more epochs gains
# anything, so the short budget's +7.35 was more training of runs still improving);
# – NT-ASGD −2.59 → +14.09; – variable sequence lengths −3.00 → +2.74;
# – embedding dropout +8.08 → +40.45 (and now not through fine-tuning);
# – weight decay +0.61 → −3.89; – AR/TAR −3.93 → +24.40; – full sized embedding −22.63 → −12.12;
# – weight-dropping −13.36 → +0.44. Every row with a negative Δ at the short budget moved toward the
# paper's direction (weight decay, within the noise both times, moved the other way), and the
# regularisers that act on what the model sees (embedding dropout: +0.73 before fine-tuning at the
# short budget) and on its activations (AR/TAR: −3.93) went from costing nothing to the largest Δs:
# their cost was speed, their benefit needed the runs to reach overfitting. Yet convergence is not
# enough to give the paper's order. What remains is scale: a 200-wide LSTM has few recurrent weights
# for weight drop to regularise (most of its 1.69M parameters are the embedding), and the paired
# spreads at convergence (3.70 to 16.92 points) are as large as most of the paper's Δs.

# %% [markdown]
# ## What this can and cannot show
#
# - The paper's model has 24.2M parameters trained for hundreds of epochs on all of PTB; ours has the
#   size printed under "Two budgets", trained on a slice of PTB. What a technique is worth depends on
#   how much the model overfits, and that differs by scale: weight drop regularises the recurrent
#   weights, and a 200-wide LSTM has few of them (most of its 1.69M parameters are the embedding), so
#   it may have little to prevent here even at convergence.
# - Every row is fine-tuned, and fine-tuning helps some rows more than others (the "gained" columns),
#   so a row's Δ mixes the removal with how its fine-tuning went: read both tables.
# - Three seeds give a rough standard deviation of the paired differences; the three-deviations rule is
#   strict on purpose, so "within the noise" means "not shown at this scale", not "no effect".
# - The paper reports one number per row and no spread; its smallest Δs (fine-tuning, variable
#   sequence lengths: about one perplexity point) are small enough that a change of seed might move
#   them at full scale too.
# - Our "– NT-ASGD" keeps SGD's learning rate constant; the paper's text describes that row as SGD
#   whose learning rate is halved by the same non-monotonic criterion. Our row removes the averaging
#   only; the paper's also added a schedule.
#
# ## Takeaways
#
# - What a regulariser is worth depends on when you stop: it costs speed from the first epoch and pays
#   only once the unregularised model overfits. Measure the crossover before choosing a budget.
# - An ablation removes one technique from the full recipe and keeps everything else, including the
#   budget and the stopping rule; "converged" is a gate a study checks, not a word it uses.
# - Averaged weights improve by ever smaller steps: early stopping for them needs a minimum
#   improvement, or it waits hundreds of epochs for a tenth of a point.
# - Pair runs by seed: the same seed's runs share data order and early dropout draws, so their
#   difference is far less noisy than two means (weight drop's short-budget Δ: ±0.05 paired).
# - "– fine-tuning" needs no run of its own, but it trains fewer epochs; the control is the full model
#   trained as much longer without the restart.
# - A rank correlation over 8 rows needs its interval and its chance level: a random ordering reaches
#   ρ ≥ 0.5 about one time in nine.
# - Converged, at this scale, the regularisers that pay most are embedding dropout and AR/TAR, and
#   weight drop pays nothing measurable: the paper's ranking did not carry over to this scale, and an
#   ablation answers for the scale it ran at.
#
# ## Exercises (predict, then run)
#
# 1. Before looking at the figure: which removal do you expect to cost the most at this scale, and
#    which to *help*? Check against the table.
# 2. Run `for line in ablation.reading(2): print(line)`: a two-deviations rule. Predict which
#    verdicts change from the table's Δs and the error bars in the figure first.
# 3. Which rows share their seeds' first epochs exactly with the full model's runs? Hint: compare
#    `[r["valid_curve"][:3] for r in runs if r["name"] == "– NT-ASGD"]` with the same for
#    `"AWD-LSTM"`, and think about what the two configurations do before NT-ASGD's trigger fires.
# 4. In the pilot's lower panel, the gap to the recipe without weight drop jumps up at one epoch and
#    then shrinks steadily. Which event in the full recipe's run explains the jump? Check with
#    `pilot_runs["AWD-LSTM"]["trigger_epoch"]`.
