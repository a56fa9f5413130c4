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
# plain SGD) plus AR and TAR. At the end it wires the from-scratch pieces of notebooks 02–04 into the
# whole AWD-LSTM and checks it against the library's.

# %% tags=["parameters"]
import os
scale = os.environ.get("AWDLIB_SCALE", "demo")  # "smoke": seconds (CI) | "demo": the shipped weights (stored outputs)
threads = int(os.environ.get("AWDLIB_THREADS", "1"))  # 1, as the studies: the same floats as the stored outputs
retrain = False  # True: train this notebook's runs again instead of loading the shipped weights (prints the time first)
progress = True  # a progress bar while a run trains (nothing trains unless retrain is on, or at smoke scale)

# %%
# %matplotlib inline
import copy

import matplotlib.pyplot as plt
import torch

import awdlib
from awdlib.experiments import ladder_configs, read_runs
from awdlib.notebook_runs import ladder_run
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
p = tiny.config.dropout
kept = dropped != 0  # the mask m, repeated over the 12 steps
share = raw[kept].pow(2).sum() / raw.pow(2).sum()
print(f"AR on the raw output instead would be {ar_from_scratch(raw):.4g}; TAR on the dropped output "
      f"{tar_from_scratch(dropped):.4g}")
print(f"ratio AR dropped / AR raw = {ar_from_scratch(dropped) / ar_from_scratch(raw):.3f}: the mask kept "
      f"{kept.float().mean():.3f} of its {kept[0].numel():,} (example, feature) entries and {share:.3f} "
      f"of the sum of h^2, and {share:.3f} / (1-p)^2 = {share / (1 - p) ** 2:.3f}")
print(f"its expectation over masks, with p = {p}: (1-p) / (1-p)^2 = 1/(1-p) = {1 / (1 - p):.3f}")

# %% [markdown]
# Why the dropped output for AR, and why the ratio is not exactly $1/(1-p)$. The dropped output is
# $m \odot h / (1-p)$ with $m \in \{0, 1\}$, so
#
# $$
# \frac{\mathrm{AR}(\text{dropped})}{\mathrm{AR}(\text{raw})} = \frac{\sum m\, h^2}{(1-p)^2 \sum h^2},
# $$
#
# the share of $\sum h^2$ that the mask kept, divided by $(1-p)^2$. For these outputs $h$, each entry
# is kept with probability $1-p$, so the expected share is $1-p$ and the expected ratio over masks is
# $(1-p)/(1-p)^2 = 1/(1-p)$: AR on the dropped output is the raw penalty scaled by $1/(1-p)$, plus
# noise. The sample is one draw of the locked mask: one coin per (example, feature) pair, 2,048 of
# them, each repeated over the 12 steps, and a dropped feature with a large $h^2$ removes more than
# its share. The last two printed lines show the share this mask kept, that it gives the sample ratio
# exactly, and the expectation beside it; with a handful of coins the ratio can land far from
# $1/(1-p)$.
#
# TAR on a dropped output would mostly measure the mask (a feature dropped at $t$ but kept at $t+1$
# "changes" a lot); locked dropout uses one mask for all steps, which softens that, but the paper
# still takes TAR on the raw output. The line "AR on the raw output instead ..." shows how much the
# choice matters on this tiny model.
#
# ## Measure: rung 4 without and rung 5 with AR/TAR
#
# **Rung 4** (notebook 03: the plain LSTM with every dropout of the preset, plain SGD) and **rung 5** =
# the same plus $\alpha = 2$, $\beta = 1$: same sizes, data, seed, at most 40 epochs and the same early
# stopping. Seed 141 of each: the next cell loads the study's shipped weights in seconds; with
# `retrain = True` in the parameters cell it trains both again, and prints first how long the study
# took for each.

# %%
without = ladder_run(scale, "+ embedding dropout", seed=141, retrain=retrain, progress=progress,
                     threads=threads)
with_ar_tar = ladder_run(scale, "+ AR/TAR", seed=141, retrain=retrain, progress=progress,
                         threads=threads)
print("rung 4: alpha", without.config.alpha, "beta", without.config.beta, "| rung 5: alpha",
      with_ar_tar.config.alpha, "beta", with_ar_tar.config.beta)
for name, trainer in [("without AR/TAR (rung 4)", without), ("with AR/TAR (rung 5)", with_ar_tar)]:
    best = trainer.history.best()
    print(f"{name:<24} seed 141: best valid ppl {best['valid_ppl']:7.2f} at epoch {best['epoch']:2d} "
          f"of {trainer.epoch}; train ppl there {best['train_ppl']:7.2f}")

# %% [markdown]
# The two seed-141 runs' curves (dashed: training perplexity, measured with dropout on; solid:
# validation):

# %%
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


# %%
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
print(f"over {len(stretch):,} validation tokens:")
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

# %%
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
# ## The whole model, from its parts
#
# Notebooks 02, 03 and this one built each technique alone; wired together they are the AWD-LSTM's
# forward pass in training mode. The picture shows where each sits, with the rates of the rung-5 run
# loaded above (`awdlib/model.py` draws the same flow in its docstring):

# %%
def draw_data_flow(c: awdlib.AWDLSTMConfig, alpha: float, beta: float):
    """The forward pass, left to right: grey boxes are modules, red the dropouts with their rates,
    blue where AR and TAR read the last layer's output."""
    names = ["tokens", "embedding"] + [f"LSTM {i + 1}" for i in range(c.n_layers)] + ["tied\ndecoder", "logits"]
    step, red, blue, small = 2.6, "tab:red", "tab:blue", dict(ha="center", fontsize=8.5)
    fig, ax = plt.subplots(figsize=(11, 2.4))
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.98)
    for i, name in enumerate(names):
        ax.text(step * i, 0, name, ha="center", va="center", fontsize=10,
                bbox=dict(boxstyle="round", fc="0.92", ec="0.5"))
        if i:
            ax.annotate("", (step * i - 0.7, 0), (step * (i - 1) + 0.75, 0), arrowprops=dict(arrowstyle="->"))
    ax.text(step, -0.4, f"embedding dropout\n(whole words)\np = {c.dropoute}", va="top", color=red, **small)
    for i in range(c.n_layers):
        ax.text(step * (i + 2), -0.4, f"weight drop\non $W_{{hh}}$\np = {c.wdrop}", va="top", color=red,
                **small)
    for i in range(c.n_layers + 1):  # locked dropout into, between and out of the LSTM layers
        p = c.dropouti if i == 0 else c.dropout if i == c.n_layers else c.dropouth
        ax.plot(step * (i + 1.5), 0, "o", color=red, ms=9)
        ax.text(step * (i + 1.5), -0.4 if i == c.n_layers else 0.3, f"locked\np = {p}",
                va="top" if i == c.n_layers else "bottom", color=red, **small)
    last = step * (c.n_layers + 1.5)  # the output's locked dropout: TAR reads before it, AR after it
    for x, side, text in [(last - 0.35, "right", f"TAR, β = {beta:g}\non raw $h_t$"),
                          (last + 0.35, "left", f"AR, α = {alpha:g}\non $m \\odot h_t$")]:
        ax.plot([x, x], [0, 0.45], color=blue, lw=1)
        ax.text(x, 0.5, text, ha=side, va="bottom", color=blue, fontsize=8.5)
    ax.set_xlim(-0.7, step * (len(names) - 1) + 0.7)
    ax.set_ylim(-1.3, 1.1)
    ax.axis("off")


draw_data_flow(with_ar_tar.model.config, with_ar_tar.config.alpha, with_ar_tar.config.beta)
plt.show()

# %% [markdown]
# Embedding dropout removes whole word types for the pass; each red dot is a locked mask, one per
# (example, feature) for every step; weight drop cuts the same recurrent connections at every step
# for the whole batch; the decoder's weight is the embedding matrix. TAR reads the last layer's raw
# output, AR the same output after its dropout.
#
# Below, the pieces once more in a few lines each (notebook 03's locked and embedding dropout, notebook
# 02's LSTM loop with the mask on $W_{hh}$, this notebook's AR and TAR), and the forward pass that wires
# them, reading nothing from the model but its parameters. To match the library draw for draw, the
# random numbers must come in the library's order (the embedding mask, the input mask, then for each
# layer its $W_{hh}$ mask and the mask after it) and from the same samplers: `bernoulli_` for the
# dropout masks, and `awdlib.dropconnect_mask` for weight drop, which draws its coins from 16-bit
# integers (notebook 02) and returns them already scaled by $1/(1-p)$.

# %%
def locked_dropout(x, p):
    """One mask per example and feature, shared by every step of x (time, batch, features)."""
    return x * x.new_empty(1, x.size(1), x.size(2)).bernoulli_(1 - p) / (1 - p)


def embedding_dropout(embedding, words, p):
    """Zero whole rows (word types) of the embedding matrix, then look the words up."""
    mask = embedding.weight.new_empty(embedding.num_embeddings, 1).bernoulli_(1 - p)
    return (embedding.weight * mask / (1 - p))[words]


def weight_dropped_lstm(lstm, x, p):
    """One LSTM layer from a zero state, with one DropConnect mask on W_hh for all steps."""
    U = lstm.weight_hh_l0 * awdlib.dropconnect_mask(lstm.weight_hh_l0, p)  # 0 or W_hh / (1-p)
    h = c = x.new_zeros(x.size(1), lstm.hidden_size)
    outputs = []
    for x_t in x:
        i, f, g, o = (x_t @ lstm.weight_ih_l0.T + lstm.bias_ih_l0 + h @ U.T + lstm.bias_hh_l0).chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outputs.append(h)
    return torch.stack(outputs)


def awd_lstm_from_scratch(model, tokens, alpha, beta):
    """The training-mode forward pass of `model` from its parameters: logits, AR and TAR."""
    c = model.config
    x = locked_dropout(embedding_dropout(model.encoder, tokens, c.dropoute), c.dropouti)
    for i, rnn in enumerate(model.rnns):
        raw = weight_dropped_lstm(rnn.module, x, c.wdrop)
        x = locked_dropout(raw, c.dropout if i == c.n_layers - 1 else c.dropouth)
    logits = x @ model.encoder.weight.T + model.decoder.bias  # the tied decoder
    return logits, ar_from_scratch(x, alpha), tar_from_scratch(raw, beta)

# %% [markdown]
# The check: the trained rung-5 model in training mode on the first training window, once through
# `awdlib.AWDLSTM` (with AR and TAR taken as `awdlib.Trainer` takes them) and once through our
# function, each after `torch.manual_seed(0)`. Both run in float64, so a difference could only come
# from the data flow, not from the fused LSTM kernel summing in another order than our loop (in
# float32 that alone moves the logits by about $10^{-6}$).

# %%
model = copy.deepcopy(with_ar_tar.model).double().train()
alpha, beta = with_ar_tar.config.alpha, with_ar_tar.config.beta
batch, bptt = with_ar_tar.config.batch_size, with_ar_tar.config.bptt
data = awdlib.batchify(corpus.train, batch)
tokens, targets = data[:bptt], data[1:bptt + 1]  # the first window, (time, batch)
with torch.no_grad():
    torch.manual_seed(0)
    out = model(tokens, model.init_hidden(batch))
    theirs = (out.logits, awdlib.activation_regularization(out.dropped_outputs[-1], alpha),
              awdlib.temporal_activation_regularization(out.raw_outputs[-1], beta))
    torch.manual_seed(0)
    ours = awd_lstm_from_scratch(model, tokens, alpha, beta)
for name, a, b in zip(("logits", "AR", "TAR"), ours, theirs):
    diff = (a - b).abs().max().item()
    assert diff < 1e-6
    print(f"{name:<6}: max |from scratch - awdlib| = {diff:.10f}")
cross_entropy = torch.nn.functional.cross_entropy(ours[0].flatten(0, 1), targets.flatten())
print(f"the window's training loss, as awdlib.Trainer adds it up: cross-entropy {cross_entropy:.4f} "
      f"+ AR {ours[1]:.4f} + TAR {ours[2]:.4f} = {cross_entropy + ours[1] + ours[2]:.4f}")

# %% [markdown]
# The differences print as zero: the library's training-mode AWD-LSTM is these few functions in this
# order and nothing else. A training step (`awdlib.Trainer._step`) backpropagates that sum, clips the
# gradient norm and takes one SGD step; notebook 05 changes only that last part.

# %% [markdown]
# ## Takeaways
#
# - AR $= \alpha \cdot \mathrm{mean}((m \odot h_t)^2)$ on the *dropped* last-layer output; TAR
#   $= \beta \cdot \mathrm{mean}((h_t - h_{t+1})^2)$ on the *raw* one; both only in the training loss.
# - They are two lines of code and cost almost nothing per step (both tensors are already computed).
# - The whole training-mode model is embedding dropout, locked dropout, weight-dropped LSTMs with
#   locked dropout between them, locked dropout on the output and the tied decoder, with AR and TAR on
#   the last layer: a page of from-scratch code that equals `awdlib.AWDLSTM` draw for draw.
# - The histograms show the mechanism directly: smaller activations and smaller step-to-step changes.
# - Whether they help at demo scale is the sentence printed under the ladder: the difference of the
#   seed means against the seed spread. In the paper's ablation on full PTB (Table 3, "– AR/TAR"),
#   removing the two penalties makes validation perplexity 2.7 worse and test perplexity 3.0 worse.
#
# ## Exercises (predict, then run)
#
# 1. In the check cell, change the batch from 64 to 3 (both places). Predict how far the printed ratio of
#    dropped to raw AR can now land from $1/(1-p) \approx 1.67$, then run it a few times with other seeds.
# 2. Train rung 5 with $\beta = 10$ (and $\alpha = 2$). Predict how the step-to-step changes (the
#    right-hand histogram) and the training perplexity change, then run this in a new cell (at demo
#    scale it trains for about as long as the study's rung 5 took, printed where it was loaded):
#    ```python
#    beta10 = ladder_configs(preset)["+ AR/TAR"].with_train(beta=10.0, progress=progress).trainer(corpus)
#    best = beta10.fit().best()
#    v = last_layer_outputs(beta10.model, stretch)
#    print(f"train ppl at the best epoch {best['train_ppl']:.2f}; "
#          f"mean (h_t - h_t+1)^2 {(v[1:] - v[:-1]).pow(2).mean():.4g} (TAR / beta)")
#    ```
