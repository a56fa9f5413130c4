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
# # 01 · A plain LSTM language model
#
# *Merity, Keskar & Socher (2017), Sections 1 and 5: the baseline every technique improves on.*
#
# A language model gives every next word a probability, $p(w_t \mid w_{<t})$. Ours embeds each word,
# runs the sequence through a stack of LSTMs, and maps the last layer's output $h_t$ to a distribution
# over the vocabulary with a softmax. The **decoder is tied to the embedding** (Inan et al., 2016; Press &
# Wolf, 2016): the same matrix $E$ turns words into vectors and vectors into scores, so the last LSTM's
# output has the embedding's size:
#
# $$p(w_{t+1} \mid w_{\le t}) = \operatorname{softmax}(E\, h_t + b).$$
#
# We measure it by **perplexity**, the exponential of the mean negative log-likelihood per token:
#
# $$\text{PPL} = \exp\Big(-\frac{1}{N} \sum_{t=1}^{N} \log p(w_t \mid w_{<t})\Big).$$
#
# A model that guesses uniformly over 10,000 words has perplexity 10,000; the paper's AWD-LSTM reaches
# 57.3 on PTB's test set. This notebook builds the plain model with **no regularisation at all** and
# watches it overfit: the problem the rest of the series solves.

# %% tags=["parameters"]
import os
scale = os.environ.get("AWDLIB_SCALE", "demo")  # "smoke": seconds (CI) | "demo": the shipped weights (stored outputs)
threads = int(os.environ.get("AWDLIB_THREADS", "1"))  # 1, as the studies: the same floats as the stored outputs
retrain = False  # True: train this notebook's runs again instead of loading the shipped weights (prints the time first)
progress = True  # a progress bar while a run trains (nothing trains unless retrain is on, or at smoke scale)

# %%
# %matplotlib inline
import copy
import math
from dataclasses import replace

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

import awdlib
from awdlib.experiments import read_runs
from awdlib.generate import generate
from awdlib.notebook_runs import ladder_run
from awdlib.plots import plot_curves, plot_study

torch.set_num_threads(threads)
preset = awdlib.PRESETS[scale]
corpus = preset.corpus()
baseline = preset.plain().with_train(progress=progress)
print(preset.description)
print("model:", {k: baseline.model[k] for k in ("emb_size", "hidden_size", "n_layers", "wdrop", "dropout")})

# %% [markdown]
# ## Build it from scratch
# Embedding, a stack of single-layer LSTMs (the last one sized to the embedding), a tied decoder. The
# hidden state is a list of `(h, c)` pairs, one per layer, carried from window to window.

# %%
class PlainLSTMLM(nn.Module):
    def __init__(self, vocab, emb, hid, layers):
        super().__init__()
        self.embed = nn.Embedding(vocab, emb)
        sizes = [emb] + [hid] * (layers - 1) + [emb]
        self.lstms = nn.ModuleList(nn.LSTM(a, b) for a, b in zip(sizes, sizes[1:]))
        self.decoder = nn.Linear(emb, vocab)
        self.decoder.weight = self.embed.weight  # tied

    def forward(self, tokens, hidden):
        x, new_hidden = self.embed(tokens), []
        for lstm, state in zip(self.lstms, hidden):
            x, state = lstm(x, state)
            new_hidden.append(state)
        return self.decoder(x), new_hidden

# %% [markdown]
# The library's `AWDLSTM` with every dropout at zero is the same network. Copy its weights into ours and
# compare the logits on a batch of real text:

# %%
torch.manual_seed(0)
library_model = awdlib.AWDLSTM(baseline.model_config(len(corpus.vocab))).eval()
c = library_model.config
ours = PlainLSTMLM(c.vocab_size, c.emb_size, c.hidden_size, c.n_layers).eval()
ours.embed.weight.data.copy_(library_model.encoder.weight)
ours.decoder.bias.data.copy_(library_model.decoder.bias)
for lstm, wrapped in zip(ours.lstms, library_model.rnns):
    lstm.load_state_dict(wrapped.module.state_dict())

tokens = awdlib.batchify(corpus.valid, 4)[:35]
with torch.no_grad():
    logits, _ = ours(tokens, library_model.init_hidden(4))
    out = library_model(tokens, library_model.init_hidden(4))
print("logits", tuple(logits.shape), "| max |ours - library| < 1e-6:",
      bool((logits - out.logits).abs().max() < 1e-6))

# %% [markdown]
# Perplexity from scratch: sum the negative log-likelihood of every target over fixed windows, carrying the
# hidden state, and divide by the number of targets. `awdlib.evaluate` does the same (and its result does
# not depend on the window length):

# %%
def perplexity_from_scratch(model, ids, batch=10, bptt=70):
    grid = awdlib.batchify(ids, batch)
    hidden, nll, n = library_model.init_hidden(batch), 0.0, 0
    with torch.no_grad():
        for i in range(0, grid.size(0) - 1, bptt):
            x, y = grid[i : i + bptt], grid[i + 1 : i + 1 + bptt]
            x = x[: len(y)]
            logits, hidden = model(x, hidden)
            nll += F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum").item()
            n += y.numel()
    return math.exp(nll / n)

untrained = perplexity_from_scratch(ours, corpus.valid)
library_ppl = awdlib.perplexity(awdlib.evaluate(library_model, corpus.valid, bptt=70, batch_size=10))
print(f"untrained: ours and the library's agree to 1e-3: {abs(untrained - library_ppl) / library_ppl < 1e-3}")
print(f"untrained perplexity is within 5% of the vocabulary size (a uniform guess): "
      f"{abs(untrained / len(corpus.vocab) - 1) < 0.05}")

# %% [markdown]
# ## The training step, from scratch
# One step of the paper's recipe for one window of `seq_len` tokens (Sections 4.1 and 5):
# 1. **detach** the hidden state carried over from the previous window, so gradients stop at the window's
#    start (truncated BPTT);
# 2. **rescale the learning rate** to $\text{lr} \cdot \text{seq\_len} / \text{bptt}$, so short windows take
#    proportionally smaller steps;
# 3. the **loss**: mean cross-entropy of the window's targets (AR and TAR join it in notebook 04);
# 4. **clip** the gradient's global norm to 0.25;
# 5. an **SGD step** with weight decay: $w \leftarrow w - \text{lr}\,(g + \lambda w)$.

# %%
def train_epoch_from_scratch(model, grid, c, generator):
    """One epoch of plain SGD over a batchified grid, as in the paper; c is a TrainConfig."""
    hidden = model.init_hidden(grid.size(1))
    for inputs, targets, seq_len in awdlib.bptt_batches(grid, c.bptt, True, generator):
        hidden = [(h.detach(), cell.detach()) for h, cell in hidden]  # 1. truncated BPTT
        lr = c.lr * seq_len / c.bptt  # 2. longer windows, larger steps
        out = model(inputs, hidden)
        hidden = out.hidden
        loss = F.cross_entropy(out.logits.flatten(0, 1), targets.flatten())  # 3.
        model.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), c.clip)  # 4.
        with torch.no_grad():
            for w in model.parameters():  # 5. SGD with weight decay
                w -= lr * (w.grad + c.weight_decay * w)

# %% [markdown]
# `awdlib.Trainer` runs the same step inside its epoch loop (with progress, checkpoints and the
# regularisers of later notebooks around it). Train two copies of one model for one epoch on just
# enough training text for three windows, from the same window lengths, and compare the weights. (Over
# many steps at lr 30 the two would drift apart by float rounding alone: `w -= lr * (...)` and
# `torch.optim.SGD` round differently in the last bit, and training amplifies such differences.)

# %%
c = replace(baseline.train, epochs=1, progress=False, log_epochs=False)
n_tokens = 3 * c.batch_size * c.bptt + 1
few = awdlib.Corpus(corpus.vocab, corpus.train[:n_tokens], corpus.valid[:2000], corpus.test[:2000])
torch.manual_seed(0)
ours_model = awdlib.AWDLSTM(baseline.model_config(len(corpus.vocab)))
trainer_model = copy.deepcopy(ours_model)
train_epoch_from_scratch(ours_model, awdlib.batchify(few.train, c.batch_size), c,
                         torch.Generator().manual_seed(c.seed))
awdlib.Trainer(trainer_model, few, c).fit()
gap = max((a - b).abs().max().item() for a, b in zip(ours_model.parameters(),
                                                     trainer_model.parameters()))
print(f"max |ours - Trainer| over all weights after one epoch < 1e-5: {gap < 1e-5}")

# %% [markdown]
# ## Measure: train it
# Plain SGD with the paper's optimisation settings (learning rate 30 scaled by window length, gradient
# norm clipped at 0.25, weight decay $1.2\times10^{-6}$, variable BPTT around 70), no dropout of any kind.
# At demo scale: the first 10% of PTB's training text, a 100/200 model, at most 40 epochs, stopped after
# 8 epochs without a better validation perplexity (the rule every rung of the ladder follows); validation
# on the first half of the validation split after every epoch.
#
# This is seed 141 of the ladder study (`python -m awdlib experiment ladder`, see `README.md` here). The
# next cell loads the study's shipped weights and curves of that run in seconds; the line it prints says
# how long the study took to train it on one thread. Set `retrain = True` in the parameters cell to
# train the run again: the cell then prints that time first, and one line per epoch as it goes.

# %%
trainer = ladder_run(scale, "plain LSTM", seed=141, retrain=retrain, progress=progress, threads=threads)
history = trainer.history

# %% [markdown]
# ### See it: the curves
# Dashed: training perplexity (averaged over the epoch, with the weights changing as it goes). Solid:
# validation. Once the two part ways, the model is memorising its training text instead of learning
# something that transfers.

# %%
plot_curves({"plain LSTM": history}, title=f"plain LSTM, {scale} scale");
plt.show()

# %%
best = history.best()
last = history.records[-1]
print(f"best validation perplexity {best['valid_ppl']:.1f} at epoch {best['epoch']} of {last['epoch']} "
      f"({history.stop_reason or 'epoch cap reached'})")
print(f"last epoch: train {last['train_ppl']:.1f}, valid {last['valid_ppl']:.1f} "
      f"(valid / train = {last['valid_ppl'] / last['train_ppl']:.2f})")

# %% [markdown]
# ## What this perplexity reads like
# Text sampled from the best weights (the best validation perplexity printed above), one word at a time
# from the model's own distribution (`awdlib.generate`, temperature 1). Local word order is often
# plausible; meaning across more than a few words is not. Notebook 05 samples from the full AWD-LSTM at
# the same scale.

# %%
print(generate(trainer.model, corpus.vocab, n_words=60, seed=1))

# %% [markdown]
# ## The first rung of the ladder
# The study scored each run's best validation weights on the test split with batch size 1, as in the
# paper. The ladder study ran this configuration with three seeds; the table gives mean ± standard
# deviation over them, and the plot each seed. Each later notebook adds one technique on top of this one.

# %%
ladder = awdlib.Ladder.for_scale(scale)  # the study's summary (this run included)
print(ladder.table(upto=1))
plot_study(ladder, read_runs(f"results/ladder-{scale}.runs.jsonl"), ["plain LSTM"])
plt.show()

# %% [markdown]
# ## Takeaways
# - A tied-weight LSTM stack and perplexity each take a few lines; `awdlib.AWDLSTM` with every dropout at
#   zero is exactly this model, and the training step is a dozen lines that `awdlib.Trainer` runs as is.
# - Without regularisation the model overfits even this small slice of PTB: look at where the validation
#   curve above turns up while training perplexity keeps falling (the printout gives the best epoch).
#   Epoch-to-epoch noise at lr 30 is large, so the best epoch moves by a few epochs from seed to seed.
# - The paper's answer is not a smaller model but regularisation that targets the LSTM's recurrence and
#   inputs (notebooks 02–04), and an optimiser that averages late iterates (05).
#
# ## Exercises
# Exercises 1 and 2 train a new run at the notebook's scale: at demo scale, about as long as the study's
# run above took (the loaded line says how long).
#
# 1. *Predict, then run:* halve `hidden_size`. Will the best validation perplexity get better or worse,
#    and will the overfitting start earlier or later (an earlier best epoch)? Then run in a new cell:
#    ```python
#    best = baseline.with_model(hidden_size=100).trainer(corpus).fit().best()
#    print(f"best valid ppl {best['valid_ppl']:.1f} at epoch {best['epoch']}")
#    ```
# 2. The paper uses lr 30 with clipping at 0.25. *Predict* what lr 10 does to the first epochs and to
#    the best epoch, then compare with the run above:
#    ```python
#    slow = baseline.with_train(lr=10).trainer(corpus).fit()
#    for label, h in (("lr 30", history), ("lr 10", slow)):
#        print(f"{label}: valid ppl of the first 5 epochs {[round(r['valid_ppl']) for r in h.records[:5]]}, "
#              f"best epoch {h.best()['epoch']}")
#    ```
# 3. In `train_epoch_from_scratch`, drop the `.detach()` of step 1 and run the check cell. What error do
#    you get, and why does truncated BPTT need it?
