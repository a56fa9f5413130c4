"""NT-ASGD (paper Section 3, Algorithm 1): SGD that switches to iterate averaging on a trigger.

The switch is :class:`NonMonotonicTrigger`; the averaging is ``torch.optim.swa_utils.AveragedModel``
(an equal-weight running mean of the iterates); :class:`NTASGD` ties them to a plain SGD optimiser and
:func:`averaged_weights` lends the averaged weights to the model for evaluation.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

MODES = ("sgd", "asgd", "ntasgd")


class NonMonotonicTrigger:
    """Algorithm 1's non-monotonic criterion, as in the ICLR paper and the official code.

    At validation check ``t`` (the number of earlier checks) with loss ``v``: fire when ``t > n`` and
    ``v > min(logs[0 .. t-n-1])``, i.e. when ``v`` is worse than the best loss seen *before* the last
    ``n`` checks; then append ``v`` to ``logs``. It fires at most once.

    The arXiv v1 text of Algorithm 1 compares with ``min(logs[t-n .. t])`` (the last ``n`` checks); the
    authors called that a typo (issue #13 of the official repository). We follow the official code.
    """

    def __init__(self, n: int = 5):
        self.n = n
        self.logs: list[float] = []
        self.fired_at: int | None = None  # the check index at which it fired

    def step(self, val_loss: float) -> bool:
        """Record one validation loss; True exactly once, at the check where the criterion holds."""
        t = len(self.logs)
        fire = self.fired_at is None and t > self.n and val_loss > min(self.logs[: t - self.n])
        self.logs.append(float(val_loss))
        if fire:
            self.fired_at = t
        return fire

    @property
    def fired(self) -> bool:
        return self.fired_at is not None

    def state_dict(self) -> dict:
        return {"n": self.n, "logs": list(self.logs), "fired_at": self.fired_at}

    def load_state_dict(self, state: dict) -> None:
        self.n, self.logs, self.fired_at = state["n"], list(state["logs"]), state["fired_at"]


class NTASGD:
    """SGD whose iterates are averaged from the step the trigger fires (or from the start).

    ``step()`` is a plain SGD step; once averaging has started it also folds the new iterate into
    ``1/(k-T+1) * sum_{i=T..k} w_i``, where ``w_T`` is the iterate at the moment of the switch. The SGD
    iterate itself is never changed by the averaging. ``mode``: ``"sgd"`` never averages, ``"asgd"``
    averages from the first step, ``"ntasgd"`` averages once :meth:`check` sees the trigger fire.
    """

    def __init__(self, model: nn.Module, lr: float, weight_decay: float = 0.0, n: int = 5,
                 mode: str = "ntasgd"):
        if mode not in MODES:
            raise ValueError(f"mode must be 'sgd', 'asgd' or 'ntasgd', not {mode!r}")
        self.model, self.mode = model, mode
        self.sgd = torch.optim.SGD(model.parameters(), lr=lr, weight_decay=weight_decay)
        self.trigger = NonMonotonicTrigger(n)
        self.average: AveragedModel | None = None
        self.switch_step: int | None = None  # T, counted in SGD steps
        self.steps = 0
        if mode == "asgd":
            self.start_averaging()

    @property
    def averaging(self) -> bool:
        return self.average is not None

    def start_averaging(self) -> None:
        """Begin the running mean with the current iterate ``w_T``."""
        self.average = AveragedModel(self.model)  # equal weights: the arithmetic mean
        self.average.update_parameters(self.model)
        self.switch_step = self.steps

    def step(self) -> None:
        self.sgd.step()
        self.steps += 1
        if self.average is not None:
            self.average.update_parameters(self.model)

    def zero_grad(self) -> None:
        self.sgd.zero_grad(set_to_none=True)

    def check(self, val_loss: float) -> bool:
        """Feed the trigger one validation loss; in ``"ntasgd"`` mode start averaging when it fires."""
        fired = self.trigger.step(val_loss)
        if fired and self.mode == "ntasgd" and not self.averaging:
            self.start_averaging()
        return fired

    def averaged_weights(self):
        """Context manager: the model holds the averaged weights inside, its own iterate after."""
        return averaged_weights(self.model, self.average)

    def state_dict(self) -> dict:
        return {"mode": self.mode, "sgd": self.sgd.state_dict(), "trigger": self.trigger.state_dict(),
                "steps": self.steps, "switch_step": self.switch_step,
                "average": None if self.average is None else self.average.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.mode = state["mode"]
        self.sgd.load_state_dict(state["sgd"])
        self.trigger.load_state_dict(state["trigger"])
        self.steps, self.switch_step = state["steps"], state["switch_step"]
        self.average = None
        if state["average"] is not None:
            self.average = AveragedModel(self.model)
            self.average.load_state_dict(state["average"])


@contextmanager
def averaged_weights(model: nn.Module, average: AveragedModel | None):
    """Swap ``average``'s parameters into ``model`` for the block, then restore the iterate.

    With ``average=None`` (no averaging yet) the model is used as it is.
    """
    if average is None:
        yield model
        return
    params = list(model.parameters())
    saved = [p.detach().clone() for p in params]
    with torch.no_grad():
        for p, a in zip(params, average.module.parameters()):
            p.copy_(a)
    try:
        yield model
    finally:
        with torch.no_grad():
            for p, s in zip(params, saved):
                p.copy_(s)
