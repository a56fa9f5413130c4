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
#     display_name: Python 3
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
from awdlib.plots import plot_curves, plot_histograms, plot_ladder_curves
from awdlib.presets import NO_DROPOUT

torch.set_num_threads(threads)
preset = awdlib.PRESETS[scale]
corpus = preset.corpus()
ladder = awdlib.Ladder.for_scale(scale)
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
# A tiny AWD-LSTM in training mode gives both tensors: `out.raw_outputs[-1]` is the last layer's output
# $h_t$, `out.dropped_outputs[-1]` the same after its locked dropout mask $m$ ($p = 0.4$: about 40% of
# the features are zero, the rest scaled by $1/0.6$). `awdlib.Trainer` adds
# `activation_regularization(out.dropped_outputs[-1], alpha)` and
# `temporal_activation_regularization(out.raw_outputs[-1], beta)` to the loss
# (`tests/test_regularize.py` checks it passes exactly these two tensors).

# %%
torch.manual_seed(0)
tiny = awdlib.AWDLSTM(awdlib.AWDLSTMConfig(vocab_size=50, emb_size=8, hidden_size=16, n_layers=2)).train()
tokens = torch.randint(0, 50, (12, 3))  # (time, batch)
out = tiny(tokens, tiny.init_hidden(3))
raw, dropped = out.raw_outputs[-1].detach(), out.dropped_outputs[-1].detach()
print("last layer output (time, batch, features):", tuple(raw.shape),
      f"| zeroed by the mask: {(dropped == 0).float().mean():.2f}")

ours = ar_from_scratch(dropped), tar_from_scratch(raw)
lib = awdlib.activation_regularization(dropped, 2.0), awdlib.temporal_activation_regularization(raw, 1.0)
for name, a, b in zip(["AR ", "TAR"], ours, lib):
    diff = (a - b).abs().item()
    assert diff < 1e-6
    print(f"{name}: from scratch {a:.4g}, awdlib {b:.4g}, |difference| < 1e-6: {diff < 1e-6}")
print(f"AR on the raw output instead would be {ar_from_scratch(raw):.4g}; "
      f"TAR on the dropped output {tar_from_scratch(dropped):.4g}")

# %% [markdown]
# Why the dropped output for AR: with inverted dropout the kept entries are scaled by $1/(1-p)$, so in
# expectation $\mathbb E[(m \odot h)^2] = h^2/(1-p)$: AR on the dropped output is the raw penalty
# scaled by $1/(1-p)$ plus noise. TAR on a dropped output would mostly measure the mask (a feature
# dropped at $t$ but kept at $t+1$ "changes" a lot); locked dropout uses one mask for all steps, which
# softens that, but the paper still takes TAR on the raw output. The two printed lines above show how
# much the choice matters on this tiny model.
#
# ## Measure: rung 4 without and rung 5 with AR/TAR
#
# Two runs with the same sizes, seed and data: **rung 4**'s configuration (the plain LSTM of
# notebook 01 with every dropout of the preset switched on: embedding, input, between-layer and output
# locked dropout and weight drop; plain SGD) and **rung 5** = the same plus $\alpha = 2$, $\beta = 1$.
# Rung 4 is trained again here so that this notebook stands alone. At demo scale each run is 20 epochs
# on the first 10% of PTB's training text on 2 CPU cores (a few minutes each); validation and test use
# the full splits.

# %% tags=["nbval-ignore-output"]
dropouts = {k: preset.model[k] for k in NO_DROPOUT}  # every dropout rate of this scale's preset
rung4 = preset.plain().with_model(**dropouts).with_train(progress=progress)
rung5 = rung4.with_train(alpha=2.0, beta=1.0)
print("dropouts:", dropouts)
print("rung 4: alpha", rung4.train.alpha, "beta", rung4.train.beta, "| optimizer", rung4.train.optimizer)
print("rung 5: alpha", rung5.train.alpha, "beta", rung5.train.beta, "| optimizer", rung5.train.optimizer)

# %% tags=["nbval-ignore-output"]
without = rung4.trainer(corpus, checkpoint_dir=f"results/checkpoints/{scale}/ar-tar-off")
without.fit();

# %% tags=["nbval-ignore-output"]
with_ar_tar = rung5.trainer(corpus, checkpoint_dir=f"results/checkpoints/{scale}/ar-tar")
with_ar_tar.fit();
row = ladder.record_trainer("+ AR/TAR", with_ar_tar, rung=5, notebook="04")

# %% [markdown]
# Both runs' best validation perplexity and the test perplexity of those best weights (the run without
# AR/TAR is not written to the ladder: rung 4 belongs to notebook 03).

# %% tags=["nbval-ignore-output"]
without.load_best()  # with_ar_tar already holds its best weights (record_trainer loaded them)
c = without.config
test_without = awdlib.perplexity(awdlib.evaluate(without.model, corpus.test, c.bptt, c.test_batch_size))
best_without = without.history.best()
print(f"scale {scale!r}, {threads} torch threads on a CPU")
print(f"without AR/TAR (rung 4 config): best valid ppl {best_without['valid_ppl']:.2f} "
      f"(epoch {best_without['epoch']}), test ppl {test_without:.2f}")
print(f"with AR/TAR    (rung 5)       : best valid ppl {row['valid_ppl']:.2f} "
      f"(epoch {with_ar_tar.history.best()['epoch']}), test ppl {row['test_ppl']:.2f}")
rung4_row = ladder.get("+ embedding dropout")
if rung4_row is None:
    print(f"notebook 03 has not been run at scale {scale!r}: no stored rung 4 to compare with")
else:
    print(f"rung 4 as stored by notebook 03: best valid ppl {rung4_row['valid_ppl']:.2f}, "
          f"test ppl {rung4_row['test_ppl']:.2f}")

# %% [markdown]
# The curves (dashed: training perplexity, measured with dropout on; solid: validation).

# %% tags=["nbval-ignore-output"]
plot_curves({"without AR/TAR": without.history, "with AR/TAR": with_ar_tar.history},
            title=f"{scale} scale: dashed train, solid validation")
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
# ## The ladder so far

# %% tags=["nbval-ignore-output"]
print(ladder.table(upto=5))
plot_ladder_curves(ladder, ["+ embedding dropout", "+ AR/TAR"],
                   title=f"{scale} scale, from the ladder: dashed train, solid validation")
plt.show()

# %% [markdown]
# ## Takeaways
#
# - AR $= \alpha \cdot \mathrm{mean}((m \odot h_t)^2)$ on the *dropped* last-layer output; TAR
#   $= \beta \cdot \mathrm{mean}((h_t - h_{t+1})^2)$ on the *raw* one; both only in the training loss.
# - They are two lines of code and cost almost nothing per step (both tensors are already computed).
# - The histograms show the mechanism directly: smaller activations and smaller step-to-step changes.
# - At demo scale the effect on perplexity is small against the noise (validation moves by ±20–40
#   between epochs here, see `shared/DEMO_SCALE.md`): compare the printed numbers with that before
#   reading a ranking into them. In the paper's ablation on full PTB (Table 3, "– AR/TAR"), removing
#   the two penalties makes both validation and test perplexity worse by a few points.
#
# ## Exercises (predict, then run)
#
# 1. In the check cell, apply AR to `raw` instead of `dropped` with $p = 0.4$. Predict the ratio of the
#    two AR values before looking at the printed line (hint: $1/(1-p)$ in expectation).
# 2. Train rung 5 with $\beta = 10$ (and $\alpha = 2$). Predict how the right-hand histogram and the
#    training perplexity change, then run it.
