"""The AWD-LSTM language model (Merity et al., 2017): a stack of weight-dropped LSTMs with tied weights.

Data flow for tokens of shape ``(time, batch)``::

    embedding (embedding dropout: dropoute) -> locked dropout (dropouti)
    -> LSTM_1 (weight drop: wdrop) -> locked dropout (dropouth) -> ... -> LSTM_L (sized to the embedding)
    -> locked dropout (dropout) -> decoder tied to the embedding -> logits (time, batch, vocab)

With every dropout at zero this is the plain LSTM language model of notebook 01.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
from torch import nn

from .checks import check_int, check_rate, require
from .dropout import LockedDropout, WeightDrop, embedding_dropout

Hidden = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass
class AWDLSTMConfig:
    """Sizes and dropout rates; defaults are the paper's PTB model (24,221,600 parameters)."""

    vocab_size: int
    emb_size: int = 400
    hidden_size: int = 1150
    n_layers: int = 3
    dropout: float = 0.4  # locked dropout on the last layer's output
    dropouth: float = 0.3  # locked dropout between LSTM layers
    dropouti: float = 0.4  # locked dropout on the embedded input
    dropoute: float = 0.1  # embedding dropout (whole word types)
    wdrop: float = 0.5  # DropConnect on every layer's W_hh
    tie_weights: bool = True

    def __post_init__(self):
        for name in ("vocab_size", "emb_size", "hidden_size", "n_layers"):
            check_int(f"model.{name}", getattr(self, name), minimum=1)
        for name in ("dropout", "dropouth", "dropouti", "dropoute", "wdrop"):
            check_rate(f"model.{name}", getattr(self, name))
        require(isinstance(self.tie_weights, bool), "model.tie_weights", self.tie_weights,
                "true or false")

    def to_dict(self) -> dict:
        return asdict(self)


class AWDLSTMOutput(NamedTuple):
    logits: torch.Tensor  # (time, batch, vocab)
    hidden: Hidden  # per layer (h, c), each (1, batch, size)
    raw_outputs: list[torch.Tensor]  # per layer, before dropout (TAR uses the last)
    dropped_outputs: list[torch.Tensor]  # per layer, after its locked dropout (AR uses the last)


class AWDLSTM(nn.Module):
    """AWD-LSTM: ``model(tokens, hidden) -> AWDLSTMOutput``; see the module docstring for the data flow.

    Initialisation as in the paper's code: embedding and decoder weights U[-0.1, 0.1], decoder bias 0,
    LSTM weights PyTorch's default U[-1/sqrt(H), 1/sqrt(H)].
    """

    def __init__(self, config: AWDLSTMConfig):
        super().__init__()
        self.config = c = config
        self.encoder = nn.Embedding(c.vocab_size, c.emb_size)
        sizes = [c.emb_size] + [c.hidden_size] * (c.n_layers - 1)
        sizes.append(c.emb_size if c.tie_weights else c.hidden_size)
        self.rnns = nn.ModuleList(
            WeightDrop(nn.LSTM(sizes[i], sizes[i + 1]), c.wdrop) for i in range(c.n_layers))
        self.input_drop = LockedDropout(c.dropouti)
        self.hidden_drop = LockedDropout(c.dropouth)
        self.output_drop = LockedDropout(c.dropout)
        self.decoder = nn.Linear(sizes[-1], c.vocab_size)
        if c.tie_weights:  # Inan et al. (2016), Press & Wolf (2016)
            self.decoder.weight = self.encoder.weight
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        if not c.tie_weights:
            nn.init.uniform_(self.decoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)

    def init_hidden(self, batch_size: int) -> Hidden:
        """Zero ``(h, c)`` for every layer, on the model's device."""
        weight = self.encoder.weight
        return [(weight.new_zeros(1, batch_size, rnn.module.hidden_size),
                 weight.new_zeros(1, batch_size, rnn.module.hidden_size)) for rnn in self.rnns]

    def forward(self, tokens: torch.Tensor, hidden: Hidden) -> AWDLSTMOutput:
        dropoute = self.config.dropoute if self.training else 0
        x = self.input_drop(embedding_dropout(self.encoder, tokens, dropoute))
        new_hidden, raw_outputs, dropped_outputs = [], [], []
        for i, (rnn, h) in enumerate(zip(self.rnns, hidden)):
            x, h = rnn(x, h)
            new_hidden.append(h)
            raw_outputs.append(x)
            last = i == len(self.rnns) - 1
            x = (self.output_drop if last else self.hidden_drop)(x)
            dropped_outputs.append(x)
        return AWDLSTMOutput(self.decoder(x), new_hidden, raw_outputs, dropped_outputs)

    def num_parameters(self) -> int:
        """Distinct parameters (the tied embedding/decoder matrix counts once)."""
        return sum(p.numel() for p in self.parameters())


def detach_hidden(hidden: Hidden) -> Hidden:
    """Cut the graph between BPTT windows while carrying the state forward."""
    return [(h.detach(), c.detach()) for h, c in hidden]
