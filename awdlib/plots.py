"""Matplotlib figures shared by the notebooks (matplotlib is imported lazily).

Every figure draws its colours from :data:`PALETTE` (Okabe & Ito's colour-blind-safe set) and labels
log axes with plain numbers ("400", not "4×10²")."""

from __future__ import annotations

import math

# Okabe & Ito (2008), "Color Universal Design": distinguishable with every common colour-vision
# deficiency. Ordered so that the first colours are the strongest on white; yellow, the weakest, last.
PALETTE = ("#0072B2",  # blue
           "#E69F00",  # orange
           "#009E73",  # bluish green
           "#D55E00",  # vermillion
           "#CC79A7",  # reddish purple
           "#56B4E9",  # sky blue
           "#000000",  # black
           "#F0E442")  # yellow
SEED_STYLES = ("-", "--", ":", "-.")  # one line style per seed, in the order of the seeds


def colour(i: int) -> str:
    """The ``i``-th colour of :data:`PALETTE` (cycling)."""
    return PALETTE[i % len(PALETTE)]


def _axes(ax=None, figsize=(6, 3.5)):
    import matplotlib.pyplot as plt
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
        ax.set_prop_cycle(color=PALETTE)  # lines a notebook adds to this axes too
    return ax


def _plain(x: float) -> str:
    """A tick value as a plain number: 400, 1000, 0.002 (never 4×10² or 1e-03)."""
    import numpy as np
    return np.format_float_positional(float(f"{x:.3g}"), trim="-")


def _log_axis(axis) -> None:
    """Put ``axis`` (``ax.xaxis`` or ``ax.yaxis``) on a log scale labelled with plain numbers, major
    and minor ticks alike. Which ticks get a label is matplotlib's own choice for log axes (all minor
    ticks over a short range, some over about a decade, none over several)."""
    from matplotlib.ticker import LogFormatter

    class PlainLogFormatter(LogFormatter):
        def __call__(self, x, pos=None):
            return _plain(x) if x > 0 and super().__call__(x, pos) else ""

    ax, y = axis.axes, axis is axis.axes.yaxis
    (ax.set_yscale if y else ax.set_xscale)("log")  # sets the scale of the axes shared with it too
    for other in (ax.get_shared_y_axes() if y else ax.get_shared_x_axes()).get_siblings(ax):
        other_axis = other.yaxis if y else other.xaxis
        other_axis.set_major_formatter(PlainLogFormatter(labelOnlyBase=False))
        other_axis.set_minor_formatter(PlainLogFormatter(labelOnlyBase=False))


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
        _log_axis(ax.yaxis)
    ax.set_title(title or "dashed: train, solid: validation")
    ax.legend(fontsize=8)
    return ax


def plot_curves(histories: dict, ax=None, metric: str = "ppl", title: str | None = None):
    """Train (dashed) and validation (solid) curves per epoch for each named ``History``; a dotted
    line marks where averaging started."""
    ax = _axes(ax)
    for i, (name, history) in enumerate(histories.items()):
        color = colour(i)
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


def _rung_colour(row: dict | None, fallback: int) -> str:
    """A ladder row's colour: the same rung has the same colour in every notebook's figures."""
    return colour(row["rung"] - 1) if row and "rung" in row else colour(fallback)


def plot_ladder(rows, upto: int | None = None, ax=None, key: str = "valid_ppl",
                title: str | None = None):
    """The ladder as mean ± standard deviation over seeds (square and bar, in the rung's colour) with
    each seed's value (dots), one line per rung, on a linear axis zoomed to the data so that
    differences of a few points show."""
    rows = [r for r in rows if upto is None or r.get("rung", 0) <= upto][::-1]
    ax = _axes(ax, figsize=(6, 0.45 * len(rows) + 1.2))
    for y, row in enumerate(rows):
        seeds = row.get(f"{key}_seeds", [row[key]])
        ax.errorbar(row[key], y, xerr=row.get(f"{key}_std") or 0, fmt="s", capsize=4,
                    color=_rung_colour(row, len(rows) - 1 - y))
        ax.plot(seeds, [y] * len(seeds), "o", ms=4, color="0.3", alpha=0.7)
    ax.set_yticks(range(len(rows)), [r["name"] for r in rows])
    ax.set_xlabel(f"{key.replace('_ppl', '')} perplexity (square: mean ± std; dots: seeds)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title or "the ladder: lower is better", fontsize=9)
    return ax


def _seed_lines(ax, runs, name: str, drawn: list, label: str | None = None, **style) -> int:
    """Draw every seed's validation curve of the row ``name``, one line style per seed; a curve that
    continues one in ``drawn`` (the same values up to an epoch, as fine-tuning continues its run)
    draws only its own part. Appends the curves to ``drawn``; returns how many seeds were drawn.
    ``label``: one legend entry for all seeds (else one per seed)."""
    from .experiments import rung_runs

    seeded = rung_runs(runs, name)
    for j, run in enumerate(seeded):
        curve = run["valid_curve"]
        start = max([_shared_prefix(curve, other) for other in drawn] + [1]) - 1
        ax.plot(range(start + 1, len(curve) + 1), curve[start:], SEED_STYLES[j % len(SEED_STYLES)],
                label=(label if j == 0 else None) if label else f"seed {run['seed']}", **style)
    drawn += [run["valid_curve"] for run in seeded]
    return len(seeded)


def plot_seed_curves(runs, names, ax=None, title: str | None = None):
    """Validation perplexity per epoch of every seed of each named ladder row, from a study's runs
    (``awdlib.experiments.read_runs``), in one panel: one colour per row, one line style per seed.
    For more than two rows :func:`plot_study` gives each row its own panel."""
    from .experiments import rung_runs

    ax = _axes(ax)
    drawn: list[list[float]] = []
    for i, name in enumerate(names):
        seeds = len(rung_runs(runs, name))
        _seed_lines(ax, runs, name, drawn, label=f"{name} ({seeds} seed{'s' * (seeds > 1)})",
                    color=colour(i), lw=1, alpha=0.85)
    _epoch_axis(ax)
    ax.set_ylabel("validation perplexity")
    _log_axis(ax.yaxis)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    ax.set_title(title or "every seed's validation curve (line style: seed)", fontsize=9)
    return ax


def _shared_prefix(a: list, b: list) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def plot_study(ladder, runs, names, title: str | None = None):
    """A notebook's rungs from a study. Top: one small panel per rung of ``names``, every seed's
    validation curve in the rung's colour (one line style per seed) over the previous rung's seeds
    in grey, so that no panel holds more than two rungs' seeds; the panels share their axes. Below:
    the ladder up to the last of them, mean ± std, each rung in the same colour."""
    import matplotlib.pyplot as plt

    rows = [ladder.get(name) for name in names]
    rungs = [row["rung"] for row in rows if row]
    shown = [r for r in ladder.rows if r.get("rung", 0) <= max(rungs)] if rungs else []
    n = len(names)
    fig = plt.figure(figsize=(max(6.5, 3.2 * n), 3.2 + (0.4 * len(shown) + 1.2 if shown else 0)))
    grid = fig.add_gridspec(2 if shown else 1, n,
                            height_ratios=[3.2, 0.4 * len(shown) + 1.2] if shown else None)
    panels = []
    for i, (name, row) in enumerate(zip(names, rows)):
        ax = fig.add_subplot(grid[0, i], sharex=panels[0] if panels else None,
                             sharey=panels[0] if panels else None)
        panels.append(ax)
        drawn: list[list[float]] = []
        if i > 0:
            _seed_lines(ax, runs, names[i - 1], drawn, label=f"{names[i - 1]} (the rung before)",
                        color="0.65", lw=0.9)
        if not _seed_lines(ax, runs, name, drawn, color=_rung_colour(row, i), lw=1.3):
            ax.text(0.5, 0.5, "no runs yet", transform=ax.transAxes, ha="center", color="0.4")
        _epoch_axis(ax)
        ax.set_title(name, fontsize=9, color=_rung_colour(row, i))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        if i:
            ax.tick_params(axis="y", which="both", labelleft=False)
    panels[0].set_ylabel("validation perplexity")
    _log_axis(panels[0].yaxis)
    if title:
        fig.suptitle(title, fontsize=10)
    if shown:
        plot_ladder(shown, ax=fig.add_subplot(grid[1, :]))
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
        ax.hist(v.numpy(), bins=edges, density=True, histtype="stepfilled", alpha=0.35, color=colour(i))
        ax.hist(v.numpy(), bins=edges, density=True, histtype="step", color=colour(i),
                label=f"{name} (mean {v.mean().item():.3f})")
    _log_axis(ax.yaxis)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    return ax


def plot_trigger(losses, n: int, ax=None, title: str | None = None, ylabel: str = "validation loss"):
    """A validation curve and where the non-monotonic trigger (paper Algorithm 1) fires with window
    ``n``: the firing check (star), the last ``n`` checks it ignores (shaded) and the best value before
    them that it compares with (dotted). Epochs are 1-based, one check per epoch."""
    from .optim import NonMonotonicTrigger

    ax = _axes(ax)
    trigger = NonMonotonicTrigger(n)
    fired = [trigger.step(v) for v in losses]
    epochs = range(1, len(losses) + 1)
    ax.plot(epochs, losses, "-o", ms=3, color=PALETTE[0])
    if trigger.fired:
        t = trigger.fired_at
        reference = min(losses[:t - n])
        ax.axvspan(t - n + 0.5, t + 0.5, color="0.85", label=f"last n = {n} checks (ignored)")
        ax.axhline(reference, color=PALETTE[2], ls=":", label=f"best before them: {reference:.4g}")
        ax.plot([t + 1], [losses[t]], "*", ms=14, color=PALETTE[3],
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
    ax.scatter(i.tolist(), t.tolist(), s=40, facecolors="none", edgecolors=PALETTE[3], linewidths=1.2,
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
    ax.plot(search.best["theta"], search.best["lambdah"], "*", ms=14, color=PALETTE[3], mec="k",
            label=f"best: {math.exp(search.best['loss']):.2f} "
                  f"(no cache: {math.exp(search.plain_loss):.2f})")
    ax.set_xlabel("theta (sharpness of the attention)")
    ax.set_ylabel("lambda (weight of the cache)")
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title(title or f"validation perplexity with the cache, window {search.best['window']}",
                 fontsize=9)
    return ax


def plot_ablation(ablation, noise_multiple: float = 3.0, title: str | None = None,
                  notes: dict[str, str] | None = None):
    """Two panels, one line per ``"– X"`` row of an :class:`awdlib.Ablation`, sorted by the paper's
    change: left, our change in validation perplexity against the full model (bar: the mean of the
    paired, same-seed changes; error bar: their standard deviation, the unit of the
    ``noise_multiple`` rule; dots: each seed's change); right, the paper's change. A bar is blue
    in the paper's direction beyond the noise, vermillion in the opposite one, grey within it. A row
    that has not run yet keeps its line, empty. ``notes``: a short mark per row name (e.g. "confounded")
    added under its label; its bar is hatched."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    names = sorted(ablation.removed, key=ablation.paper_change)
    fig, (ours, paper) = plt.subplots(1, 2, figsize=(11, 0.45 * len(names) + 1.6), sharey=True,
                                      width_ratios=[3, 2])
    colours = {"reproduced": PALETTE[0], "opposite": PALETTE[3]}  # blue against vermillion
    for y, name in enumerate(names):
        change = ablation.change(name)
        if change is None:
            ours.text(0, y, " not run yet", va="center", fontsize=8, color="0.4")
        else:
            noise = ablation.noise(name, ablation.full) or 0
            ours.barh(y, change, color=colours.get(ablation.verdict(name, noise_multiple), "0.7"),
                      hatch="///" if notes and name in notes else None, edgecolor="white")
            ours.errorbar(change, y, xerr=noise, fmt="none", color="k", capsize=4)
            seeds = list(ablation.seed_changes(name).values())
            ours.plot(seeds, [y] * len(seeds), "o", ms=4, color="0.15", alpha=0.8)
        paper.barh(y, ablation.paper_change(name), color="0.45")
    def label(name):
        seeds = len(ablation.get(name)["seeds"]) if ablation.get(name) else 0
        text = f"{name} ({seeds} seed{'s' * (seeds != 1)})" if seeds else name
        return f"{text}\n{notes[name]}" if notes and name in notes else text

    ours.set_yticks(range(len(names)), [label(n) for n in names])
    ours.axvline(0, color="k", lw=0.8)
    ours.set_xlabel("Δ validation perplexity vs AWD-LSTM\n(error bar: paired seed std; dots: seeds)")
    ours.legend(handles=[Patch(color=colours["reproduced"],
                               label=f"paper's direction, > {noise_multiple:g} std"),
                         Patch(color=colours["opposite"],
                               label=f"opposite direction, > {noise_multiple:g} std"),
                         Patch(color="0.7", label="within the noise, or no spread yet")]
                + ([Patch(facecolor="0.7", edgecolor="white", hatch="///",
                          label="hatched: read with the note under its label")] if notes else []),
                fontsize=7)
    ours.set_title(title or "ours", fontsize=9)
    dataset = {"ptb": "PTB", "wikitext-2": "WikiText-2"}.get(ablation.dataset, ablation.dataset)
    paper.set_xlabel(f"Δ validation perplexity (the paper, {dataset})")
    paper.set_title("the paper: what removing each technique cost", fontsize=9)
    for ax in (ours, paper):
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_crossover(runs: list[dict], reference: str, others: list[str], stops: dict | None = None,
                   title: str | None = None):
    """Two panels over epochs for the runs of one seed: validation perplexity of ``reference`` and
    each of ``others`` (top, log axis; a dot at each run's best epoch) and each other minus the
    reference (bottom: above 0 the reference is ahead), with a dashed line where the reference
    overtakes for good (:func:`awdlib.results.crossover`). ``stops``: extra marks, ``{name:
    {label: epoch}}`` (e.g. where another early-stopping rule would have ended that run)."""
    import matplotlib.pyplot as plt

    from .results import crossover

    by_name = {r["name"]: r for r in runs}
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True, height_ratios=[3, 2])
    names = [reference] + [n for n in others if n in by_name]
    for i, name in enumerate(names):
        curve = by_name[name]["valid_curve"]
        epochs = range(1, len(curve) + 1)
        top.plot(epochs, curve, color=colour(i), label=name, lw=1.4)
        best = by_name[name]["best_epoch"]
        top.plot([best], [curve[best - 1]], "o", color=colour(i), ms=5)
        for j, (label, epoch) in enumerate((stops or {}).get(name, {}).items()):
            top.axvline(epoch, color=colour(i), lw=0.8, ls=SEED_STYLES[(j + 1) % 4], alpha=0.7)
            top.annotate(label, (epoch, curve[min(epoch, len(curve)) - 1]), fontsize=7,
                         color=colour(i), xytext=(3, 8), textcoords="offset points")
        if name == reference:
            continue
        ref = by_name[reference]["valid_curve"]
        shared = min(len(ref), len(curve))
        gap = [curve[t] - ref[t] for t in range(shared)]
        bottom.plot(range(1, shared + 1), gap, color=colour(i), lw=1.2,
                    label=f"{name} minus {reference}")
        epoch = crossover(ref, curve)
        if epoch is not None:
            bottom.axvline(epoch, color=colour(i), ls="--", lw=0.9)
            bottom.annotate(f"ahead for good from epoch {epoch}", (epoch, 0), fontsize=7,
                            color=colour(i), xytext=(4, 6), textcoords="offset points")
    _log_axis(top.yaxis)
    top.set_ylabel("validation perplexity")
    top.legend(fontsize=8)
    top.grid(alpha=0.3)
    top.set_title(title or "validation perplexity per epoch (dot: best epoch)", fontsize=9)
    bottom.axhline(0, color="k", lw=0.8)
    bottom.set_yscale("symlog", linthresh=10)
    bottom.set_ylabel(f"gap to {reference}\n(> 0: {reference} ahead)")
    bottom.set_xlabel("epoch")
    bottom.legend(fontsize=8)
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    return fig
