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


def ar_tar_explorer(raw, p: float = 0.4, feature: int = 0, steps: int = 20, seed: int = 0):
    """Sliders for AR's ``alpha`` and TAR's ``beta`` (paper Section 4.6) over recorded last-layer
    outputs ``raw`` of shape ``(time, features)``: the two penalties' values, and where ``steps``
    steps of gradient descent on the penalties alone would pull one feature's trajectory. AR pulls
    every value toward 0; TAR pulls neighbouring steps toward each other (a smoother curve). The step
    size shrinks as alpha and beta grow (to keep the descent stable), so the picture shows the
    *balance* of the two pulls.

    AR sees the output after a locked dropout mask of rate ``p`` (one mask for all steps, seeded), as
    in training; TAR sees the raw output.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    import torch

    from .regularize import activation_regularization, temporal_activation_regularization

    raw = raw.detach().unsqueeze(1)  # (time, 1, features): the regularisers' layout
    generator = torch.Generator().manual_seed(seed)
    mask = (torch.rand(1, 1, raw.size(2), generator=generator) >= p).float() / (1 - p)

    def penalties(h, alpha, beta):
        return (activation_regularization(h * mask, alpha), temporal_activation_regularization(h, beta))

    def show(alpha: float, beta: float):
        h = raw.clone().requires_grad_(True)
        # per element, AR's curvature is 2·alpha·mask² and TAR's at most 8·beta: a step of a quarter
        # of the inverse keeps the descent stable
        lr = 0.25 / (2 * alpha * mask.max().item() ** 2 + 8 * beta + 1e-9)
        for _ in range(steps):  # descend on AR + TAR only, to see where they pull
            grad, = torch.autograd.grad(sum(penalties(h, alpha, beta)), h)
            with torch.no_grad():
                h -= lr * grad * h.numel()  # the penalties are means: undo the 1/numel
        ar, tar = penalties(raw, alpha, beta)
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3), width_ratios=[1, 3])
        left.bar(["AR", "TAR"], [ar.item(), tar.item()], color=["C0", "C1"])
        left.set_title(f"penalties on the recorded outputs\nAR {ar.item():.4f}, TAR {tar.item():.4f}",
                       fontsize=9)
        kept = "kept" if mask[0, 0, feature] else "dropped by the mask, so AR ignores it"
        right.plot(raw[:, 0, feature], color="0.5", label=f"recorded h_t, feature {feature} ({kept})")
        right.plot(h.detach()[:, 0, feature], color="C3",
                   label=f"after {steps} steps on alpha·AR + beta·TAR alone")
        right.axhline(0, color="k", lw=0.5)
        right.set_xlabel("time step t")
        right.legend(fontsize=8)
        right.set_title("where the penalties pull: AR toward 0, TAR toward a smooth curve", fontsize=9)
        plt.show()

    def slider(value, name):
        return widgets.FloatSlider(value=value, min=0.0, max=4.0, step=0.25, description=name,
                                   continuous_update=False)
    return widgets.interactive(show, alpha=slider(2.0, "alpha"), beta=slider(1.0, "beta"))


def cache_explorer(inputs, windows=(100, 500, 2000), theta: float = 1.0, lambdah: float = 0.1):
    """Sliders for the cache's ``theta``, ``lambdah`` and ``window`` over precomputed
    :func:`awdlib.cache.cache_inputs` (a split's hidden states and softmax, computed once): each move
    re-scores the whole split with :func:`awdlib.cache.cache_pointer_nll` and prints its perplexity
    with and without the cache (paper's "Pointer models"; Grave et al. 2016, eq. 2-3)."""
    import math

    import ipywidgets as widgets

    plain = math.exp(inputs.loss(windows[0], theta, 0.0))

    def show(window: int, theta: float, lambdah: float):
        ppl = math.exp(inputs.loss(window, theta, lambdah))
        print(f"perplexity over {len(inputs.targets):,} tokens: without the cache {plain:.2f}, "
              f"with it {ppl:.2f} ({ppl - plain:+.2f})")

    return widgets.interactive(
        show,
        window=widgets.SelectionSlider(options=list(windows), value=windows[len(windows) // 2],
                                       description="window", continuous_update=False),
        theta=widgets.FloatSlider(value=theta, min=0.0, max=2.0, step=0.05, description="theta",
                                  continuous_update=False),
        lambdah=widgets.FloatSlider(value=lambdah, min=0.0, max=0.6, step=0.01,
                                    description="lambda", continuous_update=False))
