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
# # 02 · Weight drop: DropConnect on the recurrent weights
#
# The first technique of Merity, Keskar & Socher (2017), *Regularizing and Optimizing LSTM Language
# Models*, Section 2. An LSTM computes, at every time step $t$,
#
# $$
# \begin{aligned}
# i_t &= \sigma(W^i x_t + U^i h_{t-1}), & f_t &= \sigma(W^f x_t + U^f h_{t-1}), &
# o_t &= \sigma(W^o x_t + U^o h_{t-1}), \\
# \tilde c_t &= \tanh(W^c x_t + U^c h_{t-1}), & c_t &= i_t \odot \tilde c_t + f_t \odot c_{t-1}, &
# h_t &= o_t \odot \tanh(c_t).
# \end{aligned}
# $$
#
# Ordinary dropout on $h_{t-1}$ would disturb the LSTM's memory a little more at every step. The paper
# instead applies **DropConnect** (Wan et al., 2013) to the hidden-to-hidden matrices
# $U = [U^i, U^f, U^o, U^c]$ (PyTorch's `weight_hh_l0`): each *weight* is zeroed with probability $p$,
#
# $$
# \tilde U = \frac{M \odot U}{1 - p}, \qquad M_{jk} \sim \mathrm{Bernoulli}(1 - p),
# $$
#
# and the mask $M$ is sampled **once per forward pass**: "the same individual dropped weights remain
# dropped for the entirety of the forward and backward pass". The division by $1-p$ (inverted dropout)
# keeps $\mathbb E[\tilde U] = U$, so evaluation simply uses $U$. Because only the weights change, the
# fast fused LSTM kernel (cuDNN on a GPU) still runs: no custom cell is needed.
#
# This notebook builds weight drop from scratch, checks it against `awdlib.WeightDrop`, looks at the
# mask, and measures rung 2 of the results ladder: the plain LSTM of notebook 01 plus weight drop.

# %% tags=["parameters"]
import os
scale = os.environ.get("AWDLIB_SCALE", "demo")  # "smoke": seconds (CI) | "demo": the shipped weights (stored outputs)
threads = int(os.environ.get("AWDLIB_THREADS", "1"))  # 1, as the studies: the same floats as the stored outputs
retrain = False  # True: train this notebook's runs again instead of loading the shipped weights (prints the time first)
progress = True  # a progress bar while a run trains (nothing trains unless retrain is on, or at smoke scale)

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import torch
from torch import nn

import awdlib
from awdlib.experiments import read_runs
from awdlib.notebook_runs import ladder_run
from awdlib.plots import plot_mask, plot_study
from awdlib.widgets import weight_drop_mask_explorer

torch.set_num_threads(threads)
preset = awdlib.PRESETS[scale]
corpus = preset.corpus()
print(f"scale {scale!r}: {preset.description}")

# %% [markdown]
# ## Build it from scratch
#
# A hand-written LSTM cell loop makes the point visible: the mask is sampled *outside* the loop, and
# the same dropped matrix `U` multiplies $h_{t-1}$ at every step. (PyTorch stores the four gate
# blocks stacked in the order $i, f, g = \tilde c, o$.)

# %%
def weight_dropped_lstm(lstm: nn.LSTM, x: torch.Tensor, p: float, mask=None) -> torch.Tensor:
    """Run a one-layer LSTM over x (time, batch, features) with DropConnect on W_hh."""
    if mask is None:  # M ~ Bernoulli(1 - p): one mask for the whole sequence
        mask = (torch.rand_like(lstm.weight_hh_l0) >= p).float()
    U = lstm.weight_hh_l0 * mask / (1 - p)  # inverted DropConnect
    h = x.new_zeros(x.size(1), lstm.hidden_size)
    c = torch.zeros_like(h)
    outputs = []
    for x_t in x:  # the same U at every step
        i, f, g, o = (x_t @ lstm.weight_ih_l0.T + lstm.bias_ih_l0
                      + h @ U.T + lstm.bias_hh_l0).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outputs.append(h)
    return torch.stack(outputs)

# %% [markdown]
# ## Check it against the library
#
# `awdlib.WeightDrop(lstm, p)` wraps an `nn.LSTM`. In training mode it samples one mask per call and
# runs the wrapped LSTM with the dropped `weight_hh_l0` swapped in for that call only
# (`torch.func.functional_call`), so the raw weight stays an ordinary parameter: `state_dict`,
# `deepcopy`, `.to(device)` and `eval()` behave as for a plain LSTM.
#
# The library draws its mask from a different random stream than our `torch.rand_like` (see the next
# section), so the check goes through the mask itself: under one seed, ask the library for its dropped
# matrix, read the mask off it ($M = [\tilde U \neq 0]$), and run our loop with that mask. If the
# library does exactly DropConnect with one mask per call, the two outputs agree at every step.

# %%
torch.manual_seed(0)
lstm = nn.LSTM(input_size=8, hidden_size=16)
x = torch.randn(12, 4, 8)  # (time, batch, features)
p = 0.5

weight_drop = awdlib.WeightDrop(lstm, p).train()
torch.manual_seed(1)
dropped = weight_drop.dropped_weights()["weight_hh_l0"]
torch.manual_seed(1)
theirs, _ = weight_drop(x)  # the same seed draws the same mask inside the call
mask = (dropped != 0).float()
assert torch.equal(dropped, lstm.weight_hh_l0 * mask / (1 - p))  # kept weights scaled by exactly 1/(1-p)
ours = weight_dropped_lstm(lstm, x, p, mask)
diff = (ours - theirs).abs().max().item()
assert diff < 1e-5
print(f"max |from scratch - awdlib.WeightDrop| = {diff:.6f} over {len(x)} time steps")

weight_drop.eval()
assert torch.equal(weight_drop(x)[0], lstm(x)[0])
print("eval mode: WeightDrop equals the plain LSTM with the raw weights")

# %% [markdown]
# (The library draws its masks from 16-bit random integers rather than our `torch.rand_like`: at the
# paper's size every step needs 11.2 million fresh draws, and that is several times faster on a CPU;
# `benchmarks/mask_sampling.py` times the ways of drawing them. The mask is the same Bernoulli draw.)
#
# ## See the mask
#
# The dropped `W_hh` of this small LSTM, drawn transposed: 16 rows (the units of $h_{t-1}$) by 64
# columns (4 gates x 16 units). Black entries are the connections that this forward pass cuts, at every time step and
# for every example of the batch.

# %%
torch.manual_seed(1)
dropped = weight_drop.dropped_weights()["weight_hh_l0"]
print(f"kept {(dropped != 0).float().mean():.3f} of {dropped.numel()} recurrent weights; "
      f"kept entries scaled by {dropped[dropped != 0][0] / lstm.weight_hh_l0[dropped != 0][0]:.3f}")
_, ax = plt.subplots(figsize=(8, 2.6))
plot_mask(dropped.T, ax, xlabel="to gate unit: i | f | g | o", ylabel="from unit of $h_{t-1}$",
          title="W_hh after weight drop, p = 0.5 (black: dropped; red lines separate the gates)")
for k in (1, 2, 3):
    ax.axvline(16 * k - 0.5, color="red", lw=1)
plt.show()

# %% [markdown]
# Move the slider to change $p$. The random seed is fixed, so as $p$ grows the connections already cut
# stay cut and more go black; compare $p = 0.1$ with the paper's $0.5$.

# %% tags=["nbval-ignore-output"]
weight_drop_mask_explorer(hidden_size=16, seed=0, p=0.5)

# %% [markdown]
# ## The first step is untouched, later steps are not
#
# The initial state is $h_0 = 0$, so at $t = 1$ the product $U h_0$ is zero whatever the mask. From the
# second step on, two training-mode calls (two masks) give different outputs. The plot shows the mean
# $|$difference$|$ between two calls on the same input, per time step.

# %%
weight_drop.train()
torch.manual_seed(2)
first, _ = weight_drop(x)
second, _ = weight_drop(x)
per_step = (first - second).abs().mean(dim=(1, 2)).detach()
print("step 1 identical:", torch.equal(first[0], second[0]))
print("every later step differs:", bool((per_step[1:] > 0).all()))

plt.figure(figsize=(6, 2.5))
plt.bar(range(1, len(per_step) + 1), per_step)
plt.xlabel("time step t")
plt.ylabel("mean |difference|")
plt.title("two training-mode calls of WeightDrop on the same input")
plt.show()

# %% [markdown]
# ## Measure: rung 2, "+ weight drop"
#
# The plain LSTM of notebook 01 (`preset.plain()`: no dropout of any kind, plain SGD) with weight drop
# $p = 0.5$ on every layer's `W_hh`, nothing else changed. At demo scale: the first 10% of PTB's
# training text, at most 40 epochs, stopped after 8 epochs without a better validation perplexity, the
# regime where the plain model overfits (`README.md` in this folder says why).
#
# The cell below is seed 141 of the ladder study. It loads the study's shipped weights and curves of
# that run in seconds; the line it prints says how long the study took to train it on one thread. Set
# `retrain = True` in the parameters cell to train the run again: the cell then prints that time first,
# and one line per epoch as it goes.

# %%
trainer = ladder_run(scale, "+ weight drop", seed=141, retrain=retrain, progress=progress, threads=threads)
best = trainer.history.best()
print(trainer.model.config)
print(f"seed 141: best valid ppl {best['valid_ppl']:.2f} at epoch {best['epoch']} of "
      f"{trainer.epoch}; train ppl there {best['train_ppl']:.2f}")

# %% [markdown]
# One run is one draw from the noise: validation perplexity at lr 30 jumps up and down from epoch to
# epoch (the curves below). The study ran each rung with three seeds; below, every seed's validation
# curve (top, one panel per rung, the rung before in grey) and the ladder so far as mean ± standard
# deviation (bottom), with the paper's full-scale change for the rung's technique in the table's last
# column (Table 3: removing weight drop from the full model cost 11.1
# validation perplexity on PTB).

# %%
ladder = awdlib.Ladder.for_scale(scale)  # the study's summary (this run included)
runs = read_runs(f"results/ladder-{scale}.runs.jsonl")
print(ladder.table(upto=2))
print(ladder.compare("+ weight drop", "plain LSTM"))
plot_study(ladder, runs, ["plain LSTM", "+ weight drop"])
plt.show()

# %% [markdown]
# **What the stored runs show** (demo scale, one torch thread per run, on a CPU). Seed 141 alone says
# little: its best validation perplexity is almost level with the plain LSTM's (the first of the
# seed-by-seed changes in the line under the table). Over the three seeds, though, the mean falls by
# about as much as the paper's −11.1 for the full model, and every seed is lower with weight drop. The
# change of the means is not three times the seed spread, so by the 3× rule it does not clear the
# noise; the paired count is sharper evidence, because runs with the same seed see the same batches in
# the same order. Three seeds are still few: if weight drop did nothing, all three would come out lower
# by chance in one study in eight ($1/2^3$).
#
# Where did the change come from? Per seed, the best epoch, the validation perplexity there, and how
# far it had risen again by the end of the run, when 8 epochs without a better one stopped it:

# %%
print(f"{'rung':<15}{'seed':>5}{'best epoch':>12}{'valid ppl':>11}{'epochs':>8}{'valid ppl':>11}"
      f"{'rise':>7}{'train ppl':>11}")
print(f"{'':<15}{'':>5}{'':>12}{'there':>11}{'run':>8}{'at the end':>11}{'':>7}{'at the end':>11}")
for name in ("plain LSTM", "+ weight drop"):
    for r in sorted((r for r in runs if r["name"] == name), key=lambda r: r["seed"]):
        at_best, at_end = r["valid_curve"][r["best_epoch"] - 1], r["valid_curve"][-1]
        print(f"{name:<15}{r['seed']:>5}{r['best_epoch']:>12}{at_best:>11.1f}{len(r['valid_curve']):>8}"
              f"{at_end:>11.1f}{at_end - at_best:>+7.1f}{r['train_curve'][-1]:>11.1f}")

# %% [markdown]
# The best epoch barely moves, but what follows it does: in every seed, validation perplexity climbs
# back up by less with weight drop over the epochs after its best one, while training perplexity stays
# higher at the end of the run. Weight drop slows the memorising of the training text; the "+ weight
# drop" panel above shows the same, its curves under the plain LSTM's grey ones late in training.
#
# The paper's −11.1 measures something else: what removing weight drop costs the *full* model, where
# every other path is already regularised. Here weight drop is the only regulariser, and the input, the
# embedding and the output are still free to memorise ten percent of PTB; notebook 03 adds the dropouts
# that close those paths.

# %% [markdown]
# ## Takeaways
#
# - Weight drop regularises the *recurrence*: one DropConnect mask on $U$ per forward pass, shared by
#   every time step and every example, scaled by $1/(1-p)$ so that evaluation uses the raw weights.
# - Only the weights change, so the fused LSTM kernel still runs; `awdlib.WeightDrop` swaps the dropped
#   matrix in for one call and keeps the raw weight as the parameter that is saved and trained.
# - The first step of a sequence that starts from $h_0 = 0$ is never affected; in training, the hidden
#   state carried between BPTT windows is not zero, so there every step is affected.
# - One seed at demo scale proves little: validation perplexity jumps from epoch to epoch at lr 30.
#   Compare means over seeds against their spread, and seed by seed (the sentence printed under the
#   ladder). Here weight drop left the best epoch about where it was; it changed what came after it:
#   validation perplexity rose less after its best epoch and training perplexity stayed higher, in
#   every seed (the table of seeds).
#
# ## Exercises (predict, then run)
#
# 1. Set `p = 0.9` in the check cell. Predict how the bar plot of per-step differences changes, then run it.
# 2. Train rung 2 again with `wdrop=0.2` (at demo scale this trains for about as long as the study's
#    run took, printed where it was loaded). Will the best validation perplexity be lower or higher
#    than with 0.5, and the training perplexity at that epoch? Predict, then run in a new cell and
#    compare with the seed 141 line printed under the loaded run (same seed, same batches):
#    ```python
#    best = preset.plain().with_model(wdrop=0.2).with_train(progress=progress).trainer(corpus).fit().best()
#    print(f"wdrop 0.2: best valid ppl {best['valid_ppl']:.2f} at epoch {best['epoch']}; "
#          f"train ppl there {best['train_ppl']:.2f}")
#    ```
