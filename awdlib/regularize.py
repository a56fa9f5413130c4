"""Activation regularisation (AR) and temporal activation regularisation (TAR), paper Section 4.6.

Both are means of squares, as in the paper's code (the paper writes them with an L2 norm); both act on
the last LSTM layer's output and are added to the cross-entropy during training only.
"""

from __future__ import annotations

import torch


def activation_regularization(dropped_output: torch.Tensor, alpha: float = 2.0) -> torch.Tensor:
    """AR = alpha * mean(m ⊙ h_t)^2: penalises large *dropped* outputs of the last layer.

    ``dropped_output`` is ``(time, batch, features)``, i.e. ``out.dropped_outputs[-1]``.
    """
    return alpha * dropped_output.pow(2).mean()


def temporal_activation_regularization(raw_output: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """TAR = beta * mean(h_t - h_{t+1})^2: penalises fast change of the *raw* (undropped) output.

    ``raw_output`` is ``(time, batch, features)``, i.e. ``out.raw_outputs[-1]``; a one-step window gives 0.
    """
    return beta * (raw_output[1:] - raw_output[:-1]).pow(2).mean() if len(raw_output) > 1 \
        else raw_output.new_zeros(())
