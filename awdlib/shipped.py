"""Trained demo weights that ship with the notebooks, so that "Run All" loads a model instead of training it.

Each shipped run is one half-precision ``.safetensors`` file: tensors plus a header of strings (the model's
configuration, the corpus, which run of which study it is). The format holds no code, so loading one runs
nothing but a copy into tensors. Every file is listed with its SHA-256 in the folder's ``SHA256SUMS``
(``sha256sum``'s format, so ``sha256sum -c SHA256SUMS`` checks the folder too), and :func:`load_weights`
refuses a file whose digest differs, naming the file, both digests and the fix.

Half precision halves the files (3.4 MB for the 1.7M-parameter demo model) and changes validation
perplexity in the second decimal; the notebooks' stored outputs are computed from these very files, so
what a learner's "Run All" prints equals what the stored notebook shows.

``safetensors`` is imported when a file is read or written, so ``import awdlib`` does not need it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from .model import AWDLSTM, AWDLSTMConfig

SUMS = "SHA256SUMS"
FORMAT = "awdlib-weights/1"


def weights_name(study: str, scale: str, name: str, seed: int) -> str:
    """The file name of one run's weights: ``STUDY-SCALE-`` and the name of the run's checkpoint folder
    (:func:`awdlib.experiments.run_folder`: ``NAME-seedSEED``, non-alphanumerics made hyphens)."""
    from .experiments import run_folder

    return f"{study}-{scale}-{run_folder('.', name, seed).name}.safetensors"


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_sums(folder: str | Path) -> dict[str, str]:
    """``{file name: SHA-256}`` from ``FOLDER/SHA256SUMS``; empty when there is none."""
    path = Path(folder) / SUMS
    if not path.is_file():
        return {}
    sums = {}
    for line in path.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.lstrip("*")] = digest
    return sums


def save_weights(model: AWDLSTM, path: str | Path, **metadata: str) -> str:
    """Write ``model``'s weights in half precision to ``path`` with its configuration and ``metadata``
    (strings: which run this is) in the header, add the file to the folder's ``SHA256SUMS``, and return
    its SHA-256. A tied decoder's weight is the embedding: it is stored once."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = model.state_dict()
    if model.config.tie_weights:
        del state["decoder.weight"]
    tensors = {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in state.items()}
    header = {"format": FORMAT, "model_config": json.dumps(model.config.to_dict(), sort_keys=True),
              **{k: str(v) for k, v in metadata.items()}}
    save_file(tensors, str(path), metadata=header)
    digest = sha256(path)
    sums = {**read_sums(path.parent), path.name: digest}
    (path.parent / SUMS).write_text("".join(f"{d}  {n}\n" for n, d in sorted(sums.items())))
    return digest


def load_weights(path: str | Path, expected_sha256: str | None = None) -> tuple[AWDLSTM, dict]:
    """The model stored in ``path`` (float32, eval mode) and its header (``corpus``, ``run``, ...).

    The file's SHA-256 must equal ``expected_sha256``, or by default its line in the folder's
    ``SHA256SUMS``; otherwise ``ValueError`` names the file, both digests and how to get the file back.
    """
    from safetensors import safe_open

    path = Path(path)
    if expected_sha256 is None:
        expected_sha256 = read_sums(path.parent).get(path.name)
        if expected_sha256 is None:
            raise ValueError(f"{path}: no SHA-256 for it in {path.parent / SUMS}, so it cannot be "
                             f"checked; list it there (sha256sum {path.name} >> {SUMS}) or load a "
                             f"shipped file")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the shipped weights are missing (expected SHA-256 "
                                f"{expected_sha256}); restore them with `git checkout -- {path}`, or "
                                f"train the run again (the notebook's `retrain = True`)")
    actual = sha256(path)
    if actual != expected_sha256:
        raise ValueError(f"{path}: SHA-256 {actual} does not match the expected {expected_sha256}; "
                         f"the file is damaged or was replaced. Restore it with `git checkout -- "
                         f"{path}`, or train the run again (the notebook's `retrain = True`)")
    with safe_open(str(path), framework="pt") as f:
        header = f.metadata() or {}
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    if header.get("format") != FORMAT:
        raise ValueError(f"{path} is not an awdlib weights file (format {FORMAT!r})")
    model = AWDLSTM(AWDLSTMConfig(**json.loads(header["model_config"])))
    if model.config.tie_weights:
        tensors["decoder.weight"] = tensors["encoder.weight"]
    model.load_state_dict({k: v.float() for k, v in tensors.items()})
    return model.eval(), header


def ship_checkpoint(checkpoint: str | Path, folder: str | Path, study: str, scale: str, name: str,
                    seed: int, **metadata: str) -> Path:
    """Ship one run: the weights of its checkpoint (its ``best.pt``) in half precision as
    ``FOLDER/STUDY-SCALE-NAME-seedSEED.safetensors``, listed in ``FOLDER/SHA256SUMS``."""
    from .checkpoint import build_model, load_checkpoint

    state = load_checkpoint(checkpoint)
    path = Path(folder) / weights_name(study, scale, name, seed)
    save_weights(build_model(state), path, corpus=state["corpus"], study=study, scale=scale, run=name,
                 seed=seed, epoch=state["epoch"], **metadata)
    return path
