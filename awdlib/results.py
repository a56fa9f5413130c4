"""The results ladder: one row per rung, as mean ± standard deviation over a study's seeds.

Stored as JSON per scale (``notebooks/results/ladder-demo.json``) by the experiment runner, so every
notebook can show how its technique compares with the rungs below it without re-training them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


class Ladder:
    """The rows of a ladder summary (``notebooks/results/ladder-<scale>.json``, written by
    :func:`awdlib.experiments.write_summary`): ``{"name", "rung", "valid_ppl", "test_ppl", ...}``,
    with per-seed values and standard deviations where the study ran several seeds."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.rows: list[dict] = json.loads(self.path.read_text()) if self.path.exists() else []

    @classmethod
    def for_scale(cls, scale: str, folder: str | os.PathLike = "results") -> Ladder:
        return cls(Path(folder) / f"ladder-{scale}.json")

    def get(self, name: str) -> dict | None:
        return next((r for r in self.rows if r["name"] == name), None)

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

    def compare(self, name: str, baseline: str, noise_multiple: float = 3.0) -> str:
        """One sentence: the change in mean validation perplexity from ``baseline`` to ``name``,
        measured against the larger of the two rows' seed standard deviations."""
        a, b = self.get(name), self.get(baseline)
        if a is None or b is None:
            return f"{name!r} vs {baseline!r}: not both in the ladder at this scale yet"
        change = a["valid_ppl"] - b["valid_ppl"]
        text = (f"{name} vs {baseline}: mean validation perplexity {b['valid_ppl']:.2f} -> "
                f"{a['valid_ppl']:.2f} ({change:+.2f})")
        noise = max(a.get("valid_ppl_std") or 0.0, b.get("valid_ppl_std") or 0.0)
        if not noise:
            return text + "; one seed each, so no estimate of the noise"
        verdict = ("clears" if abs(change) > noise_multiple * noise else "does not clear")
        return (text + f", {abs(change) / noise:.1f} times the larger seed standard deviation "
                f"({noise:.2f}): {verdict} the noise ({noise_multiple:g}x rule)")

    def __repr__(self) -> str:
        return self.table()


def _mean_std(row: dict, key: str) -> str:
    if row.get(key) is None:
        return ""
    std = row.get(f"{key}_std")
    return f"{row[key]:.2f}" + ("" if std is None else f" ± {std:.2f}")
