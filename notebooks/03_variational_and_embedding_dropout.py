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
# # 03 · Variational (locked) dropout and embedding dropout
#
# Merity, Keskar & Socher (2017), Sections 4.2 and 4.3. Notebook 02 regularised the recurrent weights;
# this one regularises the *activations* flowing into, between and out of the LSTM layers, and the
# embedding matrix itself.
#
# **Variational dropout** (Gal & Ghahramani, 2016). Standard dropout samples a fresh mask at every time
# step. Variational, or *locked*, dropout samples one mask per sequence and reuses it at every step:
#
# $$
# y_t = \frac{m \odot x_t}{1 - p}, \qquad m \sim \mathrm{Bernoulli}(1 - p)^{d}\ \text{once per forward
# pass, for all } t,
# $$
#
# with, as the paper notes, a different mask for each example of the mini-batch. AWD-LSTM uses it on the
# embedded input (`dropouti`), between LSTM layers (`dropouth`) and on the last layer's output
# (`dropout`); the recurrent connections are left to weight drop.
#
# **Embedding dropout** (also Gal & Ghahramani) drops whole *word types*: each row $E_w$ of the
# embedding matrix is zeroed with probability $p_e$ for one forward and backward pass,
#
# $$
# \tilde E_w = \frac{b_w\, E_w}{1 - p_e}, \qquad b_w \sim \mathrm{Bernoulli}(1 - p_e),
# $$
#
# so "all occurrences of a specific word will disappear within that pass": variational dropout on the
# connection between the one-hot input and the embedding lookup.
#
# This notebook builds both from scratch, checks them against `awdlib`, shows the masks over time and
# words vanishing from a real PTB sentence, then measures rungs 3 and 4 of the results ladder.

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
import torch.nn.functional as F
from torch import nn

import awdlib
from awdlib.experiments import ladder_configs, read_runs
from awdlib.notebook_runs import ladder_run
from awdlib.plots import plot_mask, plot_study
from awdlib.widgets import mask_over_time_explorer

torch.set_num_threads(threads)
preset = awdlib.PRESETS[scale]
corpus = preset.corpus()
print(f"scale {scale!r}: {preset.description}")

# %% [markdown]
# ## Build them from scratch
#
# Each is two lines. Locked dropout's mask has a time axis of length 1, so broadcasting reuses it at
# every step; embedding dropout's mask has one entry per row of the vocabulary.

# %%
def locked_dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """x: (time, batch, features). One mask per example and feature, shared by all time steps."""
    mask = x.new_empty(1, x.size(1), x.size(2)).bernoulli_(1 - p)
    return x * mask / (1 - p)


def embedding_dropout_from_scratch(embedding: nn.Embedding, words: torch.Tensor, p: float):
    """Zero whole rows (word types) of the embedding matrix, then look the words up."""
    mask = embedding.weight.new_empty(embedding.num_embeddings, 1).bernoulli_(1 - p)
    return (embedding.weight * mask / (1 - p))[words]

# %% [markdown]
# ## Check them against the library
#
# Under the same seed, the from-scratch versions and `awdlib.LockedDropout` / `awdlib.embedding_dropout`
# draw the same masks. In evaluation mode `LockedDropout` is the identity, and the model passes
# `p = 0` to `embedding_dropout`, a plain lookup.

# %%
torch.manual_seed(0)
x = torch.randn(10, 4, 6)  # (time, batch, features)
locked = awdlib.LockedDropout(0.5).train()
torch.manual_seed(1)
ours = locked_dropout(x, 0.5)
torch.manual_seed(1)
diff = (ours - locked(x)).abs().max().item()
assert diff < 1e-6
print(f"max |from scratch - awdlib.LockedDropout| = {diff:.6f}")
assert torch.equal(locked.eval()(x), x)
print("eval mode: LockedDropout is the identity")

embedding = nn.Embedding(len(corpus.vocab), 8)
words = corpus.train[:50].view(10, 5)
torch.manual_seed(2)
ours = embedding_dropout_from_scratch(embedding, words, 0.1)
torch.manual_seed(2)
diff = (ours - awdlib.embedding_dropout(embedding, words, 0.1)).abs().max().item()
assert diff < 1e-6
print(f"max |from scratch - awdlib.embedding_dropout| = {diff:.6f}")
assert torch.equal(awdlib.embedding_dropout(embedding, words, 0.0), embedding(words))
print("p = 0: embedding_dropout is a plain lookup")

# %% [markdown]
# ## See it: masks over time
#
# Dropout applied to a tensor of ones returns its own mask (0 or $1/(1-p)$). Below, 6 examples x 20
# features at four time steps: standard dropout draws a new pattern every step; locked dropout draws
# one pattern per example (each row differs) and keeps it for the whole sequence.

# %%
torch.manual_seed(0)
ones = torch.ones(8, 6, 20)  # (time, batch, features)
standard_mask = F.dropout(ones, 0.5, training=True)
locked_mask = awdlib.LockedDropout(0.5).train()(ones)


def changed(mask):
    """Fraction of (example, feature) entries whose mask differs from the previous step."""
    return (mask[1:] != mask[:-1]).float().mean().item()


print(f"entries that change from one step to the next: standard {changed(standard_mask):.2f}, "
      f"locked {changed(locked_mask):.2f}")

fig, axes = plt.subplots(2, 4, figsize=(10, 3.6))
for j, t in enumerate((0, 1, 2, 7)):
    plot_mask(standard_mask[t], axes[0, j], f"standard, t = {t}", ylabel="example" if j == 0 else "")
    plot_mask(locked_mask[t], axes[1, j], f"locked, t = {t}", "feature",
              "example" if j == 0 else "")
fig.suptitle("dropout masks over time, p = 0.5 (black: dropped)")
fig.tight_layout()
plt.show()

# %% [markdown]
# Step through time with the slider: the top-left mask changes at every step, the right one never does.

# %% tags=["nbval-ignore-output"]
mask_over_time_explorer(standard_mask, locked_mask)

# %% [markdown]
# ## See it: whole words vanish
#
# A real sentence from PTB's training text (line 14 of `ptb.train.txt`), which uses *the*, *of*, *and*
# and *university* twice. Each line below is one forward pass of embedding dropout with $p_e = 0.3$
# (the paper uses 0.1; 0.3 shows more drops). A dropped word is shown as `___`: every occurrence of a
# dropped type vanishes together, and a kept type is kept everywhere.

# %%
sentence = ("dr. <unk> led a team of researchers from the national cancer institute and the medical "
            "schools of harvard university and boston university")
ids = corpus.vocab.encode(sentence)
torch.manual_seed(0)
embedding = nn.Embedding(len(corpus.vocab), 8)
for draw in range(5):
    vectors = awdlib.embedding_dropout(embedding, ids, 0.3)
    gone = (vectors == 0).all(dim=1)
    for w in ids.unique():  # the same fate for every occurrence of a word type
        assert gone[ids == w].all() or not gone[ids == w].any()
    print(" ".join("___" if g else w for g, w in zip(gone.tolist(), sentence.split())))

# %% [markdown]
# The embedded sentence of the last pass: one row per position. Dropped words are all-zero rows (drawn
# black); kept rows are the word's embedding scaled by $1/(1-p_e)$.

# %%
shown = vectors.detach().clone()
shown[gone] = float("nan")  # drawn black: the all-zero rows of dropped words
cmap = plt.get_cmap("RdBu").copy()
cmap.set_bad("black")
fig, ax = plt.subplots(figsize=(5, 5))
ax.imshow(shown, cmap=cmap, vmin=-4, vmax=4, aspect="auto", interpolation="nearest")
ax.set_yticks(range(len(ids)), sentence.split(), fontsize=8)
ax.set_xlabel("embedding feature")
ax.set_title("embedding dropout, p = 0.3: black rows are dropped words", fontsize=9)
plt.show()

# %% [markdown]
# ## Measure: rungs 3 and 4
#
# Rung 3, "+ locked dropout", is rung 2 (the plain LSTM with weight drop 0.5, notebook 02) plus locked
# dropout at the preset's rates on the input, between layers and on the output. Rung 4,
# "+ embedding dropout", adds embedding dropout at the preset's rate. Nothing else changes: plain SGD,
# no AR/TAR, at most 40 epochs with the same early stopping as every rung.

# %%
configs = ladder_configs(preset)
for name in ("+ locked dropout", "+ embedding dropout"):
    print(f"{name:<20}", {k: configs[name].model[k]
                          for k in ("wdrop", "dropouti", "dropouth", "dropout", "dropoute")})

# %% [markdown]
# Seed 141 of each, beside notebook 02's rung 2 as the study recorded it. The next cell loads the
# study's shipped weights in seconds; with `retrain = True` in the parameters cell it trains both again,
# and prints first how long the study took for each.

# %%
trainers = {name: ladder_run(scale, name, seed=141, retrain=retrain, progress=progress, threads=threads)
            for name in ("+ locked dropout", "+ embedding dropout")}
runs = read_runs(f"results/ladder-{scale}.runs.jsonl")
rung2 = next((r for r in runs if r["name"] == "+ weight drop" and r["seed"] == 141), None)
if rung2 is not None:  # notebook 02's run: its row in the study file
    print(f"rung 2 {'+ weight drop':<20} seed 141: best valid ppl {rung2['valid_ppl']:7.2f} at epoch "
          f"{rung2['best_epoch']:2d} of {rung2['epochs']}")
for rung, (name, trainer) in enumerate(trainers.items(), start=3):
    best = trainer.history.best()
    print(f"rung {rung} {name:<20} seed 141: best valid ppl {best['valid_ppl']:7.2f} at epoch "
          f"{best['epoch']:2d} of {trainer.epoch}; train ppl there {best['train_ppl']:7.2f}")

# %% [markdown]
# Every seed of every rung so far (top: one panel per rung, its seeds over the rung before in grey) and
# the ladder as mean ± standard deviation over the seeds (below). The paper has no ablation row for locked dropout (its full model always has it); removing
# embedding dropout cost 5.1 validation perplexity on PTB (Table 3).

# %%
ladder = awdlib.Ladder.for_scale(scale)  # the study's summary (these runs included)
print(ladder.table(upto=4))
print(ladder.compare("+ locked dropout", "+ weight drop"))
print(ladder.compare("+ embedding dropout", "+ locked dropout"))
print(ladder.compare("+ embedding dropout", "plain LSTM"))
plot_study(ladder, runs, ["plain LSTM", "+ weight drop", "+ locked dropout", "+ embedding dropout"])
plt.show()

# %% [markdown]
# **What the stored runs show** (demo scale, one torch thread per run, on a CPU; the numbers are printed
# above). Locked dropout is where the ladder moves: with seed 141 the best validation perplexity drops from
# 327.17 (rung 2) to 288.91 (rung 3), and the best epoch moves from 16 to 32 of 40: with the input,
# between-layer and output masks on, the model keeps improving for twice as long before it overfits.
# Embedding dropout then adds a smaller step (282.86, still improving at the 40-epoch cap). The printed
# sentences say which steps clear the seed noise; a step of a few points, like rung 4's, needs the
# seeds to be trusted, while rung 4 against the plain LSTM differs by tens of points.

# %% [markdown]
# ## Takeaways
#
# - Locked dropout is standard dropout with the time axis of the mask set to 1: one mask per example
#   and feature for the whole sequence, so the model cannot average the noise away across steps.
# - Embedding dropout zeroes whole rows of the embedding matrix: a dropped word vanishes everywhere in
#   the batch, which teaches the model not to rely on any single word type being present.
# - Both are identity at evaluation time, and both rescale by $1/(1-p)$ during training.
# - At demo scale, read means over seeds against their spread, not one run's last digit: at this high
#   learning rate validation perplexity jumps from epoch to epoch (the curves above). With more dropout the model keeps improving
#   for longer before it overfits. At full scale the paper's ablation (Table 3) finds the complete
#   model 5.1 validation perplexity worse without embedding dropout.
#
# ## Exercises (predict, then run)
#
# 1. In the mask cell, replace the `locked_mask` line by
#    `locked_mask = F.dropout(ones[:1], 0.5, training=True).expand_as(ones)`. Predict what `changed(...)`
#    prints for it, and explain why this *is* locked dropout.
# 2. Train rung 4 with `dropoute=0.5` instead of the preset's value. Predict whether the best validation
#    perplexity goes up or down, and what happens to the training perplexity, then run this in a new
#    cell (at demo scale it trains for about as long as the study's rung 4 took, printed where it was
#    loaded):
#    ```python
#    trainer = (configs["+ embedding dropout"].with_model(dropoute=0.5)
#               .with_train(progress=progress).trainer(corpus))
#    best = trainer.fit().best()
#    print(f"best valid ppl {best['valid_ppl']:.2f} at epoch {best['epoch']}; "
#          f"train ppl there {best['train_ppl']:.2f}")
#    ```
