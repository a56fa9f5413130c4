"""The studies' files: the runs (one JSON line per run) and the summaries built from them.

A study's runs file (``STUDY-SCALE.runs.jsonl``) gets one line per run as the run ends
(:func:`append_run`, one whole line at a time) and is read back by :func:`read_runs`, which names the file
and the line of anything that is not a run. Its summary holds one row per configuration, as mean ±
standard deviation over seeds, stored as JSON per scale by the experiment runner: the results ladder
(``notebooks/results/ladder-demo.json``), so every notebook can show how its technique compares with the
rungs below it without re-training them, and the ablation table (``notebooks/results/ablation-demo.json``),
read by notebook 08 against the paper's.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import warnings
from pathlib import Path
from statistics import mean, stdev


# ------------------------------------------------------------------------------------ runs files
class RunsFileError(ValueError):
    """A line of a runs file that is not a run; the message names the file and the line."""


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# What a finished run's results hold (and its "finetuned" stage's, when it has one).
_RESULT = {"valid_ppl": _is_number, "test_ppl": _is_number, "epochs": _is_count,
           "seconds": _is_number}


def row_problem(row) -> str | None:
    """Why ``row`` is not a run's row, or None when it is one: a ``name`` and an integer ``seed``, and
    either the results (``valid_ppl``, ``test_ppl``, ``epochs``, ``seconds``, and the same in
    ``finetuned`` when present) or, for a run that failed, ``failed`` (the reason)."""
    if not isinstance(row, dict):
        return f"expected a JSON object, found {type(row).__name__}"
    wants = {"name": lambda v: isinstance(v, str),
             "seed": lambda v: isinstance(v, int) and not isinstance(v, bool)}
    wants.update({"failed": lambda v: isinstance(v, str)} if "failed" in row else _RESULT)
    stages = [("", row)] + ([("finetuned.", row["finetuned"])] if "finetuned" in row else [])
    for prefix, stage in stages:
        if not isinstance(stage, dict):
            return f"{prefix.rstrip('.')} must be a JSON object"
        checks = wants if not prefix else _RESULT
        missing = [prefix + k for k in checks if k not in stage]
        if missing:
            return f"it lacks {', '.join(missing)}"
        wrong = [prefix + k for k, ok in checks.items() if not ok(stage[k])]
        if wrong:
            return f"{', '.join(wrong)} {'has' if len(wrong) == 1 else 'have'} the wrong type"
    return None


def _parse(line: bytes):
    try:
        return json.loads(line)
    except ValueError:  # not UTF-8, not JSON
        return None


def read_runs(path: str | os.PathLike, *, failed: bool = False, warn=None) -> list[dict]:
    """The runs in a runs file (none if it does not exist): the finished ones, and with ``failed``
    also those recorded as failed (they have ``failed``: the reason).

    A last line that is not JSON (a run cut off while it was being written) is skipped with a
    warning (``warn(message)``, default :func:`warnings.warn`); any other line that is not a run
    raises :class:`RunsFileError` naming the file and the line.
    """
    path = Path(path)
    if not path.exists():
        return []
    try:
        lines = path.read_bytes().split(b"\n")
    except OSError as exc:
        raise RunsFileError(f"{path} cannot be read ({exc.strerror})") from None
    numbered = [(n, line) for n, line in enumerate(lines, start=1) if line.strip()]
    rows = []
    for n, line in numbered:
        row = _parse(line)
        if row is None and n == numbered[-1][0]:
            (warn or (lambda m: warnings.warn(m, stacklevel=3)))(
                f"{path} line {n} is cut off (not JSON); skipped it: the run it held is not counted")
            continue
        problem = "it is not JSON" if row is None else row_problem(row)
        if problem:
            raise RunsFileError(f"{path} line {n} is not a run: {problem}; fix or delete that line")
        if failed or "failed" not in row:
            rows.append(row)
    return rows


def append_run(path: str | os.PathLike, row: dict, warn=None) -> None:
    """Append ``row`` to a runs file as one line, written whole and flushed to disk.

    A cut-off last line (see :func:`read_runs`) is first moved to ``PATH.broken``, so that the new
    row starts a line of its own."""
    path = Path(path)
    data = path.read_bytes() if path.exists() else b""
    body = data.rstrip(b"\n")
    last = body[body.rfind(b"\n") + 1:]
    if last.strip() and _parse(last) is None:
        with path.with_name(path.name + ".broken").open("ab") as f:
            f.write(last + b"\n")
        os.truncate(path, len(body) - len(last))
        data = body[:len(body) - len(last)]
        (warn or (lambda m: warnings.warn(m, stacklevel=3)))(
            f"{path}: its last line was cut off (not JSON); moved it to {path.name}.broken")
    line = ("\n" if data and not data.endswith(b"\n") else "") + json.dumps(row) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(line.encode())
        while view:  # os.write may write less than asked (a signal, a nearly full disk)
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


class Study:
    """The rows of a study's summary (``notebooks/results/<kind>-<scale>.json``, written by
    :func:`awdlib.experiments.write_summary`): ``{"name", "valid_ppl", "test_ppl", ...}``, with
    per-seed values and standard deviations where the study ran several seeds. A missing file gives
    no rows."""

    kind = "study"

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.rows: list[dict] = json.loads(self.path.read_text()) if self.path.exists() else []

    @classmethod
    def for_scale(cls, scale: str, folder: str | os.PathLike = "results"):
        return cls(Path(folder) / f"{cls.kind}-{scale}.json")

    @classmethod
    def from_rows(cls, rows: list[dict]):
        """A study from summary rows in memory (:func:`awdlib.experiments.summary_rows`), e.g. of a
        study still running, whose summary file is written only when it ends."""
        study = cls.__new__(cls)
        study.path, study.rows = None, list(rows)
        return study

    def get(self, name: str) -> dict | None:
        return next((r for r in self.rows if r["name"] == name), None)

    def compare(self, name: str, baseline: str, noise_multiple: float = 3.0) -> str:
        """One sentence: the change in mean validation perplexity from ``baseline`` to ``name``,
        measured against the larger of the two rows' seed standard deviations."""
        a, b = self.get(name), self.get(baseline)
        if a is None or b is None:
            return f"{name!r} vs {baseline!r}: not both in the {self.kind} at this scale yet"
        change = a["valid_ppl"] - b["valid_ppl"]
        text = (f"{name} vs {baseline}: mean validation perplexity {b['valid_ppl']:.2f} -> "
                f"{a['valid_ppl']:.2f} ({change:+.2f})")
        text += _noise_verdict(change, self.noise(name, baseline), noise_multiple)
        paired = self.paired_changes(name, baseline)
        if len(paired) > 1:
            lower = sum(c < 0 for c in paired.values())
            text += (f"; seed by seed: lower in {lower} of {len(paired)} ("
                     + ", ".join(f"{c:+.2f}" for c in paired.values()) + ")")
        return text

    def paired_changes(self, name: str, baseline: str) -> dict[int, float]:
        """The change in validation perplexity seed by seed, for the seeds both rows have (same
        seed: the same first batches and dropout draws where the configurations allow)."""
        row, base = self.get(name), self.get(baseline)
        if row is None or base is None:
            return {}
        mine = dict(zip(row["seeds"], row["valid_ppl_seeds"]))
        return {s: round(mine[s] - v, 2) for s, v in zip(base["seeds"], base["valid_ppl_seeds"])
                if s in mine}

    def noise(self, name: str, baseline: str) -> float | None:
        """The larger of the two rows' seed standard deviations of validation perplexity (None
        where neither row has one: a single seed)."""
        stds = [r.get("valid_ppl_std") for r in (self.get(name), self.get(baseline)) if r]
        return max([s for s in stds if s] or [0.0]) or None

    def __repr__(self) -> str:
        return self.table()

    def table(self) -> str:
        raise NotImplementedError


class Ladder(Study):
    """The results ladder: ``{"name", "rung", "valid_ppl", "test_ppl", ...}`` per rung."""

    kind = "ladder"

    def table(self, upto: int | None = None) -> str:
        """A fixed-width text table of every rung (or of rungs ``<= upto``): mean ± sample standard
        deviation over seeds where a row has them, and the paper's full-scale change for the rung's
        technique (Table 3, PTB validation: how much removing it cost)."""
        from .experiments import paper_change

        lines = [f"{'configuration':<22} {'valid ppl':>17} {'test ppl':>17} {'seeds':>5} "
                 f"{'paper Δ':>8}"]
        for r in self.rows:
            if upto is not None and r.get("rung", 0) > upto:
                continue
            change = paper_change(r["name"])
            lines.append(f"{r['name']:<22} {_mean_std(r, 'valid_ppl'):>17} "
                         f"{_mean_std(r, 'test_ppl'):>17} {len(r.get('valid_ppl_seeds', [0])):>5} "
                         f"{'' if change is None else f'{-change:+.1f}':>8}")
        return "\n".join(lines)


def _mean_std(row: dict, key: str) -> str:
    if row.get(key) is None:
        return ""
    std = row.get(f"{key}_std")
    return f"{row[key]:.2f}" + ("" if std is None else f" ± {std:.2f}")


def _noise_verdict(change: float, noise: float | None, noise_multiple: float) -> str:
    """The end of a comparison's sentence: how many seed standard deviations ``change`` is, and
    whether it clears ``noise_multiple`` of them."""
    if not noise:
        return "; one seed each, so no estimate of the noise"
    verdict = "clears" if abs(change) > noise_multiple * noise else "does not clear"
    return (f", {abs(change) / noise:.1f} times the larger seed standard deviation ({noise:.2f}): "
            f"{verdict} the noise ({noise_multiple:g}x rule)")


class Ablation(Study):
    """The ablation table (``notebooks/results/ablation-<scale>.json``): the full model
    (``"AWD-LSTM"``) and each ``"– X"`` row, read against the paper's table for the study's dataset
    (:data:`awdlib.experiments.PAPER_ABLATION`). A change is a row's mean validation perplexity minus
    the full model's: positive means removing X hurt, as it did in the paper."""

    kind = "ablation"
    full = "AWD-LSTM"

    @property
    def dataset(self) -> str:
        return self.rows[0].get("scale", {}).get("dataset", "ptb") if self.rows else "ptb"

    @property
    def removed(self) -> list[str]:
        """The ``"– X"`` rows, in the paper's order, whether or not they have run yet."""
        from .experiments import ABLATION
        return [name for name in ABLATION if name != self.full]

    def paper_change(self, name: str, key: str = "valid") -> float:
        """The paper's change in ``key`` ("valid" or "test") perplexity when X was removed."""
        from .experiments import PAPER_ABLATION
        paper = PAPER_ABLATION[self.dataset]
        return round(paper[name][key] - paper[self.full][key], 1)

    def change(self, name: str) -> float | None:
        """Our change in validation perplexity: the mean over seeds of the row's run minus the full
        model's run *with the same seed* (:meth:`seed_changes`); None until both rows share a seed."""
        changes = list(self.seed_changes(name).values())
        return round(sum(changes) / len(changes), 2) if changes else None

    def seed_changes(self, name: str) -> dict[int, float]:
        """The change against the full model seed by seed (:meth:`Study.paired_changes`)."""
        return self.paired_changes(name, self.full)

    def noise(self, name: str, baseline: str | None = None) -> float | None:
        """The sample standard deviation of the seed-by-seed changes against ``baseline`` (default
        the full model): the spread of a *paired* difference. Runs with one seed share their data
        order and, where the configurations allow, their dropout draws, so what the seeds have in
        common cancels. None with fewer than two shared seeds."""
        changes = list(self.paired_changes(name, baseline or self.full).values())
        return stdev(changes) if len(changes) > 1 else None

    def verdict(self, name: str, noise_multiple: float = 3.0) -> str:
        """``"reproduced"`` (the paper's direction, beyond ``noise_multiple`` times the paired
        standard deviation, :meth:`noise`), ``"opposite"`` (the other way, beyond it),
        ``"within noise"``, ``"one seed"`` (no estimate of the noise) or ``"not run"``."""
        change = self.change(name)
        if change is None:
            return "not run"
        noise = self.noise(name, self.full)
        if noise is None:
            return "one seed"
        if abs(change) <= noise_multiple * noise:
            return "within noise"
        return "reproduced" if (change > 0) == (self.paper_change(name) > 0) else "opposite"

    def table(self) -> str:
        """Every row: mean ± sample standard deviation over seeds, the number of seeds, our change in
        validation perplexity against the full model, and the paper's."""
        lines = [f"{'configuration':<28} {'valid ppl':>17} {'test ppl':>17} {'seeds':>5} "
                 f"{'Δ valid':>8} {'paper Δ':>8}"]
        for r in self.rows:
            change = self.change(r["name"]) if r["name"] != self.full else None
            paper = self.paper_change(r["name"]) if r["name"] != self.full else None
            lines.append(f"{r['name']:<28} {_mean_std(r, 'valid_ppl'):>17} "
                         f"{_mean_std(r, 'test_ppl'):>17} {len(r['seeds']):>5} "
                         f"{'' if change is None else f'{change:+.2f}':>8} "
                         f"{'' if paper is None else f'{paper:+.1f}':>8}")
        return "\n".join(lines)

    def rank_correlation(self) -> tuple[float | None, list[str]]:
        """Spearman's rank correlation between our changes and the paper's, over the rows that have
        run, and those rows' names."""
        names = [n for n in self.removed if self.change(n) is not None]
        return (rank_correlation([self.change(n) for n in names],
                                 [self.paper_change(n) for n in names]), names)

    def capped(self) -> dict[str, list[int] | None]:
        """The rows with runs that stopped at an epoch cap, and those runs' seeds; None for a row
        whose summary does not say (written before the study recorded it)."""
        return {r["name"]: r.get("capped_seeds") for r in self.rows if r.get("capped_seeds", True)}

    def complete(self, min_seeds: int = 3) -> bool:
        """Every row of the paper's table has run, each with the same ``min_seeds`` or more seeds."""
        from .experiments import ABLATION
        seeds = [tuple(self.get(n)["seeds"]) if self.get(n) else () for n in ABLATION]
        return len(set(seeds)) == 1 and len(seeds[0]) >= min_seeds

    @property
    def converged(self) -> bool:
        """The gate: the study is :meth:`complete` and every run of every row stopped by its rule
        (early stopping; fine-tuning by its criterion or early stopping), none at its epoch cap.
        Until it holds, the Δs and the rank correlation describe runs that were still improving, or
        too few runs, not the techniques at convergence."""
        return self.complete() and not self.capped()

    def gate(self) -> str:
        """One line: whether the study passed :attr:`converged`, and why not."""
        if not self.rows:
            return "not converged: no runs yet"
        capped = self.capped()
        runs = sum(len(r["seeds"]) for r in self.rows if r["name"] != "– fine-tuning")
        if capped:
            return "not converged: " + "; ".join(
                f"{name}: " + ("not recorded" if seeds is None else
                               f"seed{'s' * (len(seeds) != 1)} {', '.join(map(str, seeds))} at the cap")
                for name, seeds in capped.items())
        rule = "stopped by their rule (early stopping; fine-tuning by its criterion or early stopping)"
        if not self.complete():
            from .experiments import ABLATION
            return (f"not converged yet: incomplete, {len(self.rows)} of {len(ABLATION)} rows from "
                    f"{runs} runs (seeds per row: "
                    + ", ".join(str(len(r["seeds"])) for r in self.rows) + f"); all of them {rule}")
        return f"converged: all {runs} runs of the {len(self.rows)} rows {rule}, none at an epoch cap"

    def rank_correlation_evidence(self, level: float = 0.95, samples: int = 20_000) -> dict:
        """How far the rank correlation (:meth:`rank_correlation`) can be trusted, two ways:

        - ``interval``: a percentile bootstrap over seeds: draw the shared seeds with replacement,
          recompute every row's paired change from the drawn seeds and rho from those; the
          ``level`` interval of rho over every possible draw (all ``n ** n`` of them for up to
          7 seeds, else ``samples`` random ones, seeded). It shows how much rho depends on *which*
          seeds ran; with 3 seeds there are only 27 draws, so it is coarse.
        - ``p_value``: an exact permutation test: the share of all orderings of our changes (8! = 40,320
          for 8 rows; ``samples`` random ones beyond 9 rows) whose rho with the paper's is at least
          ours. It asks whether an unrelated ranking would agree with the paper's as well by chance.

        Neither accounts for the paper's own changes being single runs: its order of the small rows
        (one or two perplexity points) may not hold for another seed either. Returns ``rho``,
        ``rows``, ``seeds``, ``interval`` (None without two shared seeds) and ``p_value``.
        """
        rho, names = self.rank_correlation()
        paper = [self.paper_change(n) for n in names]
        by_row = [self.seed_changes(n) for n in names]
        seeds = sorted(set.intersection(*(set(c) for c in by_row))) if by_row else []
        result = {"rho": rho, "rows": names, "seeds": seeds, "interval": None, "p_value": None}
        if rho is None:
            return result
        rng = random.Random(0)
        if len(seeds) > 1:
            n = len(seeds)
            draws = itertools.product(seeds, repeat=n) if n <= 7 else (
                rng.choices(seeds, k=n) for _ in range(samples))
            rhos = sorted(r for r in (rank_correlation([mean(c[s] for s in draw) for c in by_row],
                                                       paper) for draw in draws) if r is not None)
            tail = (1 - level) / 2
            result["interval"] = (_quantile(rhos, tail), _quantile(rhos, 1 - tail))
        ranked = ranks([self.change(n) for n in names])
        orders = itertools.permutations(ranked) if len(ranked) <= 9 else (
            rng.sample(ranked, len(ranked)) for _ in range(samples))
        agree = [rank_correlation(list(order), paper) >= rho - 1e-12 for order in orders]
        result["p_value"] = sum(agree) / len(agree)
        return result

    def reading(self, noise_multiple: float = 3.0) -> list[str]:
        """Plain sentences generated from the numbers: one per ``"– X"`` row, then the count of rows
        by verdict and the rank correlation with the paper."""
        full = self.get(self.full)
        if full is None:
            return [f"The full model ({self.full}) has no finished run at this scale yet, so no row "
                    "can be compared with it."]
        said = {"reproduced": "the paper's direction, beyond the noise",
                "opposite": "the opposite of the paper's direction, beyond the noise",
                "within noise": "within the noise", "one seed": "one seed, so no noise estimate",
                "not run": "not run yet"}
        lines, verdicts = [], {}
        for name in self.removed:
            verdict = verdicts[name] = self.verdict(name, noise_multiple)
            change, paper = self.change(name), self.paper_change(name)
            if change is None:
                lines.append(f"{name}: {said[verdict]} (paper {paper:+.1f}).")
                continue
            noise = self.noise(name, self.full)
            size = "" if noise is None else f", paired std {noise:.2f}" + (
                f" ({abs(change) / noise:.1f} x)" if noise else " (the same change for every seed)")
            lines.append(f"{name}: {change:+.2f} validation perplexity (paper {paper:+.1f}){size}: "
                         f"{said[verdict]}.")
        counts = {v: sum(1 for x in verdicts.values() if x == v) for v in said}
        def count(verdict: str, one: str, many: str) -> str:
            return f"{counts[verdict]} {one if counts[verdict] == 1 else many}"

        lines.append(f"{counts['reproduced']} of {len(verdicts)} rows reproduce the paper's direction "
                     f"beyond {noise_multiple:g} paired standard deviations, "
                     f"{count('opposite', 'goes', 'go')} the opposite way beyond them, "
                     f"{count('within noise', 'is', 'are')} within the noise"
                     + (f", {count('one seed', 'has', 'have')} one seed" if counts["one seed"] else "")
                     + (f", {count('not run', 'has', 'have')} not run" if counts["not run"] else "")
                     + ".")
        rho, names = self.rank_correlation()
        lines.append(f"Spearman rank correlation with the paper's changes over {len(names)} rows: "
                     + ("undefined (fewer than two rows, or a constant ranking)" if rho is None
                        else f"{rho:+.2f}") + ".")
        return lines


def _quantile(ordered: list[float], q: float) -> float:
    """The ``q`` quantile of sorted values, interpolating linearly between neighbours."""
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def ranks(values: list[float]) -> list[float]:
    """1-based ranks, ties sharing the mean of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    result = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            result[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return result


def rank_correlation(a: list[float], b: list[float]) -> float | None:
    """Spearman's rho: the Pearson correlation of the two lists' ranks (ties get mean ranks); None
    for fewer than two pairs or a constant list."""
    if len(a) != len(b):
        raise ValueError(f"rank_correlation needs two lists of one length, got {len(a)} and {len(b)}")
    if len(a) < 2:
        return None
    ra, rb = ranks(a), ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    var_a, var_b = sum((x - ma) ** 2 for x in ra), sum((y - mb) ** 2 for y in rb)
    return None if var_a == 0 or var_b == 0 else cov / (var_a * var_b) ** 0.5


def crossover(reference: list[float], other: list[float]) -> int | None:
    """The epoch (1-based) from which ``reference`` stays below ``other`` for every later epoch both
    curves have: where a regularised model (``reference``, validation perplexity per epoch)
    overtakes for good a model with less regularisation (``other``). None if ``reference`` is not
    ahead at the last shared epoch."""
    shared = min(len(reference), len(other))
    epoch = None
    for t in range(shared, 0, -1):
        if reference[t - 1] >= other[t - 1]:
            break
        epoch = t
    return epoch
