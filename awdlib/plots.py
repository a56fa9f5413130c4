"""Matplotlib figures shared by the notebooks (matplotlib is imported lazily)."""

from __future__ import annotations


def _axes(ax=None, figsize=(6, 3.5)):
    import matplotlib.pyplot as plt
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def plot_curves(histories: dict, ax=None, metric: str = "ppl", title: str | None = None):
    """Train (dashed) and validation (solid) curves per epoch for each named ``History``."""
    ax = _axes(ax)
    for i, (name, history) in enumerate(histories.items()):
        color = f"C{i}"
        epochs = history.column("epoch")
        ax.plot(epochs, history.column(f"train_{metric}"), "--", color=color, alpha=0.7)
        ax.plot(epochs, history.column(f"valid_{metric}"), "-o", ms=3, color=color,
                label=f"{name} (valid)")
        switched = [r["epoch"] for r in history.records if r["averaging"]]
        if switched and history.records[0]["averaging"] is False:
            ax.axvline(switched[0] - 0.5, color=color, ls=":", lw=1)
    ax.set_xlabel("epoch")
    ax.set_ylabel("perplexity" if metric == "ppl" else "loss (nats/token)")
    if metric == "ppl":
        ax.set_yscale("log")
    ax.set_title(title or "dashed: train, solid: validation")
    ax.legend(fontsize=8)
    return ax
