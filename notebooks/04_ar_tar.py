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
# # 04 · Activation regularisation (AR) and temporal activation regularisation (TAR)
#
# Section 4.6 of Merity, Keskar & Socher (2017), *Regularizing and Optimizing LSTM Language Models*.
# Dropout (notebooks 02 and 03) regularises by adding noise; AR and TAR regularise by adding two
# **penalties on the last LSTM layer's output** $h_t$ to the training loss:
#
# $$
# \mathrm{AR} = \alpha \, L_2(m \odot h_t), \qquad
# \mathrm{TAR} = \beta \, L_2(h_t - h_{t+1}),
# $$
#
# - **AR** (activation regularisation) penalises *large* outputs. It acts on $m \odot h_t$, the output
#   *after* the last layer's dropout mask $m$: the activations the decoder actually sees.
# - **TAR** (temporal activation regularisation) penalises *fast change* between consecutive steps, a
#   slowness prior on the hidden state. It acts on the *raw* output $h_t$, without the dropout mask (two
#   masked vectors would differ just because of the mask).
#
# The paper writes $L_2$ as a norm; its code (and `awdlib`) uses the **mean of squares** over time,
# batch and features, with $\alpha = 2$ and $\beta = 1$. Both are added to the cross-entropy during
# training only: evaluation reports the plain cross-entropy.
#
# This notebook builds both penalties from scratch, checks them against `awdlib`, looks at what they do
# to a trained model's activations, and measures rung 5 of the results ladder: rung 4 (every dropout,
# plain SGD) plus AR and TAR.

# %% tags=["parameters"]
import os
scale = os.environ.get("AWDLIB_SCALE", "demo")  # "smoke": seconds (CI) | "demo": CPU minutes (stored outputs)
threads = int(os.environ.get("AWDLIB_THREADS", "2"))
progress = False  # True: a live progress bar per epoch while training

# %% tags=["nbval-ignore-output"]
# %matplotlib inline
import matplotlib.pyplot as plt
import torch

import awdlib
from awdlib.experiments import ladder_run, read_runs
from awdlib.plots import plot_curves, plot_histograms, plot_study
from awdlib.widgets import ar_tar_explorer

torch.set_num_threads(threads)
preset = awdlib.PRESETS[scale]
corpus = preset.corpus()
print(f"scale {scale!r}: {preset.description}")

# %% [markdown]
# ## Build them from scratch
#
# Written out as the sums they are: a sum of squares divided by the number of terms. AR sums over every
# time step $t = 1..T$; TAR over the $T-1$ differences between neighbouring steps.

# %%
def ar_from_scratch(dropped: torch.Tensor, alpha: float = 2.0) -> torch.Tensor:
    """alpha * mean over (time, batch, features) of (m * h_t)^2; `dropped` is (T, B, F)."""
    T, B, F = dropped.shape
    return alpha * sum((dropped[t] ** 2).sum() for t in range(T)) / (T * B * F)


def tar_from_scratch(raw: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """beta * mean over the T-1 step pairs, batch and features of (h_t - h_{t+1})^2."""
    T, B, F = raw.shape
    return beta * sum(((raw[t] - raw[t + 1]) ** 2).sum() for t in range(T - 1)) / ((T - 1) * B * F)

# %% [markdown]
# ## Check them against the library
#
# A small AWD-LSTM in training mode gives both tensors: `out.raw_outputs[-1]` is the last layer's output
# $h_t$, `out.dropped_outputs[-1]` the same after its locked dropout mask $m$ ($p = 0.4$: each of the
# 64 × 32 (example, feature) pairs is zeroed with probability 0.4 for the whole sequence, the rest
# scaled by $1/0.6$). `awdlib.Trainer` adds
# `activation_regularization(out.dropped_outputs[-1], alpha)` and
# `temporal_activation_regularization(out.raw_outputs[-1], beta)` to the loss
# (`tests/test_regularize.py` checks it passes exactly these two tensors).

# %%
torch.manual_seed(0)
tiny = awdlib.AWDLSTM(awdlib.AWDLSTMConfig(vocab_size=50, emb_size=32, hidden_size=64, n_layers=2)).train()
tokens = torch.randint(0, 50, (12, 64))  # (time, batch)
out = tiny(tokens, tiny.init_hidden(64))
raw, dropped = out.raw_outputs[-1].detach(), out.dropped_outputs[-1].detach()
print("last layer output (time, batch, features):", tuple(raw.shape),
      f"| zeroed by the mask: {(dropped == 0).float().mean():.2f}")

ours = ar_from_scratch(dropped), tar_from_scratch(raw)
lib = awdlib.activation_regularization(dropped, 2.0), awdlib.temporal_activation_regularization(raw, 1.0)
for name, a, b in zip(["AR ", "TAR"], ours, lib):
    diff = (a - b).abs().item()
    assert diff < 1e-6
    print(f"{name}: from scratch {a:.4g}, awdlib {b:.4g}, |difference| < 1e-6: {diff < 1e-6}")
print(f"AR on the raw output instead would be {ar_from_scratch(raw):.4g} "
      f"(ratio dropped / raw {ar_from_scratch(dropped) / ar_from_scratch(raw):.3f}; expected 1/(1-p) = "
      f"{1 / 0.6:.3f}); TAR on the dropped output {tar_from_scratch(dropped):.4g}")

# %% [markdown]
# Why the dropped output for AR: with inverted dropout the kept entries are scaled by $1/(1-p)$, so in
# expectation $\mathbb E[(m \odot h)^2] = h^2/(1-p)$: AR on the dropped output is the raw penalty
# scaled by $1/(1-p)$ plus noise (the printed ratio is close to $1/0.6$ with 2,048 mask entries; with a
# handful it can land far from it). TAR on a dropped output would mostly measure the mask (a feature
# dropped at $t$ but kept at $t+1$ "changes" a lot); locked dropout uses one mask for all steps, which
# softens that, but the paper still takes TAR on the raw output. The two printed lines above show how
# much the choice matters on this tiny model.
#
# ## Measure: rung 4 without and rung 5 with AR/TAR
#
# **Rung 4** (notebook 03: the plain LSTM with every dropout of the preset, plain SGD) and **rung 5** =
# the same plus $\alpha = 2$, $\beta = 1$: same sizes, data, seed, at most 40 epochs and the same early
# stopping. Seed 141 of each, from the ladder study's checkpoints when the study has run, otherwise
# trained now (rung 4 then takes 10–15 minutes, rung 5 as long again at demo scale on a laptop CPU).

# %% tags=["nbval-ignore-output"]
without = ladder_run(scale, "+ embedding dropout", seed=141, threads=threads)
with_ar_tar = ladder_run(scale, "+ AR/TAR", seed=141, threads=threads)
print("rung 4: alpha", without.config.alpha, "beta", without.config.beta, "| rung 5: alpha",
      with_ar_tar.config.alpha, "beta", with_ar_tar.config.beta)
for name, trainer in [("without AR/TAR (rung 4)", without), ("with AR/TAR (rung 5)", with_ar_tar)]:
    best = trainer.history.best()
    print(f"{name:<24} seed 141: best valid ppl {best['valid_ppl']:7.2f} at epoch {best['epoch']:2d} "
          f"of {trainer.epoch}; train ppl there {best['train_ppl']:7.2f}")

# %% [markdown]
# The two seed-141 runs' curves (dashed: training perplexity, measured with dropout on; solid:
# validation):

# %% tags=["nbval-ignore-output"]
plot_curves({"without AR/TAR": without.history, "with AR/TAR": with_ar_tar.history},
            title=f"{scale} scale, seed 141: dashed train, solid validation")
plt.show()

# %% [markdown]
# ## See what they do
#
# Run both trained models (their best weights, evaluation mode, so no dropout) over a stretch of
# validation text and collect the last layer's output $h_t$ at every step. Left: the magnitudes
# $|h_{t,j}|$ of every feature at every step, what AR pushes down. Right: the step-to-step changes
# $|h_{t,j} - h_{t+1,j}|$, what TAR pushes down. The y axis is logarithmic, so the tails are visible.

# %%
@torch.no_grad()
def last_layer_outputs(model: awdlib.AWDLSTM, ids: torch.Tensor) -> torch.Tensor:
    """The last LSTM layer's output (time, features) over one stretch of text, in evaluation mode."""
    model.eval()
    return model(ids.view(-1, 1), model.init_hidden(1)).raw_outputs[-1].squeeze(1)


# %% tags=["nbval-ignore-output"]
stretch = corpus.valid[:2000]
h = {"without AR/TAR": last_layer_outputs(without.model, stretch),
     "with AR/TAR": last_layer_outputs(with_ar_tar.model, stretch)}
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
plot_histograms({k: v.abs() for k, v in h.items()}, axes[0], xlabel="|h_t| (per feature)",
                title=f"last-layer activation magnitudes, {len(stretch)} validation tokens")
plot_histograms({k: (v[1:] - v[:-1]).abs() for k, v in h.items()}, axes[1],
                xlabel="|h_t - h_(t+1)| (per feature)", title="step-to-step change")
plt.tight_layout()
plt.show()
for name, v in h.items():
    print(f"{name:15s}: mean h^2 {v.pow(2).mean():.4g} (AR / alpha), "
          f"mean (h_t - h_t+1)^2 {(v[1:] - v[:-1]).pow(2).mean():.4g} (TAR / beta)")

# %% [markdown]
# What to look for: with AR/TAR both distributions should sit further left, with thinner tails: the
# penalties shrink the outputs and the jumps between steps. The tied decoder still needs large enough
# outputs to separate words, so the penalties trade a little training fit for smaller, smoother states.
#
# ### Play with the penalties
# The trained rung-5 model's recorded outputs over the first 200 validation tokens. The sliders set
# $\alpha$ and $\beta$; the bars show both penalties on these outputs, and the curve shows where
# gradient descent on the penalties *alone* would pull one feature's trajectory: AR pulls it toward 0,
# TAR toward a smooth curve. Set $\beta = 0$, then $\alpha = 0$, to see each on its own.

# %% tags=["nbval-ignore-output"]
ar_tar_explorer(h["with AR/TAR"][:200], p=preset.model["dropout"])

# %% [markdown]
# ## The ladder so far
# Mean ± standard deviation over the study's seeds, and every seed's validation curve of rungs 4 and
# 5. In the paper (Table 3), removing AR/TAR from the full model cost 2.7 validation perplexity on PTB.

# %% tags=["nbval-ignore-output"]
ladder = awdlib.Ladder.for_scale(scale)  # the study's summary (these runs included)
runs = read_runs(f"results/ladder-{scale}.runs.jsonl")
print(ladder.table(upto=5))
print(ladder.compare("+ AR/TAR", "+ embedding dropout"))
plot_study(ladder, runs, ["+ embedding dropout", "+ AR/TAR"])
plt.show()

# %% [markdown]
# **What the stored runs show** (demo scale, one torch thread per run, on a CPU; the numbers are printed
# above). The mechanism is plain: on the same 2,000 validation tokens, the model trained with AR/TAR
# has mean squared outputs about a quarter of the other's (0.01583 against 0.05879) and mean squared
# step-to-step changes about a quarter too (0.02177 against 0.0845). The perplexity effect is small:
# with seed 141 the best validation perplexity goes from 282.86 to 277.64, both at the 40-epoch cap with
# the curves still falling, so neither run had finished learning. A gain of a few points is the size
# the paper reports at full scale (2.7), and at demo scale it is of the order of the seed noise: the
# sentence under the table says whether the seed means separate.

# %% [markdown]
# ## Takeaways
#
# - AR $= \alpha \cdot \mathrm{mean}((m \odot h_t)^2)$ on the *dropped* last-layer output; TAR
#   $= \beta \cdot \mathrm{mean}((h_t - h_{t+1})^2)$ on the *raw* one; both only in the training loss.
# - They are two lines of code and cost almost nothing per step (both tensors are already computed).
# - The histograms show the mechanism directly: smaller activations and smaller step-to-step changes.
# - Whether they help at demo scale is the sentence printed under the ladder: the difference of the
#   seed means against the seed spread. In the paper's ablation on full PTB (Table 3, "– AR/TAR"),
#   removing the two penalties makes validation perplexity 2.7 worse and test perplexity 3.0 worse.
#
# ## Exercises (predict, then run)
#
# 1. In the check cell, change the batch from 64 to 3 (both places). Predict how far the printed ratio of
#    dropped to raw AR can now land from $1/(1-p) \approx 1.67$, then run it a few times with other seeds.
# 2. Train rung 5 with $\beta = 10$ (and $\alpha = 2$):
#    `with_ar_tar` came from `awdlib.experiments.ladder_configs(preset)["+ AR/TAR"]`; train
#    `.with_train(beta=10.0).trainer(corpus).fit()` on it. Predict how the right-hand histogram and the
#    training perplexity change, then run it.
