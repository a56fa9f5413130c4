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
scale = os.environ.get("AWDLIB_SCALE", "demo")  # "smoke": seconds (CI) | "demo": CPU minutes (stored outputs)
threads = int(os.environ.get("AWDLIB_THREADS", "2"))
progress = False  # True: a live progress bar per epoch while training

# %% tags=["nbval-ignore-output"]
# %matplotlib inline
import math

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

import awdlib
from awdlib.plots import plot_curves

torch.set_num_threads(threads)
preset = awdlib.PRESETS[scale]
corpus = preset.corpus()
ladder = awdlib.Ladder.for_scale(scale)
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
# ## Measure: train it
# Plain SGD with the paper's optimisation settings (learning rate 30 scaled by window length, gradient
# norm clipped at 0.25, weight decay $1.2\times10^{-6}$, variable BPTT around 70), no dropout of any kind.
# At demo scale: the first 10% of PTB's training text, a 100/200 model, 20 epochs on 2 CPU cores (a few
# minutes); validation on the whole validation split after every epoch.

# %% tags=["nbval-ignore-output"]
trainer = baseline.trainer(corpus, checkpoint_dir=f"results/checkpoints/{scale}/plain")
history = trainer.fit()

# %% [markdown]
# ### See it: the curves
# Dashed: training perplexity (averaged over the epoch, with the weights changing as it goes). Solid:
# validation. Once the two part ways, the model is memorising its training text instead of learning
# something that transfers.

# %% tags=["nbval-ignore-output"]
plot_curves({"plain LSTM": history}, title=f"plain LSTM, {scale} scale");
plt.show()

# %% tags=["nbval-ignore-output"]
best = history.best()
last = history.records[-1]
print(f"best validation perplexity {best['valid_ppl']:.1f} at epoch {best['epoch']} of {last['epoch']}")
print(f"last epoch: train {last['train_ppl']:.1f}, valid {last['valid_ppl']:.1f} "
      f"(valid / train = {last['valid_ppl'] / last['train_ppl']:.2f})")
print(f"training time {sum(history.column('seconds')):.0f} s, "
      f"{sum(history.column('tokens_per_s')) / len(history.records):,.0f} tokens/s on {threads} thread(s)")

# %% [markdown]
# ## The first rung of the ladder
# The best validation weights (kept in `best.pt`) are scored on the test split with batch size 1, as in the
# paper, and recorded as the first rung of the results ladder. Each later notebook adds one technique on
# top of this one and appends its rung.

# %% tags=["nbval-ignore-output"]
ladder.record_trainer("plain LSTM", trainer, rung=1, notebook="01")
print(ladder.table(upto=1))

# %% [markdown]
# ## Takeaways
# - A tied-weight LSTM stack and perplexity each take a few lines; `awdlib.AWDLSTM` with every dropout at
#   zero is exactly this model.
# - Without regularisation the model overfits even this small slice of PTB within a few epochs: look at
#   where the validation curve above turns up while training perplexity keeps falling (at demo scale the
#   noise between epochs is large; see the printout for the best epoch).
# - The paper's answer is not a smaller model but regularisation that targets the LSTM's recurrence and
#   inputs (notebooks 02–04), and an optimiser that averages late iterates (05).
#
# ## Exercises
# 1. *Predict, then run:* halve `hidden_size` with `baseline.with_model(hidden_size=100)`. Will the best
#    validation perplexity get better or worse, and will the overfitting start earlier or later?
# 2. Train with `with_train(lr=10)`. The paper uses 30 with clipping at 0.25; what does the lower rate do to
#    the first epochs and to the best epoch?
