"""Dynamic evaluation (Krause, Kahembwe, Murray & Renals, 2018, *Dynamic Evaluation of Neural Sequence
Models*): the trained model keeps learning from the text it is scoring.

The stream of ids (batch 1, the LSTM state carried throughout) is cut into segments ``s_1, s_2, ...``
of ``segment_len`` tokens: 5 for the paper's AWD-LSTM results; 20 runs 3x faster (the authors' README,
for an AWD-QRNN on PTB: test perplexity 50.5 with either). Segment ``s_i`` is scored with the current
weights ``theta_{i-1}``; the gradient of its mean cross-entropy ``L(s_i)`` is taken through ``s_i``
only (the state entering the segment is detached), and one step on it gives ``theta_i``, which scores
``s_{i+1}``. ``theta_0 = theta_g`` are the trained weights. Every token is scored before any step has
seen it, so the result is a proper log-likelihood of the stream. Dropout stays off (``model.eval()``)
while adapting.

Two update rules (the paper's Section 5 builds the second from the first; Section 7.1 applies it to
the AWD-LSTM on PTB and WikiText-2):

- **SGD** (``ms_grads=None``): Mikolov et al.'s (2010) step, with the decay toward the trained weights
  ("global prior") of Krause et al. (2017)::

      theta_i = theta_{i-1} - eta grad L(s_i) + lambda (theta_g - theta_{i-1})

- **RMS with an RMS global prior**, the paper's final rule, behind its AWD-LSTM results. The gradient
  is divided elementwise by the root of ``MS_g``, the mean squared gradient over ``N_b`` training
  batches (:func:`gradient_statistics`), and each weight decays toward ``theta_g`` at a rate
  proportional to that root, normalised to mean 1 over the weights and clipped so that no rate
  exceeds 1::

      MS_g     = 1/N_b sum_k (grad L_k)^2
      RMS_norm = sqrt(MS_g) / mean(sqrt(MS_g)),  clipped at 1/lambda
      theta_i  = theta_{i-1} - eta grad L(s_i) / (sqrt(MS_g) + epsilon)
                 + lambda RMS_norm * (theta_g - theta_{i-1})

``eta`` (``lr``) and ``lambda`` (``decay``) are tuned on validation data (:func:`search_dynamic`); the
test split is then scored once with the chosen values (:func:`tune_and_test`).

**Paper vs the authors' code** (benkrause/dynamic-evaluation, ``dynamiceval.py``): we follow the
paper's equations. The authors' README says that the code's first version scaled two terms
differently from them. It took the root of the *summed* squared gradients, so its ``eta`` and
``epsilon`` are ``sqrt(N_b)`` times the paper's, and it divided by the *sum* of the per-tensor means,
so its ``lambda`` is (number of weight tensors) times the paper's. The paper's AWD-LSTM results came
from that version with ``lr 0.002, lamb 0.02, epsilon 0.001`` on both PTB and WikiText-2; its
``--oldhyper`` flag converts them (on PTB, 14 weight tensors and ``N_b = 1,859`` batches of 100 x 5:
about 4.6e-5, 1.4e-3 and 2.3e-5, near the current defaults :data:`AUTHORS_SETTINGS`). The current
code divides by the *mean* of the per-tensor means, each tensor counting once whatever its size;
the paper's ``RMS_norm`` has mean 1 over the weights themselves, which is what :func:`decay_rates`
computes. The authors' ``eta`` and ``epsilon`` therefore carry over, their ``lambda`` only up to the
ratio of the two means. As in their code: the gradient statistics at batch 100 with the segment
length as the window, in eval mode, the state carried from window to window; ``L`` the mean over the
segment's tokens (a short last segment too).
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from .cache import CacheInputs
from .checks import check_int, is_number, require
from .data import batchify, bptt_batches
from .model import AWDLSTM, detach_hidden
from .train import evaluate

# benkrause/dynamic-evaluation, dynamiceval.py as its README now describes it: the defaults, "tuned for
# AWD-LSTM + dynamic eval on PTB", and its grid (both lists scaled by segment_len / 5 there).
AUTHORS_SETTINGS = dict(lr=5e-5, decay=2e-3, epsilon=2e-5, segment_len=5)
AUTHORS_GRID = dict(lrs=(3e-5, 4e-5, 5e-5, 6e-5, 7e-5, 1e-4), decays=(1e-3, 2e-3, 3e-3, 5e-3))
AUTHORS_FAST_TOKENS = 30_000  # --gridfast: the grid searched on the first 30k validation tokens
STAT_BATCH_SIZE = 100  # the authors' batch size for the gradient statistics


def check_dynamic_params(lr: float, decay: float, segment_len: int = 5,
                         epsilon: float = AUTHORS_SETTINGS["epsilon"]) -> None:
    """Raise ``ValueError`` naming the bad value and what is allowed."""
    require(is_number(lr) and lr >= 0, "lr", lr,
            "a finite number >= 0 (the step size eta; 0 scores without adapting)")
    require(is_number(decay) and 0 <= decay <= 1, "decay", decay,
            "between 0 and 1 (lambda, the pull back toward the trained weights per segment; 0: none)")
    check_int("segment_len", segment_len, minimum=1)  # tokens per step; the paper uses 5
    require(is_number(epsilon) and epsilon > 0, "epsilon", epsilon,
            "a finite number > 0 (added to the root mean square gradient; the authors use 2e-5)")


def _check_ids(ids: torch.Tensor, name: str = "ids") -> None:
    if not isinstance(ids, torch.Tensor) or ids.dim() != 1 or len(ids) < 2:
        shape = tuple(ids.shape) if isinstance(ids, torch.Tensor) else type(ids).__name__
        raise ValueError(f"{name} must be a 1-D id stream of at least 2 tokens (e.g. corpus.valid), "
                         f"got {shape}")


def _adapted(model: AWDLSTM) -> list[tuple[str, torch.nn.Parameter]]:
    """The weights dynamic evaluation changes: every trainable parameter (a tied matrix once)."""
    return [(name, p) for name, p in model.named_parameters() if p.requires_grad]


def check_ms_grads(model: AWDLSTM, ms_grads: dict[str, torch.Tensor]) -> None:
    """``ms_grads`` must hold one finite, non-negative tensor per trainable parameter of ``model``, of
    its shape, as :func:`gradient_statistics` of this model returns, and not be all zero."""
    fix = "compute it for this model: ms_grads = gradient_statistics(model, corpus.train)"
    params = dict(_adapted(model))
    missing, unexpected = sorted(set(params) - set(ms_grads)), sorted(set(ms_grads) - set(params))
    if missing or unexpected:
        raise ValueError(f"ms_grads does not fit this model: missing {missing}, unexpected "
                         f"{unexpected}; {fix}")
    for name, p in params.items():
        ms = ms_grads[name]
        if ms.shape != p.shape:
            raise ValueError(f"ms_grads does not fit this model: {name} has shape "
                             f"{tuple(ms.shape)}, the model's {tuple(p.shape)}; {fix}")
        if not (torch.isfinite(ms).all() and (ms >= 0).all()):
            raise ValueError(f"ms_grads[{name!r}] must be finite and >= 0 (mean squared gradients); "
                             f"{fix}")
    if not any(ms.any() for ms in ms_grads.values()):
        raise ValueError(f"ms_grads is all zero: the model's loss has no gradient on that data; {fix}")


# ------------------------------------------------------------------------------ the update rule
def decay_rates(ms_grads: list[torch.Tensor], decay: float) -> list[torch.Tensor]:
    """``min(lambda RMS_norm, 1)`` per weight, with ``RMS_norm = sqrt(MS_g) / mean(sqrt(MS_g))``, the
    mean taken over every weight of every tensor: the paper's ``RMS_norm`` has mean 1 over the
    weights (the authors' code averages per-tensor means instead; module docstring)."""
    rms = [ms.sqrt() for ms in ms_grads]
    mean = sum(r.double().sum() for r in rms) / sum(r.numel() for r in rms)
    return [(r * (decay / mean)).to(r.dtype).clamp_(max=1.0) for r in rms]


def _step(params, grads, start, lr: float, rates, denominators) -> None:
    """One update in place: ``theta += rate * (theta_g - theta)`` (``rates``: one number for SGD,
    :func:`decay_rates` for the RMS rule, None for no decay), then ``theta -= lr * grad`` (SGD,
    ``denominators`` None) or ``theta -= lr * grad / (sqrt(MS_g) + epsilon)``. Both terms use
    ``theta_{i-1}``: the gradient was taken there, and the decay comes first."""
    if rates is not None:
        torch._foreach_lerp_(params, start, rates)  # theta + rate (theta_g - theta)
    if denominators is None:
        torch._foreach_add_(params, grads, alpha=-lr)
    else:
        torch._foreach_addcdiv_(params, grads, denominators, value=-lr)


def _progress(iterable, show: bool, total: int, desc: str):
    if not show:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False)


def _score(out, targets: torch.Tensor, kept: list | None) -> torch.Tensor:
    """A segment's summed cross-entropy; with ``kept``, also append its per-token ``(log p(target),
    last-layer output, target)``."""
    logits = out.logits.flatten(0, 1)
    if kept is None:  # summed as train.evaluate sums, so that lr = 0 reproduces it bit for bit
        return F.cross_entropy(logits, targets, reduction="sum")
    token_nll = F.cross_entropy(logits, targets, reduction="none")
    kept.append((-token_nll.detach(), out.dropped_outputs[-1][:, 0].detach(), targets))
    return token_nll.sum()


def _adapting_pass(model: AWDLSTM, ids: torch.Tensor, lr: float, decay: float, segment_len: int,
                   ms_grads: dict[str, torch.Tensor] | None, epsilon: float, keep: bool,
                   progress: bool) -> tuple[float, CacheInputs | None]:
    """The mean NLL per token over ``ids``, adapting as it goes (module docstring), and with ``keep``
    what :class:`~awdlib.cache.CacheInputs` holds, per token, from the adapting model. The model's
    weights and train/eval mode are restored afterwards, also after an exception."""
    check_dynamic_params(lr, decay, segment_len, epsilon)
    _check_ids(ids)
    if ms_grads is not None:
        check_ms_grads(model, ms_grads)
    names, params = map(list, zip(*_adapted(model)))
    start = [p.detach().clone() for p in params]  # theta_g
    if ms_grads is None:
        rates, denominators = float(decay) or None, None
    else:
        ms = [ms_grads[n].to(p) for n, p in zip(names, params)]
        rates = decay_rates(ms, decay) if decay else None
        denominators = torch._foreach_add(torch._foreach_sqrt(ms), epsilon)
    device = params[0].device
    data = batchify(ids.to(device), 1)  # (T, 1), as train.evaluate lays out batch 1
    was_training = model.training
    model.eval()
    adapting = lr > 0  # at lr = 0 every step is the identity: score without taking gradients
    total = torch.zeros((), dtype=torch.float64, device=device)
    kept = [] if keep else None
    hidden = model.init_hidden(1)
    segments = _progress(bptt_batches(data, segment_len, variable=False), progress,
                         math.ceil((len(data) - 1) / segment_len), "dynamic evaluation")
    try:
        for inputs, targets, seq_len in segments:
            with torch.set_grad_enabled(adapting):
                out = model(inputs, detach_hidden(hidden))
                segment_nll = _score(out, targets.flatten(), kept)  # with theta_{i-1}
            hidden = out.hidden
            total += segment_nll.detach()
            if adapting:
                grads = torch.autograd.grad(segment_nll / seq_len, params, materialize_grads=True)
                with torch.no_grad():
                    _step(params, grads, start, lr, rates, denominators)
    finally:
        with torch.no_grad():
            torch._foreach_copy_(params, start)
        model.train(was_training)
    inputs = CacheInputs(*(torch.cat(part) for part in zip(*kept))) if keep else None
    return total.item() / (len(data) - 1), inputs


def dynamic_evaluate(model: AWDLSTM, ids: torch.Tensor, lr: float, decay: float,
                     segment_len: int = 5, ms_grads: dict[str, torch.Tensor] | None = None, *,
                     epsilon: float = AUTHORS_SETTINGS["epsilon"], progress: bool = False) -> float:
    """Mean cross-entropy per predicted token over the 1-D id stream ``ids`` at batch 1, adapting the
    weights after every ``segment_len`` tokens (module docstring): with ``ms_grads``
    (:func:`gradient_statistics`) by the paper's "RMS with an RMS global prior", without by SGD with a
    uniform decay ``decay`` toward the trained weights.

    ``lr = 0`` changes nothing and gives exactly ``evaluate(model, ids, bptt=segment_len,
    batch_size=1)`` (and ``evaluate(model, ids, batch_size=1)`` up to float rounding). The model
    passed in is unchanged afterwards: the same weights bit for bit, the same train/eval mode, its
    ``.grad`` untouched (it is adapted in place and restored, also on an exception)."""
    return _adapting_pass(model, ids, lr, decay, segment_len, ms_grads, epsilon, False, progress)[0]


def dynamic_cache_inputs(model: AWDLSTM, ids: torch.Tensor, lr: float, decay: float,
                         segment_len: int = 5, ms_grads: dict[str, torch.Tensor] | None = None, *,
                         epsilon: float = AUTHORS_SETTINGS["epsilon"],
                         progress: bool = False) -> CacheInputs:
    """:func:`dynamic_evaluate`'s pass, keeping per token what the cache pointer needs: the adapting
    model's log-probability of each target ``(T,)``, the last layer's outputs ``(T, H)`` and the
    targets ``(T,)``, each from the weights that scored that token.

    Stacking the cache on dynamic evaluation is then one call: the cache mixes the adapted model's
    softmax with a pointer over its hidden states, ``inputs.loss(window, theta, lambdah)`` (or
    :func:`~awdlib.cache.search_cache` on it). ``-inputs.target_log_probs`` is the per-token loss
    (e.g. to plot along an article against ``lr = 0``); its mean is :func:`dynamic_evaluate`'s
    result up to the order of the float sums."""
    return _adapting_pass(model, ids, lr, decay, segment_len, ms_grads, epsilon, True, progress)[1]


# ------------------------------------------------------------------------- gradient statistics
def gradient_statistics(model: AWDLSTM, train_ids: torch.Tensor, *, segment_len: int = 5,
                        batch_size: int = STAT_BATCH_SIZE, max_batches: int | None = None,
                        progress: bool = False) -> dict[str, torch.Tensor]:
    """``MS_g = 1/N_b sum_k (grad L_k)^2`` per trainable parameter (the paper, Section 5): the mean
    over training batches of the squared gradient of each batch's mean cross-entropy, for the RMS
    rule of :func:`dynamic_evaluate`.

    ``train_ids`` (1-D) is cut into ``batch_size`` columns and read in windows of ``segment_len``
    steps, the state carried from window to window and detached between them, in eval mode (no
    dropout), as the authors' code does (batch 100, their segment length as the window); the batch
    size matters, since larger batches give smaller mean squares. ``max_batches`` stops after that
    many windows (the authors' ``--max_batches``; default: the whole split). Returns ``{name:
    MS_g}``, keyed like ``model.named_parameters()``; the model is left as it was (weights, mode,
    ``.grad``). ``progress`` shows a bar (tqdm)."""
    _check_ids(train_ids, "train_ids")
    check_int("segment_len", segment_len, minimum=1)
    check_int("batch_size", batch_size, minimum=1)
    if max_batches is not None:
        check_int("max_batches", max_batches, minimum=1)
    names, params = map(list, zip(*_adapted(model)))
    device = params[0].device
    data = batchify(train_ids.to(device), batch_size)
    n_windows = math.ceil((len(data) - 1) / segment_len)
    n_batches = min(n_windows, max_batches or n_windows)
    sums = [torch.zeros_like(p) for p in params]
    was_training = model.training
    model.eval()
    hidden = model.init_hidden(batch_size)
    windows = itertools.islice(bptt_batches(data, segment_len, variable=False), n_batches)
    try:
        for inputs, targets, _ in _progress(windows, progress, n_batches, "gradient statistics"):
            out = model(inputs, detach_hidden(hidden))
            hidden = out.hidden
            loss = F.cross_entropy(out.logits.flatten(0, 1), targets.flatten())
            grads = torch.autograd.grad(loss, params, materialize_grads=True)
            torch._foreach_addcmul_(sums, grads, grads)
    finally:
        model.train(was_training)
    torch._foreach_div_(sums, n_batches)
    return dict(zip(names, sums))


# ---------------------------------------------------------------------------------- the search
class DynamicSearch(NamedTuple):
    """A grid search's result: ``losses[i, j]`` is the mean loss at ``lrs[i]``, ``decays[j]``;
    ``best`` the lowest point as a dict (``lr``, ``decay``, ``loss``); ``plain_loss`` the model
    without adaptation; ``tokens`` the number of ids searched on (the first ``tokens`` of the split)."""

    lrs: list[float]
    decays: list[float]
    losses: torch.Tensor
    best: dict
    plain_loss: float
    tokens: int


def default_grid(segment_len: int = 5) -> dict[str, list[float]]:
    """:data:`AUTHORS_GRID` scaled by ``segment_len / 5``, as the authors' code scales it."""
    scale = segment_len / 5
    return {key: [v * scale for v in values] for key, values in AUTHORS_GRID.items()}


def search_dynamic(model: AWDLSTM, ids: torch.Tensor, ms_grads: dict[str, torch.Tensor] | None,
                   lrs=None, decays=None, *, segment_len: int = 5,
                   epsilon: float = AUTHORS_SETTINGS["epsilon"], first_tokens: int | None = None,
                   known: dict | None = None, progress: bool = False) -> DynamicSearch:
    """Grid search of ``(lr, decay)`` by :func:`dynamic_evaluate` on ``ids`` (validation data, as in
    the paper), each point a full adapting pass from the trained weights. ``lrs`` / ``decays``
    default to the authors' grid (:func:`default_grid`). ``first_tokens`` searches on the first ids
    only (the authors' fast grid: :data:`AUTHORS_FAST_TOKENS`).

    Resumable: ``known`` is a dict ``{(lr, decay): loss}`` that the search reads and fills as it
    goes; points already in it are not run again. Keep one per model, split, ``ms_grads``,
    ``segment_len``, ``epsilon`` and ``first_tokens``, and pass it again after an interruption (or
    to add points). Ties go to the first grid point; a diverged point (non-finite loss) never wins
    unless all did."""
    grid = default_grid(segment_len)
    lrs = [float(v) for v in (grid["lrs"] if lrs is None else lrs)]
    decays = [float(v) for v in (grid["decays"] if decays is None else decays)]
    if not (lrs and decays):
        raise ValueError("lrs and decays each need at least one value")
    for lr in lrs:
        for decay in decays:
            check_dynamic_params(lr, decay, segment_len, epsilon)
    _check_ids(ids)
    if first_tokens is not None:
        check_int("first_tokens", first_tokens, minimum=2)
        ids = ids[:first_tokens]
    if ms_grads is not None:
        check_ms_grads(model, ms_grads)
    known = {} if known is None else known
    points = [(i, j) for i in range(len(lrs)) for j in range(len(decays))]
    losses = torch.empty(len(lrs), len(decays), dtype=torch.float64)
    for i, j in _progress(points, progress, len(points), "dynamic evaluation grid"):
        key = (lrs[i], decays[j])
        if key not in known:
            known[key] = dynamic_evaluate(model, ids, lrs[i], decays[j], segment_len, ms_grads,
                                          epsilon=epsilon)
        losses[i, j] = known[key]
    i, j = (int(k) for k in torch.unravel_index(losses.nan_to_num(math.inf).argmin(), losses.shape))
    best = dict(lr=lrs[i], decay=decays[j], loss=losses[i, j].item())
    plain = evaluate(model, ids, bptt=segment_len, batch_size=1)
    return DynamicSearch(lrs, decays, losses, best, plain, len(ids))


def tune_and_test(model: AWDLSTM, valid: torch.Tensor, test: torch.Tensor,
                  ms_grads: dict[str, torch.Tensor] | None, *, segment_len: int = 5,
                  epsilon: float = AUTHORS_SETTINGS["epsilon"], first_tokens: int | None = None,
                  progress: bool = False, **grid) -> dict:
    """Dynamic evaluation put on a trained model as the paper does: ``(lr, decay)`` searched on the
    validation ids (:func:`search_dynamic`, on its ``first_tokens`` if given; ``grid`` its ``lrs`` /
    ``decays``), then the whole validation split (when the search saw only part of it) and the test
    split scored once with the chosen values. Returns them and the perplexities without adaptation
    (``*_plain_ppl``, batch 1) and with it (``valid_ppl``, ``test_ppl``)."""
    settings = dict(segment_len=segment_len, ms_grads=ms_grads, epsilon=epsilon, progress=progress)
    search = search_dynamic(model, valid, first_tokens=first_tokens, **settings, **grid)
    chosen = {k: search.best[k] for k in ("lr", "decay")}
    whole = search.tokens == len(valid)
    valid_loss = search.best["loss"] if whole else dynamic_evaluate(model, valid, **chosen,
                                                                    **settings)
    valid_plain = search.plain_loss if whole else evaluate(model, valid, segment_len, 1)
    return {**chosen, "segment_len": segment_len, "search_tokens": search.tokens,
            "valid_plain_ppl": math.exp(valid_plain), "valid_ppl": math.exp(valid_loss),
            "test_plain_ppl": math.exp(evaluate(model, test, segment_len, 1)),
            "test_ppl": math.exp(dynamic_evaluate(model, test, **chosen, **settings))}
