"""The paper's three dropout techniques (Merity et al., 2017, Sections 2 and 4.2), each usable alone.

Shapes are time-major: activations are ``(time, batch, features)``.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call


class LockedDropout(nn.Module):
    """Variational dropout (Gal & Ghahramani, 2016; paper Section 4.2).

    One Bernoulli mask ``m`` of shape ``(1, batch, features)`` is sampled per forward call and used at
    every time step: ``y_t = x_t * m / (1 - p)``. Each example gets its own mask. Identity in eval mode.
    The mask axis is the batch axis of a time-major tensor, as in the official code after its fix for
    batch-first inputs.
    """

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        mask = x.new_empty(1, x.size(1), x.size(2)).bernoulli_(1 - self.p) / (1 - self.p)
        return x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}"


def embedding_dropout(embedding: nn.Embedding, words: torch.Tensor, p: float) -> torch.Tensor:
    """Embedding dropout (Gal & Ghahramani, 2016; paper Section 4.3): drop whole word *types*.

    A mask over the vocabulary zeroes rows of the embedding matrix with probability ``p`` and scales the
    kept rows by ``1 / (1 - p)``, so every occurrence of a dropped word in the batch is zero. Call it
    only while training; ``p = 0`` is a plain lookup.
    """
    weight = embedding.weight
    if p:
        mask = weight.new_empty(weight.size(0), 1).bernoulli_(1 - p) / (1 - p)
        weight = weight * mask
    return F.embedding(words, weight, embedding.padding_idx, embedding.max_norm,
                       embedding.norm_type, embedding.scale_grad_by_freq, embedding.sparse)


class WeightDrop(nn.Module):
    """DropConnect on an RNN's hidden-to-hidden weights (Wan et al., 2013; paper Section 2).

    Each forward call samples one mask ``M`` for ``W_hh`` and runs the wrapped LSTM with
    ``W_hh * M / (1 - p)``: the same connections are dropped at every time step and for every example
    of the batch, so the recurrence itself is regularised while PyTorch's fused LSTM kernel still runs
    (cuDNN on a GPU). The raw weight stays an ordinary parameter of the wrapped module under its usual
    name, so ``state_dict``, ``deepcopy``, ``.to(device)`` and ``train()``/``eval()`` behave as for a plain
    LSTM; the dropped weight exists only during the call (``torch.func.functional_call``). Identity in
    eval mode and when ``p = 0``.
    """

    def __init__(self, module: nn.RNNBase, p: float, weights: tuple[str, ...] | None = None):
        super().__init__()
        self.module = module
        self.p = p
        self.weights = weights or tuple(n for n, _ in module.named_parameters()
                                        if n.startswith("weight_hh"))

    def dropped_weights(self) -> dict[str, torch.Tensor]:
        """Fresh DropConnect samples of the wrapped weights (one mask each)."""
        return {n: F.dropout(getattr(self.module, n), self.p, training=True) for n in self.weights}

    def forward(self, *args, **kwargs):
        if not self.training or self.p == 0:
            return self.module(*args, **kwargs)
        with warnings.catch_warnings():
            # cuDNN wants its weights in one buffer; the swapped-in W_hh is re-packed for this call.
            warnings.filterwarnings("ignore", message=".*not part of single contiguous chunk.*")
            return functional_call(self.module, self.dropped_weights(), args, kwargs)

    def extra_repr(self) -> str:
        return f"p={self.p}, weights={list(self.weights)}"
