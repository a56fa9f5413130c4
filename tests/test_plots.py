"""The shared figures (awdlib.plots): colour-blind-safe colours, plain numbers on log axes, and seed
panels a reader can follow. Each test renders with Agg and reads back what the figure holds."""

import json
import re

import pytest
import torch

import awdlib

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402

from awdlib import plots  # noqa: E402

LADDER = ["plain LSTM", "+ weight drop", "+ locked dropout", "+ embedding dropout"]
SEEDS = (141, 142, 143)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def curve(start: float, end: float, epochs: int, wiggle: float) -> list[float]:
    """A falling validation curve, different for each ``wiggle``."""
    return [round(start * (end / start) ** (e / (epochs - 1)) + wiggle * (e % 3), 2)
            for e in range(epochs)]


def ladder_study(tmp_path, names=LADDER):
    rows = [{"name": name, "rung": k + 1, "seeds": list(SEEDS), "valid_ppl": 400.0 - 10 * k,
             "valid_ppl_seeds": [399.0 - 10 * k, 400.0 - 10 * k, 401.0 - 10 * k],
             "valid_ppl_std": 1.0} for k, name in enumerate(names)]
    (tmp_path / "ladder-demo.json").write_text(json.dumps(rows))
    runs = [{"name": name, "seed": seed, "valid_curve": curve(1200, 400 - 10 * k, 20, j + k)}
            for k, name in enumerate(names) for j, seed in enumerate(SEEDS)]
    return awdlib.Ladder(tmp_path / "ladder-demo.json"), runs


def ablation_study(tmp_path):
    """The full model, one row beyond the noise each way, one within it."""
    def row(name, ppl):
        return {"name": name, "seeds": list(SEEDS), "valid_ppl": ppl,
                "valid_ppl_seeds": [ppl - 1, ppl, ppl + 1], "valid_ppl_std": 1.0}

    rows = [row("AWD-LSTM", 400.0), row("– weight-dropping", 430.0),
            row("– full sized embedding", 370.0), row("– AR/TAR", 401.0)]
    (tmp_path / "ablation-demo.json").write_text(json.dumps(rows))
    return awdlib.Ablation(tmp_path / "ablation-demo.json")


def drawn_colours(fig) -> set[tuple[float, float, float]]:
    """Every colour a figure's lines, bars and markers use (not images or colour maps)."""
    found = set()
    for ax in fig.axes:
        for line in ax.lines:
            found |= {to_rgb(line.get_color()), to_rgb(line.get_markerfacecolor())}
        for patch in ax.patches:
            found.add(to_rgb(patch.get_facecolor()))
        for collection in ax.collections:
            if collection.get_array() is not None:
                continue  # coloured by a colour map (a colour bar, a contour)
            found |= {tuple(c[:3]) for c in collection.get_edgecolors()}
            found |= {tuple(c[:3]) for c in collection.get_facecolors()}
    return found


def every_figure(tmp_path):
    ladder, runs = ladder_study(tmp_path)
    history = awdlib.History([{"epoch": e + 1, "phase": "train", "train_ppl": 900.0 - 40 * e,
                               "valid_ppl": 950.0 - 35 * e, "averaging": e > 4} for e in range(8)])
    yield "plot_curves", plots.plot_curves({"a": history, "b": history, "c": history}).figure
    yield "plot_study", plots.plot_study(ladder, runs, LADDER)
    yield "plot_seed_curves", plots.plot_seed_curves(runs, LADDER[:2]).figure
    yield "plot_histograms", plots.plot_histograms({"a": torch.rand(200), "b": torch.rand(200)}).figure
    yield "plot_trigger", plots.plot_trigger([5.0, 4.0, 3.5, 3.6, 3.7, 3.8, 3.9], n=2).figure
    words = ["a", "b", "a", "c", "b", "a"]
    attention = awdlib.cache_attention(torch.randn(len(words), 4), window=10, theta=1.0)
    yield "plot_cache_attention", plots.plot_cache_attention(attention, words).figure
    yield "plot_ablation", plots.plot_ablation(ablation_study(tmp_path))
    crossing = [{"name": "full", "valid_curve": [900, 600, 500, 450], "best_epoch": 4},
                {"name": "less", "valid_curve": [800, 550, 520, 530, 540], "best_epoch": 2}]
    yield "plot_crossover", plots.plot_crossover(crossing, "full", ["less"],
                                                 stops={"full": {"0.5% rule": 3}})


def test_every_figure_draws_only_palette_colours_and_greys(tmp_path):
    palette = {to_rgb(c) for c in plots.PALETTE}
    for name, fig in every_figure(tmp_path):
        colours = drawn_colours(fig)
        foreign = {c for c in colours if c not in palette and not c[0] == c[1] == c[2]}
        assert not foreign, f"{name} draws colours outside the palette: {foreign}"
        assert colours & palette, f"{name} draws no palette colour at all"


def test_palette_has_no_red_green_pair_and_is_okabe_ito():
    assert plots.PALETTE[:4] == ("#0072B2", "#E69F00", "#009E73", "#D55E00")
    rgb = [to_rgb(c) for c in plots.PALETTE]
    assert (1.0, 0.0, 0.0) not in rgb and (0.0, 0.5, 0.0) not in rgb and (0.0, 1.0, 0.0) not in rgb
    assert len(set(plots.PALETTE)) == len(plots.PALETTE)


def test_ablation_verdicts_are_blue_against_vermillion_never_red_against_green(tmp_path):
    fig = plots.plot_ablation(ablation_study(tmp_path))
    bars = {to_rgb(p.get_facecolor()) for p in fig.axes[0].patches}
    assert to_rgb(plots.PALETTE[0]) in bars  # – weight-dropping: the paper's direction
    assert to_rgb(plots.PALETTE[3]) in bars  # – full sized embedding: the opposite one
    assert not {to_rgb("C2"), to_rgb("C3"), to_rgb("red"), to_rgb("green")} & bars


def test_ablation_notes_mark_the_rows_they_name(tmp_path):
    fig = plots.plot_ablation(ablation_study(tmp_path), notes={"– AR/TAR": "confounded"})
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert "– AR/TAR (3 seeds)\nconfounded" in labels
    assert sum("confounded" in text for text in labels) == 1
    hatched = [p for p in fig.axes[0].patches if p.get_hatch()]
    assert len(hatched) == 1


def tick_texts(ax, axis="y") -> list[str]:
    ax.figure.canvas.draw()
    which = ax.yaxis if axis == "y" else ax.xaxis
    low, high = sorted(which.get_view_interval())
    ticks = which.get_major_ticks() + which.get_minor_ticks()
    return [t.label1.get_text() for t in ticks
            if t.label1.get_visible() and t.label1.get_text() and low <= t.get_loc() <= high]


@pytest.mark.parametrize("top, bottom", [(700.0, 380.0), (3000.0, 90.0), (420.0, 395.0)])
def test_log_perplexity_axes_label_ticks_with_plain_numbers(top, bottom):
    epochs = 10
    valid = [top * (bottom / top) ** (e / (epochs - 1)) for e in range(epochs)]
    history = awdlib.History([{"epoch": e + 1, "phase": "train", "train_ppl": v, "valid_ppl": v,
                               "averaging": False} for e, v in enumerate(valid)])
    ax = plots.plot_curves({"run": history})
    assert ax.get_yscale() == "log"
    texts = tick_texts(ax)
    assert texts, "a log axis without a single labelled tick"
    assert all(re.fullmatch(r"\d+", t) for t in texts), texts  # 400, never 4×10² or 1e+03
    if top / bottom < 3:
        assert len(texts) >= 2 or bottom < 400 < top


def test_histogram_densities_are_plain_decimals():
    ax = plots.plot_histograms({"a": torch.randn(5000).abs()})
    texts = tick_texts(ax)
    assert texts and all(re.fullmatch(r"\d+(\.\d+)?", t) for t in texts), texts
    assert any(t.startswith("0.") for t in texts)  # densities below 1 written out, not 10⁻²


def test_study_gives_each_rung_its_own_panel_with_at_most_six_lines(tmp_path):
    ladder, runs = ladder_study(tmp_path)
    fig = plots.plot_study(ladder, runs, LADDER)
    panels, ladder_panel = fig.axes[:len(LADDER)], fig.axes[len(LADDER)]
    assert [ax.get_title() for ax in panels] == LADDER
    for k, ax in enumerate(panels):
        assert len(ax.lines) <= 6
        own = [line for line in ax.lines if to_rgb(line.get_color()) == to_rgb(plots.colour(k))]
        assert len(own) == len(SEEDS)  # this rung's seeds, in its ladder colour
        assert len({line.get_linestyle() for line in own}) == len(SEEDS)  # told apart by style
        assert len(ax.lines) - len(own) == (len(SEEDS) if k else 0)  # the rung before, in grey
    assert panels[1].get_shared_y_axes().joined(panels[0], panels[3])  # one scale to compare on
    assert len(ladder_panel.get_yticklabels()) == len(LADDER)
    assert all(re.fullmatch(r"\d+", t) for t in tick_texts(panels[0])), tick_texts(panels[0])


def test_study_panel_draws_only_the_part_a_run_adds_to_the_rung_before(tmp_path):
    names = ["+ NT-ASGD", "+ fine-tuning"]
    ladder, runs = ladder_study(tmp_path, names)
    base = [r for r in runs if r["name"] == "+ NT-ASGD"]
    runs = base + [{**r, "name": "+ fine-tuning", "valid_curve": r["valid_curve"] + [300.0, 290.0]}
                   for r in base]
    fig = plots.plot_study(ladder, runs, names)
    tuned = [line for line in fig.axes[1].lines
             if to_rgb(line.get_color()) == to_rgb(plots.colour(1))]
    assert [list(line.get_xdata()) for line in tuned] == [[20, 21, 22]] * len(SEEDS)


def test_study_with_one_rung_and_one_without_runs(tmp_path):
    ladder, runs = ladder_study(tmp_path, LADDER[:2])
    fig = plots.plot_study(ladder, [r for r in runs if r["name"] == LADDER[0]], LADDER[:2])
    assert "no runs yet" in [t.get_text() for t in fig.axes[1].texts]
    fig = plots.plot_study(ladder, runs, LADDER[:1])
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == len(SEEDS)


def test_crossover_is_where_the_reference_stays_ahead_to_the_last_shared_epoch():
    from awdlib.results import crossover

    assert crossover([900, 600, 500, 450], [800, 550, 520, 530, 540]) == 3
    assert crossover([900, 500, 600, 450], [800, 550, 520, 530]) == 4  # ahead at 2, behind at 3
    assert crossover([900, 600], [800, 550]) is None  # never ahead
    assert crossover([500, 600], [800, 550]) is None  # ahead, then not: not for good
    assert crossover([1, 2], [1, 3]) == 2  # a tie is not ahead
