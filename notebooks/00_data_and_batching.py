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
# # 00 · Data and batching
#
# *Merity, Keskar & Socher (2017), Regularizing and Optimizing LSTM Language Models — Sections 4.1 and 5.*
#
# A word-level language model reads a long stream of words and, at every position, predicts the next
# one. Before any LSTM, three decisions shape everything that follows:
#
# 1. **Tokens.** The Penn Treebank (PTB) in Mikolov's preprocessing is already lower-cased, with numbers
#    replaced by `N` and rare words by `<unk>`; we split each line on whitespace and append an
#    end-of-sentence token `<eos>`. The vocabulary is every word of the train, valid and test files.
# 2. **Batching.** The training stream is cut into `batch` long, contiguous columns, so that each column is
#    read in order and the LSTM's hidden state can be carried from one window to the next.
# 3. **Windows of variable length.** Truncated back-propagation through time (BPTT) cuts the columns into
#    windows, and a window's gradient stops at its first position. With a fixed length of 70, the
#    target at position 1 of a window is predicted from a state made in the previous window, which the
#    gradient cannot reach: it gets no BPTT at all; position 2 gets one step, position 3 two, and so on,
#    so on average a word gets far fewer steps of BPTT than the window's length suggests. And because
#    the boundaries fall every 70 steps, the same words sit at the same positions in every epoch: some
#    always get almost no BPTT. The paper (Section 4.1) samples each window's length instead, so the
#    boundaries move from epoch to epoch and every position gets its share:
#
# $$\text{base} = \begin{cases} \text{bptt} & \text{with probability } p = 0.95\\ \text{bptt}/2 & \text{with probability } 1-p \end{cases}
# \qquad \text{seq\_len} \sim \mathcal{N}(\text{base},\, s^2),\; s = 5,\; \text{seq\_len} \ge 5$$
#
# and rescales the learning rate by $\text{seq\_len}/\text{bptt}$, so that short windows do not get the
# same step size as long ones.

# %% tags=["parameters"]
import os
scale = os.environ.get("AWDLIB_SCALE", "demo")  # "smoke": seconds (CI) | "demo": the notebooks' preset (stored outputs)
threads = int(os.environ.get("AWDLIB_THREADS", "1"))  # 1, as the studies: the same floats as the stored outputs

# %%
# %matplotlib inline
from collections import Counter

import matplotlib.pyplot as plt
import torch

import awdlib
from awdlib import data

torch.set_num_threads(threads)
preset = awdlib.PRESETS[scale]

# %% [markdown]
# ## The corpus
# `awdlib.load_corpus` finds the files (the `root` argument, else the folder in `$AWDLIB_DATA`, else a
# per-user cache it downloads into), checks every file's md5, and tokenises. The whole of PTB is small, so
# this notebook always looks at all of it, whatever the scale.

# %%
corpus = awdlib.load_corpus("ptb")
print({k: f"{v:,}" for k, v in corpus.stats().items()})
print(corpus.vocab.decode(corpus.train[:42]))

# %% [markdown]
# ## Build it from scratch
# Tokenising is three lines: split, append `<eos>`, give each new word the next id. Building the
# vocabulary over the three splits in order gives exactly the library's ids.

# %%
folder = data.dataset_dir("ptb")
stoi, streams = {}, {}
for split in ("train", "valid", "test"):
    words = [w for line in open(folder / f"ptb.{split}.txt") for w in line.split() + ["<eos>"]]
    streams[split] = torch.tensor([stoi.setdefault(w, len(stoi)) for w in words])

assert list(stoi) == corpus.vocab.itos
assert all(torch.equal(streams[s], getattr(corpus, s)) for s in streams)
print("from-scratch vocabulary and id streams equal the library's:", len(stoi), "words")

# %% [markdown]
# `batchify` is one reshape: keep a multiple of `batch` tokens, lay them out as `batch` rows and
# transpose, so that the result is `(steps, batch)` (time-major, as cuDNN likes it) and **column j is one
# contiguous stretch of text**.

# %%
def batchify_from_scratch(ids, batch):
    steps = len(ids) // batch
    return ids[: steps * batch].view(batch, steps).t()

grid = batchify_from_scratch(corpus.train, 20)
assert torch.equal(grid, awdlib.batchify(corpus.train, 20))
print("train as 20 columns:", tuple(grid.shape), "| tokens dropped at the end:", len(corpus.train) - grid.numel())

# %% [markdown]
# ### See it: the batch grid
# The first 12 steps of 4 columns of a tiny batchified stream. Read *down* a column: it is a contiguous
# stretch of text. Across a row, the columns are far-apart parts of the corpus that the model processes
# in parallel. (PTB's very first line is an alphabetical list of rare words, an artefact of the file, so
# the stream here starts after it, at the first real sentence.)

# %%
start = int((corpus.train == corpus.vocab.stoi["<eos>"]).nonzero()[0]) + 1  # after the first line
small = awdlib.batchify(corpus.train[start : start + 4 * 2000], 4)[:12]
fig, ax = plt.subplots(figsize=(8, 4.2))
ax.imshow(small.numpy() % 7, cmap="Pastel1", aspect="auto")
for t in range(small.size(0)):
    for j in range(small.size(1)):
        ax.text(j, t, corpus.vocab.itos[small[t, j]], ha="center", va="center", fontsize=9)
ax.set_xticks(range(4), [f"column {j}\n(tokens {start + j * 2000}…)" for j in range(4)])
ax.set_yticks(range(12))
ax.set_ylabel("time step")
ax.set_title("batchify: each column is contiguous text, read top to bottom")
plt.show()

# %% [markdown]
# ## Windows of variable length
# The sampler in a few lines, drawn from a seeded `torch.Generator` in the same order as the library's, so
# the two agree exactly (with the paper's $p = 0.95$):

# %%
def seq_len_from_scratch(bptt, g, p=0.95):
    base = bptt if torch.rand(1, generator=g).item() < p else bptt / 2
    return max(5, int(torch.normal(float(base), 5.0, (1,), generator=g).item()))

g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
ours = [seq_len_from_scratch(70, g1) for _ in range(1000)]
theirs = [data.sample_seq_len(70, g2) for _ in range(1000)]
assert ours == theirs
print("first ten window lengths:", ours[:10])

# %% [markdown]
# One epoch of windows over the batchified training data covers every token exactly once: the targets
# are the inputs shifted by one step, and consecutive windows meet without overlap or gap.

# %%
train_grid = awdlib.batchify(corpus.train, 20)
g = torch.Generator().manual_seed(141)
windows = list(awdlib.bptt_batches(train_grid, 70, variable=True, generator=g))
targets = torch.cat([y for _, y, _ in windows])
assert torch.equal(targets, train_grid[1:])
lengths = torch.tensor([n for _, _, n in windows], dtype=torch.float)
standard_error = lengths.std() / len(lengths) ** 0.5
print(f"{len(windows)} windows per epoch (batch 20, bptt 70); every target token predicted once")
print(f"mean length {lengths.mean():.2f} ± {standard_error:.2f} (one standard error over "
      f"{len(windows)} windows)   min {lengths.min():.0f}  max {lengths.max():.0f}")
print(f"expected: 0.95·70 + 0.05·35 = 68.25, less 0.5 because int() truncates: 67.75, "
      f"{(lengths.mean() - 67.75) / standard_error:+.1f} standard errors away")

# %% [markdown]
# One epoch is only a few hundred draws, so its mean length wanders around the expectation by a few
# tenths of a token: the printout says by how many standard errors.

# %% [markdown]
# ### See it: the distribution of window lengths
# Two bumps: most windows are about 70 long, one in twenty about 35. The learning rate of each window is
# scaled by `seq_len / 70` (the second axis). The draws come from `seq_len_from_scratch` above (equal to
# the library's sampler at the paper's `p`), so that exercise 2 can change `p` here.

# %%
p = 0.95  # probability of a full-length window (paper: 0.95)
g = torch.Generator().manual_seed(0)
sample = torch.tensor([seq_len_from_scratch(70, g, p) for _ in range(20_000)])
fig, ax = plt.subplots(figsize=(7, 3.2))
ax.hist(sample.numpy(), bins=range(5, 95), color="C0")
ax.set_xlabel("window length (tokens)")
ax.set_ylabel("count in 20,000 draws")
top = ax.secondary_xaxis("top", functions=(lambda n: 30 * n / 70, lambda lr: 70 * lr / 30))
top.set_xlabel("learning rate for that window (base lr 30)")
plt.show()
print(f"share of short windows (< 52): {(sample < 52).float().mean():.3f}; mean length "
      f"{sample.float().mean():.2f}; mean learning-rate factor {(sample / 70).float().mean():.3f}")

# %% [markdown]
# ## Measure: corpus statistics
# What is a model up against? PTB is small (under a million training tokens), with a closed vocabulary of
# 10,000 words in which `<unk>` stands for every rare word.

# %%
counts = Counter(corpus.train.tolist())
itos = corpus.vocab.itos
eos = corpus.vocab.stoi["<eos>"]
sentence_lengths = torch.diff(torch.nonzero(corpus.train == eos).flatten())
print(f"sentences in train:           {int((corpus.train == eos).sum()):,}")
print(f"mean sentence length:         {sentence_lengths.float().mean():.1f} tokens (incl. <eos>)")
print(f"<unk> share of train tokens:  {counts[corpus.vocab.stoi['<unk>']] / len(corpus.train):.3f}")
print("most frequent:", ", ".join(f"{itos[i]} ({c / len(corpus.train):.3f})" for i, c in counts.most_common(8)))
unigram = torch.tensor([counts.get(i, 0) for i in range(len(itos))], dtype=torch.float) + 1
unigram /= unigram.sum()
valid_nll = -unigram.log()[corpus.valid].mean()
print(f"unigram model (add-one) valid perplexity: {valid_nll.exp():.1f}   uniform guess: {len(itos):,}")

# %% [markdown]
# The unigram perplexity above is the bar every model in this series must clear by using context; the
# paper's AWD-LSTM reaches 57.3 on the test set.
#
# At the scale this notebook runs, training uses the preset below (demo: the first 10% of the training
# text and the first half of the validation and test text, so that a CPU finishes an experiment in
# minutes):

# %%
sub = preset.corpus()
print(preset.name, "—", preset.description)
print({k: f"{v:,}" for k, v in sub.stats().items()})
print(f"training windows per epoch: ~{(len(sub.train) // preset.train.batch_size) / preset.train.bptt:.0f}")

# %% [markdown]
# ## Takeaways
# - Tokens are whitespace-split words plus `<eos>` per line; the vocabulary is fixed (10,000 words on PTB).
# - `batchify` lays the stream out as `(steps, batch)` contiguous columns so the hidden state can be carried
#   across windows; the few tokens that do not fill a row are dropped.
# - Window lengths are random (mostly ~70, sometimes ~35, never under 5), so every word is sometimes near
#   the start of a window and sometimes far from it; the learning rate follows the window length.
#
# ## Exercises
# 1. *Predict, then run:* the training grid has 46,479 steps (the shape printed above), and the last
#    step is only ever a target. With fixed windows of 10 (`variable=False`) at batch 20, how many
#    windows does one epoch have, and how long is the last one? Check in a new cell:
#    ```python
#    fixed = [n for _, _, n in awdlib.bptt_batches(train_grid, 10, variable=False)]
#    print(len(fixed), "windows, the last", fixed[-1], "long")
#    ```
#    Then count the fixed windows of 70 the same way and compare with the variable-length windows of
#    the same epoch printed above (seed 141): why does the variable epoch need more windows?
# 2. Set `p = 0.5` in the histogram cell and run it again. *Predict first:* what will the mean window
#    length and the mean learning-rate factor become? (Expectation: $p \cdot 70 + (1-p) \cdot 35$, less
#    about 0.5 for the truncation.)
