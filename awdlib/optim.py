"""NT-ASGD (paper Section 3, Algorithm 1): SGD that switches to iterate averaging on a trigger.

The switch is :class:`NonMonotonicTrigger`; the averaging is an equal-weight running mean of the
iterates, kept in a ``torch.optim.swa_utils.AveragedModel`` (for its copy of the model and its
checkpoint format) but updated by :func:`fold_into_mean`, which needs no value from the GPU;
:class:`NTASGD` ties them to a plain SGD optimiser and :func:`averaged_weights` lends the averaged
weights to the model for evaluation.
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


@torch.no_grad()
def fold_into_mean(mean: list[torch.Tensor], new: list[torch.Tensor], count: int) -> None:
    """``mean <- mean + (new - mean) / (count + 1)``, in place: the mean of ``count`` iterates becomes
    the mean of ``count + 1``.

    The same arithmetic as ``AveragedModel.update_parameters`` on a CPU, but with ``count`` a Python
    int: that method reads its counter, a tensor on the model's device, two or three times a step,
    and each read waits for the GPU. Here three ``torch._foreach_*`` calls update every tensor.
    """
    diffs = torch._foreach_sub(new, mean)
    torch._foreach_div_(diffs, count + 1)
    torch._foreach_add_(mean, diffs)


class NTASGD:
    """SGD whose iterates are averaged from the step the trigger fires (or from the start).

    ``step()`` is a plain SGD step; once averaging has started it also folds the new iterate into
    ``1/(k-T+1) * sum_{i=T..k} w_i`` (Algorithm 1's return value), where ``w_T`` is the iterate at the
    moment of the switch. The SGD iterate itself is never changed by the averaging. ``mode``: ``"sgd"``
    never averages, ``"asgd"`` averages from the first step, ``"ntasgd"`` averages once :meth:`check`
    sees the trigger fire.

    The official code differs in two small ways, both kept out on purpose. It switches to
    ``torch.optim.ASGD(t0=0, lambd=0)``, whose average starts *after* the switch and, through that
    class's ``mu`` schedule, keeps only the second post-switch iterate onwards, ``w_{T+2} .. w_k``: one
    or two iterates out of thousands fewer than Algorithm 1's sum. And that class applies a learning
    rate set before a step from the next step on, so the official per-window rescaling
    (Section 4.1) lags one window behind once averaging starts; here every step uses its own window's
    rate.
    """

    def __init__(self, model: nn.Module, lr: float, weight_decay: float = 0.0, n: int = 5,
                 mode: str = "ntasgd"):
        if mode not in MODES:
            raise ValueError(f"mode must be 'sgd', 'asgd' or 'ntasgd', not {mode!r}")
        self.model, self.mode = model, mode
        self.sgd = torch.optim.SGD(model.parameters(), lr=lr, weight_decay=weight_decay)
        self.trigger = NonMonotonicTrigger(n)
        self.average: AveragedModel | None = None
        self.averaged_count = 0  # iterates in the mean; mirrors average.n_averaged on the host
        self.switch_step: int | None = None  # T, counted in SGD steps
        self.steps = 0
        if mode == "asgd":
            self.start_averaging()

    @property
    def averaging(self) -> bool:
        return self.average is not None

    def start_averaging(self) -> None:
        """Begin the running mean with the current iterate ``w_T``."""
        self.average = AveragedModel(self.model)  # a copy of the model: the mean of one iterate
        self.average.n_averaged.fill_(1)
        self.averaged_count = 1
        self.switch_step = self.steps

    def step(self) -> None:
        self.sgd.step()
        self.steps += 1
        if self.average is not None:
            fold_into_mean(list(self.average.module.parameters()), list(self.model.parameters()),
                           self.averaged_count)
            self.averaged_count += 1
            self.average.n_averaged.add_(1)  # on the device, so that checkpoints keep their format

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
        self.average, self.averaged_count = None, 0
        if state["average"] is not None:
            self.average = AveragedModel(self.model)
            self.average.load_state_dict(state["average"])
            self.averaged_count = int(self.average.n_averaged)


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
