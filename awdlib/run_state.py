"""What a run keeps so that it can stop and go on exactly (``awdlib.train``'s chunked runs).

:class:`EpochPlace` is how far a paused epoch has got; :func:`rng_state` / :func:`set_rng_state` save
and restore the random streams that draw the dropout masks and the window lengths;
:func:`clone_state_dict` and :func:`clone_tensors` copy weights and checkpoint contents without
untying the tied embedding/decoder. :func:`use_tf32` sets the float32 arithmetic a run uses on a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .model import Hidden


@dataclass
class EpochPlace:
    """How far an epoch has got: enough to carry on from the next window exactly.

    ``position`` is the row of the batched training data where the next window starts; ``loss_sum``
    (a float64 device tensor) the summed cross-entropy of the ``tokens`` trained on so far; ``rng``
    the random states at the pause (``rng_state``), None while the epoch is running.
    """

    position: int
    hidden: Hidden
    loss_sum: torch.Tensor
    tokens: int = 0
    steps: int = 0
    seconds: float = 0.0
    rng: dict | None = None

    def to_dict(self) -> dict:
        return {"position": self.position, "hidden": [[h.detach(), c.detach()] for h, c in self.hidden],
                "loss_sum": float(self.loss_sum), "tokens": self.tokens, "steps": self.steps,
                "seconds": self.seconds, "rng": self.rng}

    @classmethod
    def from_dict(cls, d: dict, device: torch.device) -> EpochPlace:
        hidden = [(h.to(device), c.to(device)) for h, c in d["hidden"]]
        loss_sum = torch.tensor(d["loss_sum"], dtype=torch.float64, device=device)
        return cls(d["position"], hidden, loss_sum, d["tokens"], d["steps"], d["seconds"], d["rng"])


def rng_state(device: torch.device, batches: torch.Generator) -> dict:
    """The random states a resumed run needs: torch's CPU generator, the device's (CUDA) generator,
    which draws the dropout masks of a model on the GPU, and the window-length generator."""
    state = {"torch": torch.get_rng_state(), "batches": batches.get_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device, batches: torch.Generator) -> None:
    """Undo :func:`rng_state`; the states may come back from a checkpoint mapped onto the GPU."""
    torch.set_rng_state(state["torch"].cpu())
    batches.set_state(state["batches"].cpu())
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)


def use_tf32(enabled: bool) -> None:
    """Allow (or forbid) TF32 in cuDNN, which runs the LSTMs, and in cuBLAS float32 matrix products.

    Process-wide settings of PyTorch; they affect only NVIDIA GPUs from Ampere on.
    """
    torch.backends.cudnn.allow_tf32 = enabled
    torch.backends.cuda.matmul.allow_tf32 = enabled


def clone_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A copy of ``model.state_dict()`` that keeps tied weights tied: a parameter registered twice
    (the embedding that is also the decoder) is cloned once, and both entries hold that one tensor."""
    state = model.state_dict(keep_vars=True)  # the parameters themselves: tied ones are one object
    clones: dict[int, torch.Tensor] = {}
    for tensor in state.values():
        if id(tensor) not in clones:
            clones[id(tensor)] = tensor.detach().clone()
    return {name: clones[id(tensor)] for name, tensor in state.items()}


def clone_tensors(value):
    """A copy of nested dicts, lists and tuples in which every tensor is cloned (tensors shared
    inside ``value`` stay shared in the copy)."""
    memo: dict[int, torch.Tensor] = {}

    def copy(v):
        if isinstance(v, torch.Tensor):
            return memo.setdefault(id(v), v.detach().clone())
        if isinstance(v, dict):
            return {k: copy(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return type(v)(copy(x) for x in v)
        return v
    return copy(value)
