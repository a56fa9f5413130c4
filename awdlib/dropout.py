"""The paper's three dropout techniques (Merity et al., 2017, Sections 2 and 4.2), each usable alone.

Shapes are time-major: activations are ``(time, batch, features)``.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from .checks import check_rate


class LockedDropout(nn.Module):
    """Variational dropout (Gal & Ghahramani, 2016; paper Section 4.2).

    One Bernoulli mask ``m`` of shape ``(1, batch, features)`` is sampled per forward call and used at
    every time step: ``y_t = x_t * m / (1 - p)``. Each example gets its own mask. Identity in eval mode.
    The mask axis is the batch axis of a time-major tensor, as in the official code after its fix for
    batch-first inputs.
    """

    def __init__(self, p: float):
        super().__init__()
        check_rate("locked dropout rate", p)
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
    check_rate("embedding dropout rate", p)
    weight = embedding.weight
    if p:
        mask = weight.new_empty(weight.size(0), 1).bernoulli_(1 - p) / (1 - p)
        weight = weight * mask
    return F.embedding(words, weight, embedding.padding_idx, embedding.max_norm,
                       embedding.norm_type, embedding.scale_grad_by_freq, embedding.sparse)


def dropconnect_mask(weight: torch.Tensor, p: float) -> torch.Tensor:
    """An inverted-dropout mask shaped like ``weight``: each entry is 0 with probability ``p``, else
    ``1 / (1 - p)``, independently (the ``M / (1 - p)`` of the paper's Section 2).

    The entries are drawn from uniform 16-bit integers ``u``: an entry is kept when
    ``u >= round(p * 2**16)``. PyTorch's CPU ``bernoulli_`` (what ``F.dropout`` uses) draws a
    float64 uniform, two 32-bit random numbers, for every entry; cutting one random 64-bit number
    into four 16-bit ones makes the mask for one paper-size ``W_hh`` (5.3 M entries, a fresh one
    every training step) about 7x cheaper on a CPU (notebook 02, ``benchmarks/README.md``). ``p`` is
    used rounded to a multiple of ``2**-16`` (0.5 exactly, any other rate within ``2**-17``), and
    the scale uses the same rounded rate, so ``E[mask] = 1`` exactly.
    """
    levels = 1 << 16
    cut = round(p * levels)  # drop when u < cut
    if not 0 <= cut < levels:
        raise ValueError(f"dropout rate must be in [0, 1), got {p}")
    n = weight.numel()
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=weight.device)
    words.random_(-(1 << 63), None)  # the full 64-bit range, so every bit is a fair coin
    u = words.view(torch.int16)[:n].view(weight.shape)  # uniform on [-2**15, 2**15)
    keep = u >= cut - levels // 2
    return keep.to(weight.dtype).mul_(levels / (levels - cut))


_REPACK_WARNING = "not part of single contiguous chunk"  # cuDNN's, about weights not in one buffer


class WeightDrop(nn.Module):
    """DropConnect on an RNN's hidden-to-hidden weights (Wan et al., 2013; paper Section 2).

    Each forward call samples one mask ``M`` for ``W_hh`` (``dropconnect_mask``) and runs the wrapped
    LSTM with ``W_hh * M / (1 - p)``: the same connections are dropped at every time step and for
    every example of the batch, so the recurrence itself is regularised while PyTorch's fused LSTM
    kernel still runs (cuDNN on a GPU). The raw weight stays an ordinary parameter of the wrapped
    module under its usual name, so ``state_dict``, ``deepcopy``, ``.to(device)`` and
    ``train()``/``eval()`` behave as for a plain LSTM; the dropped weight exists only during the call
    (``torch.func.functional_call``). Identity in eval mode and when ``p = 0``.

    On a GPU, cuDNN wants a layer's weights in one buffer; with the dropped ``W_hh`` swapped in they
    are not, so cuDNN copies them into one for the call (a few tens of MB per layer at the paper's
    size: microseconds next to the recurrence) and says so in a warning. The warning is the sign
    that the fused kernel ran, so it is counted, not shown: :attr:`cudnn_repacks` (and
    :func:`cudnn_repacks` for a whole model) lets a GPU benchmark check that every training call
    took the fused path rather than PyTorch's unfused fallback, which warns nothing.
    """

    def __init__(self, module: nn.RNNBase, p: float, weights: tuple[str, ...] | None = None):
        super().__init__()
        check_rate("weight-drop rate", p)
        self.module = module
        self.p = p
        self.weights = weights or tuple(n for n, _ in module.named_parameters()
                                        if n.startswith("weight_hh"))
        self.cudnn_repacks = 0  # training calls in which cuDNN re-packed the weights (GPU only)

    def dropped_weights(self) -> dict[str, torch.Tensor]:
        """Fresh DropConnect samples of the wrapped weights (one ``dropconnect_mask`` each)."""
        raw = {n: getattr(self.module, n) for n in self.weights}
        return {n: w * dropconnect_mask(w, self.p) for n, w in raw.items()}

    def forward(self, *args, **kwargs):
        if not self.training or self.p == 0:
            return self.module(*args, **kwargs)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = functional_call(self.module, self.dropped_weights(), args, kwargs)
        for w in caught:
            if _REPACK_WARNING in str(w.message):
                self.cudnn_repacks += 1
            else:  # anything else is shown as usual
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
        return result

    def extra_repr(self) -> str:
        return f"p={self.p}, weights={list(self.weights)}"


def cudnn_repacks(model: nn.Module) -> int:
    """Training calls of ``model``'s :class:`WeightDrop` layers that ran cuDNN's fused LSTM (which
    re-packs the swapped-in weights and warns); 0 on a CPU. Counts accumulate; subtract a reading."""
    return sum(m.cudnn_repacks for m in model.modules() if isinstance(m, WeightDrop))
