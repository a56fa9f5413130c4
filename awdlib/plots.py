"""Matplotlib figures shared by the notebooks (matplotlib is imported lazily)."""

from __future__ import annotations

import math


def _axes(ax=None, figsize=(6, 3.5)):
    import matplotlib.pyplot as plt
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def _train_valid(ax, epochs, train, valid, color: str, label: str) -> None:
    """One run's curves: training dashed, validation solid with markers."""
    ax.plot(epochs, train, "--", color=color, alpha=0.7)
    ax.plot(epochs, valid, "-o", ms=3, color=color, label=label)


def _epoch_axis(ax, label: str = "epoch") -> None:
    from matplotlib.ticker import MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(label)


def _finish(ax, title: str | None, ylabel: str = "perplexity", log: bool = True):
    _epoch_axis(ax)
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    ax.set_title(title or "dashed: train, solid: validation")
    ax.legend(fontsize=8)
    return ax


def plot_curves(histories: dict, ax=None, metric: str = "ppl", title: str | None = None):
    """Train (dashed) and validation (solid) curves per epoch for each named ``History``; a dotted
    line marks where averaging started."""
    ax = _axes(ax)
    for i, (name, history) in enumerate(histories.items()):
        color = f"C{i}"
        _train_valid(ax, history.column("epoch"), history.column(f"train_{metric}"),
                     history.column(f"valid_{metric}"), color, f"{name} (valid)")
        switched = [r["epoch"] for r in history.records if r["averaging"]]
        if switched and history.records[0]["averaging"] is False:
            ax.axvline(switched[0] - 0.5, color=color, ls=":", lw=1)
    return _finish(ax, title, "perplexity" if metric == "ppl" else "loss (nats/token)",
                   log=metric == "ppl")


def plot_mask(mask, ax=None, title: str | None = None, xlabel: str = "", ylabel: str = ""):
    """A dropout mask (or a dropped matrix) as an image: black where an entry is zero (dropped)."""
    ax = _axes(ax, figsize=(4, 4))
    kept = (mask != 0).float().cpu()
    ax.imshow(kept, cmap="gray", vmin=0, vmax=1, interpolation="nearest", aspect="auto")
    ax.set_title(title or f"kept {kept.mean().item():.0%} (black: dropped)", fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def plot_ladder(rows, upto: int | None = None, ax=None, key: str = "valid_ppl",
                title: str | None = None):
    """The ladder as mean ± standard deviation over seeds (bars) with each seed's value (dots), one
    line per rung, on a linear axis zoomed to the data so that differences of a few points show."""
    rows = [r for r in rows if upto is None or r.get("rung", 0) <= upto][::-1]
    ax = _axes(ax, figsize=(6, 0.45 * len(rows) + 1.2))
    for y, row in enumerate(rows):
        seeds = row.get(f"{key}_seeds", [row[key]])
        ax.errorbar(row[key], y, xerr=row.get(f"{key}_std") or 0, fmt="s", color="C0", capsize=4)
        ax.plot(seeds, [y] * len(seeds), "o", ms=4, color="C1", alpha=0.7)
    ax.set_yticks(range(len(rows)), [r["name"] for r in rows])
    ax.set_xlabel(f"{key.replace('_ppl', '')} perplexity (square: mean ± std; dots: seeds)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title or "the ladder: lower is better", fontsize=9)
    return ax


def plot_seed_curves(runs, names, ax=None, title: str | None = None):
    """Validation perplexity per epoch of every seed of each named ladder row, from a study's runs
    (``awdlib.experiments.read_runs``): one colour per row, one thin line per seed."""
    from .experiments import rung_runs

    ax = _axes(ax)
    drawn: list[list[float]] = []
    for i, name in enumerate(names):
        curves = [run["valid_curve"] for run in rung_runs(runs, name)]
        for j, curve in enumerate(curves):
            # a run that continues one already drawn (same epochs up to a point) shows its own part
            start = max([_shared_prefix(curve, other) for other in drawn] + [1]) - 1
            ax.plot(range(start + 1, len(curve) + 1), curve[start:], color=f"C{i}", lw=1, alpha=0.8,
                    label=f"{name} ({len(curves)} seed{'s' * (len(curves) > 1)})" if j == 0 else None)
        drawn += curves
    _epoch_axis(ax)
    ax.set_ylabel("validation perplexity")
    ax.set_yscale("log")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    ax.set_title(title or "every seed's validation curve", fontsize=9)
    return ax


def _shared_prefix(a: list, b: list) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def plot_study(ladder, runs, names, title: str | None = None):
    """Two panels for a notebook's rungs: every seed's validation curve of ``names`` (from the study's
    ``runs``) and the ladder up to the last of them, mean ± std."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.8), width_ratios=[3, 2])
    plot_seed_curves(runs, names, ax=left, title=title)
    rungs = [ladder.get(name)["rung"] for name in names if ladder.get(name)]
    if rungs:
        plot_ladder(ladder.rows, upto=max(rungs), ax=right)
    fig.tight_layout()
    return fig


def plot_histograms(samples: dict, ax=None, bins: int = 60, xlabel: str = "", title: str | None = None):
    """Overlaid histograms (density, log y) of the values of each named tensor, on shared bins; the
    legend gives each sample's mean."""
    import torch
    ax = _axes(ax)
    flat = {name: v.detach().flatten().float().cpu() for name, v in samples.items()}
    top = max(v.max().item() for v in flat.values())
    edges = torch.linspace(min(v.min().item() for v in flat.values()), top, bins + 1).numpy()
    for i, (name, v) in enumerate(flat.items()):
        ax.hist(v.numpy(), bins=edges, density=True, histtype="stepfilled", alpha=0.35, color=f"C{i}")
        ax.hist(v.numpy(), bins=edges, density=True, histtype="step", color=f"C{i}",
                label=f"{name} (mean {v.mean().item():.3f})")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    return ax


def plot_trigger(losses, n: int, ax=None, title: str | None = None, ylabel: str = "validation loss"):
    """A validation curve and where the non-monotonic trigger (paper Algorithm 1) fires with window
    ``n``: the firing check (red), the last ``n`` checks it ignores (shaded) and the best value before
    them that it compares with (dotted). Epochs are 1-based, one check per epoch."""
    from .optim import NonMonotonicTrigger

    ax = _axes(ax)
    trigger = NonMonotonicTrigger(n)
    fired = [trigger.step(v) for v in losses]
    epochs = range(1, len(losses) + 1)
    ax.plot(epochs, losses, "-o", ms=3, color="C0")
    if trigger.fired:
        t = trigger.fired_at
        reference = min(losses[:t - n])
        ax.axvspan(t - n + 0.5, t + 0.5, color="0.85", label=f"last n = {n} checks (ignored)")
        ax.axhline(reference, color="C2", ls=":", label=f"best before them: {reference:.4g}")
        ax.plot([t + 1], [losses[t]], "*", ms=14, color="C3",
                label=f"fires at epoch {t + 1}: {losses[t]:.4g}")
        ax.legend(fontsize=8)
    _epoch_axis(ax, "epoch (one check per epoch)")
    ax.set_ylabel(ylabel)
    ax.set_title(title or (f"n = {n}: fires at epoch {trigger.fired_at + 1}" if any(fired)
                           else f"n = {n}: never fires on these {len(losses)} checks"), fontsize=9)
    return ax


def plot_cache_attention(attention, next_words: list[str], ax=None, title: str | None = None):
    """The cache's attention over a passage (:func:`awdlib.cache.cache_attention`) as a heatmap. Row
    ``t`` is the step that predicts ``next_words[t]``; column ``i`` the cache entry that proposes
    ``next_words[i]`` (the word that followed step ``i``). A ring marks a *hit*: an earlier entry
    proposing the very word that comes next, where attention helps."""
    import torch

    ax = _axes(ax, figsize=(7, 6))
    a = attention.detach().float().cpu().numpy()
    image = ax.imshow(a, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    ids = {w: k for k, w in enumerate(dict.fromkeys(next_words))}
    codes = torch.tensor([ids[w] for w in next_words])
    t, i = torch.nonzero((codes.unsqueeze(1) == codes.unsqueeze(0)).tril(-1), as_tuple=True)
    ax.scatter(i.tolist(), t.tolist(), s=40, facecolors="none", edgecolors="C3", linewidths=1.2,
               label="hit: this entry proposes the next word")
    ticks = range(len(next_words))
    ax.set_xticks(ticks, next_words, rotation=90, fontsize=7)
    ax.set_yticks(ticks, next_words, fontsize=7)
    ax.set_xlabel("cache entry i (labelled with the word it proposes)")
    ax.set_ylabel("step t (labelled with the word to predict)")
    ax.figure.colorbar(image, ax=ax, fraction=0.04, label="attention")
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title(title or "the cache's attention: row t spreads 1 over the entries before it",
                 fontsize=9)
    return ax


def plot_cache_grid(search, ax=None, title: str | None = None):
    """Validation perplexity over the (theta, lambdah) grid of a :func:`awdlib.cache.search_cache`
    at its best window, as filled contours, with the best point starred."""
    import torch

    ax = _axes(ax, figsize=(6, 4))
    w = search.windows.index(search.best["window"])
    ppl = torch.exp(search.losses[w]).T  # (lambdahs, thetas)
    levels = torch.quantile(ppl.flatten(), torch.linspace(0, 1, 15, dtype=ppl.dtype)).unique()
    filled = ax.contourf(search.thetas, search.lambdahs, ppl.numpy(), levels=levels.tolist(),
                         cmap="viridis_r")
    ax.figure.colorbar(filled, ax=ax, label="validation perplexity")
    ax.plot(search.best["theta"], search.best["lambdah"], "*", ms=14, color="C3",
            label=f"best: {math.exp(search.best['loss']):.2f} "
                  f"(no cache: {math.exp(search.plain_loss):.2f})")
    ax.set_xlabel("theta (sharpness of the attention)")
    ax.set_ylabel("lambda (weight of the cache)")
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title(title or f"validation perplexity with the cache, window {search.best['window']}",
                 fontsize=9)
    return ax
