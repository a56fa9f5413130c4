"""Checkpoints that never unpickle code: state dicts, tensors and plain Python values only.

Files are written atomically (a temporary file, flushed to disk, then renamed into place; on any failure
the temporary file is deleted and the old file is left as it was) and read with
``torch.load(..., weights_only=True)``, which refuses anything but tensors and primitive containers.
:func:`check_resumable` checks, field by field, that a ``last.pt`` holds everything a resumed
:class:`~awdlib.train.Trainer` reads.
"""

from __future__ import annotations

import io
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
    """Write ``state`` (tensors, numbers, strings, lists, dicts) to ``path`` atomically.

    It is serialised in memory first and then written: a full disk then raises ``OSError``
    (``ENOSPC``), where torch's own file writer would fail with an opaque ``RuntimeError``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buffer)
    with atomic_file(path) as f:
        f.write(buffer.getbuffer())
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


# ------------------------------------------------------------------- what a resumable run holds
def _is_int(value, minimum=None) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and (minimum is None or value >= minimum)


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_state(value) -> bool:
    """A random generator's state: a 1-D uint8 tensor a CPU generator accepts (torch's own; the
    window lengths' generator)."""
    if not (isinstance(value, torch.Tensor) and value.dtype == torch.uint8 and value.dim() == 1):
        return False
    try:
        torch.Generator().set_state(value.cpu())
    except RuntimeError:
        return False
    return True


def _is_record(value) -> bool:
    return isinstance(value, dict) and all(_is_number(value.get(k)) for k in
                                           ("epoch", "train_ppl", "valid_loss", "valid_ppl"))


def _resumable_fields(state: dict) -> list:
    """``(field, check, what it must be)`` for every field of a ``last.pt`` that resuming reads."""
    from .optim import MODES

    fields = [
        ("epoch", lambda v: _is_int(v, 0), "an integer >= 0"),
        ("phase", lambda v: v in ("train", "finetune"), "'train' or 'finetune'"),
        ("best_valid_loss", _is_number, "a number"),
        ("train_config", lambda v: isinstance(v, dict), "a dict of TrainConfig fields"),
        ("history", lambda v: isinstance(v, dict), "a dict"),
        ("history.records", lambda v: isinstance(v, list) and all(map(_is_record, v)),
         "a list of epoch records (each with epoch, train_ppl, valid_loss, valid_ppl)"),
        ("history.events", lambda v: isinstance(v, list) and all(isinstance(e, str) for e in v),
         "a list of strings"),
        ("history.stop_reason", lambda v: v is None or isinstance(v, str), "none or a string"),
        ("rng", lambda v: isinstance(v, dict), "a dict of random states"),
        ("rng.torch", _is_state, "a CPU random generator's state"),
        ("rng.batches", _is_state, "a CPU random generator's state"),
        ("optimizer", lambda v: isinstance(v, dict), "a dict"),
        ("optimizer.mode", lambda v: v in MODES, f"one of {', '.join(map(repr, MODES))}"),
        ("optimizer.sgd", lambda v: isinstance(v, dict) and isinstance(v.get("state"), dict)
         and isinstance(v.get("param_groups"), list), "an SGD state (state, param_groups)"),
        ("optimizer.trigger", lambda v: isinstance(v, dict), "a dict"),
        ("optimizer.trigger.n", lambda v: _is_int(v, 0), "an integer >= 0"),
        ("optimizer.trigger.logs", lambda v: isinstance(v, list) and all(map(_is_number, v)),
         "a list of validation losses"),
        ("optimizer.trigger.fired_at", lambda v: v is None or _is_int(v, 0), "none or an integer"),
        ("optimizer.steps", lambda v: _is_int(v, 0), "an integer >= 0"),
        ("optimizer.switch_step", lambda v: v is None or _is_int(v, 0), "none or an integer"),
        ("optimizer.average", lambda v: v is None or isinstance(v, dict), "none or a state dict"),
    ]
    if state.get("unfinished") is not None:  # an epoch paused by the time budget
        fields += [
            ("unfinished", lambda v: isinstance(v, dict), "none or a paused epoch's place"),
            *((f"unfinished.{k}", lambda v: _is_int(v, 0), "an integer >= 0")
              for k in ("position", "tokens", "steps")),
            ("unfinished.loss_sum", _is_number, "a number"),
            ("unfinished.seconds", _is_number, "a number"),
            ("unfinished.hidden", lambda v: isinstance(v, list) and all(
                isinstance(hc, list | tuple) and len(hc) == 2
                and all(isinstance(t, torch.Tensor) for t in hc) for hc in v),
             "a list of (h, c) tensor pairs"),
            ("unfinished.rng", lambda v: v is None or isinstance(v, dict) and all(
                _is_state(v.get(k)) for k in ("torch", "batches")), "none or random states"),
        ]
    return fields


_MISSING = object()


def check_resumable(state: dict) -> None:
    """Raise a one-line ``ValueError`` naming the first field of ``state`` (a ``last.pt``'s contents)
    that a resumed :class:`~awdlib.train.Trainer` could not use: missing, or of the wrong kind. The
    model's weights are checked against its ``model_config`` when the model is built."""
    for name, ok, expected in _resumable_fields(state):
        value = state
        for key in name.split("."):
            value = value.get(key, _MISSING) if isinstance(value, dict) else _MISSING
        if value is _MISSING:
            raise ValueError(f"the checkpoint lacks {name}")
        if not ok(value):
            shown = repr(value) if not isinstance(value, torch.Tensor) else \
                f"a {value.dtype} tensor of shape {tuple(value.shape)}"
            raise ValueError(f"the checkpoint's {name} must be {expected}, got "
                             f"{shown if len(shown) <= 60 else shown[:57] + '...'}")
