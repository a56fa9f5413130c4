"""The results ladder: one row per configuration, extended notebook by notebook.

Stored as JSON per scale (``notebooks/results/ladder-demo.json``), so a later notebook can show how its
technique compares with every earlier rung without re-training them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


class Ladder:
    """Rows of ``{"name", "valid_ppl", "test_ppl", ...}`` kept in insertion order, upserted by name."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.rows: list[dict] = json.loads(self.path.read_text()) if self.path.exists() else []

    @classmethod
    def for_scale(cls, scale: str, folder: str | os.PathLike = "results") -> Ladder:
        return cls(Path(folder) / f"ladder-{scale}.json")

    def record(self, name: str, valid_ppl: float, test_ppl: float | None = None, **extra) -> dict:
        """Add or replace the row called ``name`` and save the file."""
        row = {"name": name, "valid_ppl": round(float(valid_ppl), 2),
               "test_ppl": None if test_ppl is None else round(float(test_ppl), 2), **extra}
        self.rows = [r for r in self.rows if r["name"] != name] + [row]
        self.rows.sort(key=lambda r: r.get("rung", 0))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.rows, indent=1) + "\n")
        return row

    def record_trainer(self, name: str, trainer, rung: int, notebook: str, **extra) -> dict:
        """Record a finished run: best validation perplexity, the test perplexity of those best
        weights (loaded into the model from ``best.pt`` when there is one), and both curves."""
        from .train import evaluate, perplexity

        if trainer.checkpoint_dir and (trainer.checkpoint_dir / "best.pt").exists():
            trainer.load_best()  # already averaged if averaging was on
            c = trainer.config
            test_loss = evaluate(trainer.model, trainer.corpus.test, c.bptt, c.test_batch_size)
        else:
            test_loss = trainer.evaluate("test")
        h = trainer.history
        return self.record(name, h.best()["valid_ppl"], perplexity(test_loss),
                           rung=rung, notebook=notebook, epochs=len(h.records),
                           seconds=round(sum(h.column("seconds")), 1),
                           valid_curve=[round(v, 2) for v in h.column("valid_ppl")],
                           train_curve=[round(v, 2) for v in h.column("train_ppl")], **extra)

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

    def __repr__(self) -> str:
        return self.table()


def _mean_std(row: dict, key: str) -> str:
    if row.get(key) is None:
        return ""
    std = row.get(f"{key}_std")
    return f"{row[key]:.2f}" + ("" if std is None else f" ± {std:.2f}")
