"""Checkpoints that never unpickle code: state dicts, tensors and plain Python values only.

Files are written atomically (a temporary file renamed into place) and read with
``torch.load(..., weights_only=True)``, which refuses anything but tensors and primitive containers.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

FORMAT = "awdlib-checkpoint/1"


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """Write ``state`` (tensors, numbers, strings, lists, dicts) to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": FORMAT, **state}, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Read a checkpoint with ``weights_only=True``; pickled code raises instead of running."""
    state = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not an awdlib checkpoint (format {FORMAT!r})")
    return state


def build_model(state: dict):
    """The AWD-LSTM described by a checkpoint's contents (its ``model`` weights, in eval mode)."""
    from .model import AWDLSTM, AWDLSTMConfig

    model = AWDLSTM(AWDLSTMConfig(**state["model_config"]))
    model.load_state_dict(state["model"])
    return model.eval()


def load_model(path: str | os.PathLike, map_location="cpu"):
    """Rebuild the AWD-LSTM stored in a checkpoint file."""
    return build_model(load_checkpoint(path, map_location))
