"""ipywidgets the notebooks share (ipywidgets is imported lazily, inside each function).

Under papermill and nbval, widget cells run but their live output is not captured; such cells are
tagged ``nbval-ignore-output`` in the notebooks.
"""

from __future__ import annotations


def weight_drop_mask_explorer(hidden_size: int = 16, seed: int = 0, p: float = 0.5):
    """A slider for the weight-drop rate ``p`` over the dropped ``W_hh`` of a small LSTM (paper
    Section 2), drawn transposed: rows = units of the previous ``h``, columns = the 4 gates x
    ``hidden_size`` units."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    import torch

    from .dropout import WeightDrop
    from .plots import plot_mask

    torch.manual_seed(seed)
    weight_drop = WeightDrop(torch.nn.LSTM(hidden_size, hidden_size), p)

    def show(p: float):
        weight_drop.p = p
        torch.manual_seed(seed)
        dropped = weight_drop.dropped_weights()["weight_hh_l0"]
        _, ax = plt.subplots(figsize=(8, 2.6))
        plot_mask(dropped.T, ax, f"W_hh after weight drop, p = {p:.2f}: kept "
                  f"{(dropped != 0).float().mean():.0%} (black: dropped, at every step)",
                  xlabel="to gate unit: i | f | g | o", ylabel="from unit of $h_{t-1}$")
        for k in (1, 2, 3):
            ax.axvline(hidden_size * k - 0.5, color="red", lw=1)
        plt.show()

    slider = widgets.FloatSlider(value=p, min=0.0, max=0.9, step=0.05, description="p",
                                 continuous_update=False)
    return widgets.interactive(show, p=slider)


def mask_over_time_explorer(standard, locked, t: int = 0):
    """Step through time ``t`` and see the ``(batch, features)`` mask at ``t`` of standard dropout
    (a fresh mask per step) beside locked dropout's (one mask for all steps; paper Section 4.2).

    ``standard`` and ``locked`` are ``(time, batch, features)`` masks, e.g. ``dropout(ones)``.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    from .plots import plot_mask

    def show(t: int):
        fig, axes = plt.subplots(1, 2, figsize=(8, 3))
        plot_mask(standard[t], axes[0], f"standard dropout, t = {t}", "feature", "example")
        plot_mask(locked[t], axes[1], f"locked dropout, t = {t}", "feature", "example")
        plt.show()

    slider = widgets.IntSlider(value=t, min=0, max=len(standard) - 1, description="t")
    return widgets.interactive(show, t=slider)


def trigger_explorer(curves: dict, n: int = 5, max_n: int = 10, ylabel: str = "validation perplexity"):
    """Pick a validation curve and drag the trigger's window ``n`` (paper Algorithm 1): the figure
    marks the epoch at which NT-ASGD would switch to averaging. ``curves`` maps names to per-epoch
    values (any monotone transform of the loss, e.g. perplexity, fires at the same check)."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    from .optim import NonMonotonicTrigger
    from .plots import plot_trigger

    def show(curve: str, n: int):
        values = curves[curve]
        trigger = NonMonotonicTrigger(n)
        for v in values:
            trigger.step(v)
        plot_trigger(values, n, ylabel=ylabel)
        plt.show()
        print(f"{curve}: " + (f"switches to averaging after epoch {trigger.fired_at + 1}"
                              if trigger.fired else f"never switches in {len(values)} epochs"))

    names = widgets.Dropdown(options=list(curves), description="curve")
    window = widgets.IntSlider(value=n, min=0, max=max_n, description="n", continuous_update=False)
    return widgets.interactive(show, curve=names, n=window)
