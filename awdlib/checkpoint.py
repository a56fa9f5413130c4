"""Checkpoints that never unpickle code: state dicts, tensors and plain Python values only.

Files are written atomically (a temporary file, flushed to disk, then renamed into place; on any failure
the temporary file is deleted and the old file is left as it was) and read with
``torch.load(..., weights_only=True)``, which refuses anything but tensors and primitive containers.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import torch

FORMAT = "awdlib-checkpoint/1"


@contextmanager
def atomic_file(path: str | os.PathLike):
    """A binary file to write ``path``'s new contents into; it replaces ``path`` only if the block
    finishes. An ``OSError`` (a full disk) names ``path``."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())  # the data is on disk before the rename makes it the file
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None:
            exc.filename = str(path)
        raise


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """Write ``state`` (tensors, numbers, strings, lists, dicts) to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as f:
        torch.save({"format": FORMAT, **state}, f)
    return path


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Read a checkpoint with ``weights_only=True``; pickled code raises instead of running."""
    state = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not an awdlib checkpoint (format {FORMAT!r})")
    return state


def build_model(state: dict):
    """The AWD-LSTM described by a checkpoint's contents (its ``model`` weights, in eval mode).

    Weights that do not fit the stored ``model_config`` raise a one-line ``ValueError``.
    """
    from .model import AWDLSTM, AWDLSTMConfig

    try:
        model = AWDLSTM(AWDLSTMConfig(**state["model_config"]))
        model.load_state_dict(state["model"])
    except (TypeError, RuntimeError) as exc:  # unknown config keys; missing or misshapen weights
        detail = " ".join(line.strip() for line in str(exc).splitlines()[:2])
        raise ValueError(f"the checkpoint's weights do not fit its model_config ({detail})") from None
    return model.eval()


def load_model(path: str | os.PathLike, map_location="cpu"):
    """Rebuild the AWD-LSTM stored in a checkpoint file."""
    return build_model(load_checkpoint(path, map_location))
