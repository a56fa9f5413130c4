"""The baseline every benchmark here compares the AWD-LSTM against.

``PlainLSTMLM`` has the AWD-LSTM's shape -- embedding, ``n_layers`` single-layer ``nn.LSTM``s whose last
layer is as wide as the embedding, decoder tied to the embedding -- and none of its regularisers: no
dropout of any kind, no weight drop, no AR/TAR. Its ``forward`` returns the same ``logits`` and
``hidden`` fields as ``awdlib.AWDLSTM``'s output, so a benchmark drives both with one training step.
"""

from __future__ import annotations

from types import SimpleNamespace

from torch import nn


class PlainLSTMLM(nn.Module):
    """Embedding -> single-layer nn.LSTMs of the AWD-LSTM's sizes -> tied decoder, nothing else."""

    def __init__(self, vocab_size: int, emb_size: int, hidden_size: int, n_layers: int = 3):
        super().__init__()
        self.encoder = nn.Embedding(vocab_size, emb_size)
        sizes = [emb_size] + [hidden_size] * (n_layers - 1) + [emb_size]
        self.rnns = nn.ModuleList(nn.LSTM(sizes[i], sizes[i + 1]) for i in range(n_layers))
        self.decoder = nn.Linear(emb_size, vocab_size)
        self.decoder.weight = self.encoder.weight

    def init_hidden(self, batch_size: int):
        """Zero (h, c) per layer, on the model's device and in its dtype."""
        w = self.encoder.weight
        return [(w.new_zeros(1, batch_size, r.hidden_size), w.new_zeros(1, batch_size, r.hidden_size))
                for r in self.rnns]

    def forward(self, tokens, hidden):
        x, new_hidden = self.encoder(tokens), []
        for rnn, h in zip(self.rnns, hidden):
            x, h = rnn(x, h)
            new_hidden.append(h)
        return SimpleNamespace(logits=self.decoder(x), hidden=new_hidden)
