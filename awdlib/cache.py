"""The continuous cache pointer (Grave, Joulin & Usunier, 2016) on top of a trained AWD-LSTM.

The AWD-LSTM paper (Merity et al., 2017, "Pointer models") adds it after training; it needs no training
of its own. With ``h_t`` the last LSTM layer's output at step ``t`` (the vector fed to the tied softmax)
and ``x_{i+1}`` the word that followed step ``i``, the cache at step ``t`` holds the pairs
``(h_i, x_{i+1})`` of the last ``window`` steps before ``t`` and (Grave et al., eq. 2 and 3)::

    p_cache(w | t) = sum_i 1{x_{i+1} = w} exp(theta h_t . h_i) / sum_i exp(theta h_t . h_i)
    p(w | t)       = (1 - lambdah) p_vocab(w | h_t) + lambdah p_cache(w | t)

with both sums over ``t - window <= i < t``.

The official settings, tuned on validation data: PTB window 500, theta 1.0, lambdah 0.1 (the paper's
text says window 2000); WikiText-2 window 3785, theta 0.662, lambdah 0.1279 (:data:`OFFICIAL_SETTINGS`).

**Short history.** The first steps of a split have fewer than ``window`` earlier steps. The paper's
definition uses whatever history exists (``history="paper"``, the default); step 0 has none and gets the
plain softmax. The official ``pointer.py`` uses the plain softmax until the window is full
(``history="official"``: the cache from step ``window`` on). It also, as a side effect of trimming its
history between chunks, skips the cache at the first step of every chunk once the window is full, and
starts one step late (step ``window + 1``); neither quirk is reproduced, so that the result does not
depend on the chunk length.

Tensor layouts: ``log_probs`` ``(T, V)`` (or ``(T,)``, the log-probability of each target),
``hiddens`` ``(T, H)``, ``targets`` ``(T,)``; time runs along the first dimension.
"""

from __future__ import annotations

import itertools
import math
import numbers
from typing import NamedTuple

import torch
import torch.nn.functional as F

from .model import AWDLSTM
from .published import PUBLISHED

OFFICIAL_SETTINGS = {
    "ptb": dict(window=500, theta=1.0, lambdah=0.1),
    "wikitext-2": dict(window=3785, theta=0.662, lambdah=0.1279),
}
HISTORY_RULES = ("paper", "official")
# The AWD-LSTM paper's perplexity without and with the cache (Tables 1 and 2; full scale, tuned on
# validation): (without, with), read from awdlib.published, where every published number lives.
PAPER_CACHE = {dataset: {split: (sources["paper"]["fine-tuned"][i], sources["paper"]["+ cache"][i])
                         for i, split in enumerate(("valid", "test"))}
               for dataset, sources in PUBLISHED.items()}


FLOAT32_MAX = torch.finfo(torch.float32).max


def check_cache_params(window: int, theta: float, lambdah: float, history: str = "paper") -> None:
    """Raise ``ValueError`` naming the bad value: ``window`` an integer >= 1, ``theta`` a number
    float32 can hold (the scores ``theta h_t . h_i`` are float32), ``0 <= lambdah <= 1``, ``history``
    one of ``"paper"``, ``"official"``."""
    if isinstance(window, bool) or not isinstance(window, numbers.Integral) or window < 1:
        raise ValueError(f"window must be an integer >= 1 (the number of earlier steps the cache "
                         f"holds), got {window!r}")
    if not isinstance(theta, numbers.Real) or not abs(theta) <= FLOAT32_MAX:  # also rejects nan
        raise ValueError(f"theta must be a finite number of at most {FLOAT32_MAX:.3g} in size (the "
                         f"flatness of the cache's attention; the official runs use 0.662-1.0), "
                         f"got {theta!r}")
    if not isinstance(lambdah, numbers.Real) or not 0 <= lambdah <= 1:
        raise ValueError(f"lambdah must be between 0 and 1 (the cache's weight in the mix; "
                         f"0 switches the cache off), got {lambdah!r}")
    if history not in HISTORY_RULES:
        raise ValueError(f"history must be 'paper' (use the history there is) or 'official' "
                         f"(plain softmax until the window is full), got {history!r}")


def _default_block(window: int) -> int:
    # Each block of queries scores against block + window keys: a short block wastes little on the
    # masked triangle, a long one saves per-block overhead. Memory: block x (block + window) scores.
    return max(32, min(128, window // 4))


def cache_log_probs(hiddens: torch.Tensor, targets: torch.Tensor, window: int, theta, *,
                    history: str = "paper", past_hiddens: torch.Tensor | None = None,
                    past_targets: torch.Tensor | None = None,
                    block_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log p_cache(targets[t] | t), uses_cache)``: the first half of :func:`cache_pointer_nll`,
    independent of ``lambdah`` (a search re-mixes it for every ``lambdah``).

    ``log p_cache`` is ``(T,)`` for one ``theta``, ``(len(theta), T)`` for a sequence of them (the
    scores ``h_t . h_i`` are then computed once for all). It is ``-inf`` where the target never
    occurred in the window, and meaningless where ``uses_cache`` ``(T,)`` is False (no history under
    the chosen rule; the plain softmax applies there). Computed in blocks of ``block_size`` queries,
    each against its ``block_size + window`` keys, with a log-sum-exp over the window: memory
    ``O(block_size * (block_size + window))``, not ``O(T^2)``.
    """
    thetas = [float(th) for th in theta] if isinstance(theta, (list, tuple)) else [float(theta)]
    T = len(targets)
    if past_hiddens is None:
        past_hiddens = hiddens.new_zeros(0, hiddens.size(1))
        past_targets = targets.new_zeros(0)
    past_hiddens, past_targets = past_hiddens[-window:], past_targets[-window:]
    P = len(past_targets)
    keys, next_words = hiddens, targets  # (P + T, H): h_i and (P + T,): x_{i+1}
    if P:
        keys = torch.cat([past_hiddens.to(hiddens.dtype), hiddens])
        next_words = torch.cat([past_targets.to(targets.dtype), targets])
    block = block_size or _default_block(window)
    log_p = hiddens.new_full((len(thetas), T), -math.inf)
    # exp(score - top) is computed with score - top clamped at `floor`, 10 above log(tiny): exp()
    # near the smallest normal number and of -inf is 5-20x slower on CPUs (denormals). A clamped score
    # adds at most exp(floor) to the sums, which the normaliser (>= 1) does not see; a row whose
    # target mass is that small is redone exactly with log-sum-exp.
    floor = math.log(torch.finfo(hiddens.dtype).tiny) + 10
    exact_below = math.exp(floor) * 1e13
    band_shape = band = None  # the masks depend only on the block's geometry: reuse them while it holds
    for a in range(0, T, block):
        b = min(a + block, T)
        lo, hi = max(0, P + a - window), P + b - 1  # the keys some query in [a, b) attends to
        if hi <= lo:
            continue
        shape = (b - a, hi - lo, P + a - lo)
        if shape != band_shape:
            query = P + a - lo + torch.arange(b - a, device=hiddens.device).unsqueeze(1)
            key = torch.arange(hi - lo, device=hiddens.device).unsqueeze(0)
            outside = (key >= query) | (key < query - window)  # keep t - window <= i < t
            band_shape, band = shape, (outside, hiddens.new_zeros(outside.shape)
                                       .masked_fill_(outside, -math.inf))
        outside, minus_inf_outside = band
        dots = hiddens[a:b] @ keys[lo:hi].T  # (b - a, hi - lo): h_t . h_i
        drop = next_words[lo:hi].unsqueeze(0) != targets[a:b].unsqueeze(1)
        drop |= outside  # keys that are not the target, or not in the window
        for j, th in enumerate(thetas):
            scores = torch.add(minus_inf_outside, dots, alpha=th)  # theta h_t . h_i in the window
            top = scores.amax(dim=1, keepdim=True).clamp_min(torch.finfo(scores.dtype).min)
            weights = scores.sub_(top).clamp_min_(floor).exp_()
            norm = weights.sum(dim=1)  # >= 1 wherever there is history
            mass = weights.masked_fill_(drop, 0.0).sum(dim=1)  # 0 exactly when no key is a hit
            log_p[j, a:b] = mass.log() - norm.log()
            redo = (mass > 0) & (mass < exact_below)
            if redo.any():  # rare: every hit far below the top score; torch's log-sum-exp
                exact = torch.add(minus_inf_outside[redo], dots[redo], alpha=th)
                log_p[j, a:b][redo] = torch.logsumexp(exact.masked_fill(drop[redo], -math.inf), 1) \
                    - torch.logsumexp(exact, 1)
    n_history = (P + torch.arange(T, device=hiddens.device)).clamp_max(window)
    uses_cache = n_history >= (window if history == "official" else 1)
    return (log_p if isinstance(theta, (list, tuple)) else log_p[0]), uses_cache


def mix_nll(target_log_probs: torch.Tensor, log_p_cache: torch.Tensor, uses_cache: torch.Tensor,
            lambdah: float) -> torch.Tensor:
    """``-log((1 - lambdah) p_vocab + lambdah p_cache)`` per token, in log space (a target absent
    from the window has ``log p_cache = -inf`` and costs ``-log((1 - lambdah) p_vocab)``, no NaN)."""
    log_keep = math.log1p(-lambdah) if lambdah < 1 else -math.inf
    log_lam = math.log(lambdah) if lambdah > 0 else -math.inf
    mixed = torch.logaddexp(target_log_probs + log_keep, log_p_cache + log_lam)
    return -torch.where(uses_cache, mixed, target_log_probs)


def cache_pointer_nll(log_probs: torch.Tensor, hiddens: torch.Tensor, targets: torch.Tensor,
                      window: int, theta: float, lambdah: float, *, history: str = "paper",
                      past_hiddens: torch.Tensor | None = None,
                      past_targets: torch.Tensor | None = None,
                      block_size: int | None = None) -> torch.Tensor:
    """Per-token negative log-likelihood ``(T,)`` of the cache-mixed distribution (module docstring;
    Grave et al. 2016, eq. 2-3; Merity et al. 2017, "Pointer models").

    ``log_probs`` is the model's log-softmax ``(T, V)``, or ``(T,)`` already gathered at the targets;
    ``hiddens`` ``(T, H)`` the vectors the decoder saw; ``targets`` ``(T,)``. The cache at step ``t``
    holds ``(hiddens[i], targets[i])`` for ``t - window <= i < t``. ``history="paper"`` uses the
    history there is (step 0 has none: plain softmax); ``"official"`` uses the plain softmax until
    ``window`` earlier steps exist, as the official code does. ``past_hiddens`` / ``past_targets``
    are the steps before these (e.g. the previous chunk's), so that a split scored chunk by chunk
    gives the same result as scored whole. ``lambdah = 0`` returns exactly the plain NLL
    ``-log_probs[t, targets[t]]``.
    """
    check_cache_params(window, theta, lambdah, history)
    if not (len(hiddens) == len(targets) == len(log_probs)):
        raise ValueError(f"log_probs, hiddens and targets must have the same length T, got "
                         f"{len(log_probs)}, {len(hiddens)} and {len(targets)}")
    if (past_hiddens is None) != (past_targets is None):
        raise ValueError("give past_hiddens and past_targets together (or neither)")
    target_log_probs = log_probs if log_probs.dim() == 1 else \
        log_probs.gather(1, targets.unsqueeze(1)).squeeze(1)
    if lambdah == 0:
        return -target_log_probs
    log_p_cache, uses_cache = cache_log_probs(hiddens, targets, window, theta, history=history,
                                              past_hiddens=past_hiddens, past_targets=past_targets,
                                              block_size=block_size)
    return mix_nll(target_log_probs, log_p_cache, uses_cache, lambdah)


def cache_attention(hiddens: torch.Tensor, window: int, theta: float, *,
                    history: str = "paper") -> torch.Tensor:
    """The cache's attention ``(T, T)`` over a (short) passage, for a heatmap: row ``t`` holds
    ``softmax_i(theta h_t . h_i)`` over ``t - window <= i < t`` and zeros elsewhere; a row without
    history under the ``history`` rule is all zeros. Slice ``hiddens`` to the passage first (the
    matrix is ``T x T``); column ``i`` belongs to the word ``x_{i+1}`` that followed step ``i``."""
    check_cache_params(window, theta, 0.0, history)
    T = len(hiddens)
    t = torch.arange(T, device=hiddens.device)
    outside = (t.unsqueeze(0) >= t.unsqueeze(1)) | (t.unsqueeze(0) < t.unsqueeze(1) - window)
    scores = (theta * hiddens @ hiddens.T).masked_fill(outside, -math.inf)
    attention = torch.softmax(scores, dim=1).nan_to_num(0.0)  # a row with no history is all -inf
    needed = window if history == "official" else 1
    return attention * (t.clamp_max(window) >= needed).unsqueeze(1)


def cache_distribution(query: torch.Tensor, keys: torch.Tensor, next_words: torch.Tensor,
                       vocab_size: int, theta: float) -> torch.Tensor:
    """``p_cache(w)`` over the whole vocabulary ``(V,)`` for one step: attention of ``query`` ``(H,)``
    over ``keys`` ``(n, H)``, each key's weight added to the word ``next_words[i]`` that followed it.
    With no keys (``n = 0``) the result is all zeros."""
    weights = torch.softmax(theta * keys @ query, dim=0)
    return query.new_zeros(vocab_size).index_add_(0, next_words, weights)


# ------------------------------------------------------------------------------- over a whole split
def _batch1_chunks(model: AWDLSTM, data: torch.Tensor, bptt: int):
    """``(log_probs (L, V), hiddens (L, H), targets (L,))`` per chunk of a 1-D id stream, at batch
    size 1 with the hidden state carried across chunks; ``hiddens`` is what the decoder saw."""
    if data.dim() != 1 or len(data) < 2:
        raise ValueError(f"data must be a 1-D id stream of at least 2 tokens, got shape "
                         f"{tuple(data.shape)}")
    if bptt < 1:
        raise ValueError(f"bptt must be >= 1, got {bptt}")
    device = next(model.parameters()).device
    data = data.to(device)
    hidden = model.init_hidden(1)
    for i in range(0, len(data) - 1, bptt):
        inputs = data[i : min(i + bptt, len(data) - 1)]
        out = model(inputs.unsqueeze(1), hidden)
        hidden = out.hidden
        yield (F.log_softmax(out.logits[:, 0], dim=-1), out.dropped_outputs[-1][:, 0],
               data[i + 1 : i + 1 + len(inputs)])


@torch.no_grad()
def evaluate_with_cache(model: AWDLSTM, data: torch.Tensor, window: int, theta: float,
                        lambdah: float, *, bptt: int = 256, history: str = "paper",
                        block_size: int | None = None) -> float:
    """Mean cross-entropy per predicted token of the cache-mixed model over a split (``data``: the
    1-D id stream), at batch size 1, carrying both the LSTM state and the cache's history from chunk
    to chunk, so that the result does not depend on ``bptt``. Compare :func:`awdlib.evaluate`."""
    check_cache_params(window, theta, lambdah, history)
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    past_h = past_x = None
    for log_probs, hiddens, targets in _batch1_chunks(model, data, bptt):
        nll = cache_pointer_nll(log_probs, hiddens, targets, window, theta, lambdah,
                                history=history, past_hiddens=past_h, past_targets=past_x,
                                block_size=block_size)
        total += nll.double().sum().item()
        count += len(targets)
        past_h = hiddens if past_h is None else torch.cat([past_h, hiddens])[-window:]
        past_x = targets if past_x is None else torch.cat([past_x, targets])[-window:]
    model.train(was_training)
    return total / count


class CacheInputs(NamedTuple):
    """What the cache needs from the model over a split, computed once: ``target_log_probs`` ``(T,)``
    (the softmax's log-probability of each target), ``hiddens`` ``(T, H)`` and ``targets`` ``(T,)``.

    Re-scoring with other settings is then one call, cheap enough for a slider:
    ``cache_pointer_nll(inputs.target_log_probs, inputs.hiddens, inputs.targets, window, theta,
    lambdah).mean()``."""

    target_log_probs: torch.Tensor
    hiddens: torch.Tensor
    targets: torch.Tensor

    def loss(self, window: int, theta: float, lambdah: float, **kwargs) -> float:
        """Mean cache-mixed cross-entropy (``lambdah = 0``: the model's own)."""
        return cache_pointer_nll(self.target_log_probs, self.hiddens, self.targets, window, theta,
                                 lambdah, **kwargs).double().mean().item()


@torch.no_grad()
def cache_inputs(model: AWDLSTM, data: torch.Tensor, bptt: int = 256) -> CacheInputs:
    """Run ``model`` once over the 1-D id stream ``data`` (batch size 1, state carried; eval mode)
    and keep what :func:`cache_pointer_nll` needs. Memory: ``T x H`` floats (the full ``T x V``
    softmax is not kept)."""
    was_training = model.training
    model.eval()
    parts = [(lp.gather(1, x.unsqueeze(1)).squeeze(1), h, x)
             for lp, h, x in _batch1_chunks(model, data, bptt)]
    model.train(was_training)
    return CacheInputs(*(torch.cat(p) for p in zip(*parts)))


class CacheSearch(NamedTuple):
    """A grid search's result: ``losses[w, k, j]`` is the mean loss at ``windows[w]``,
    ``thetas[k]``, ``lambdahs[j]``; ``best`` the lowest point as a dict (``window``, ``theta``,
    ``lambdah``, ``loss``); ``plain_loss`` the model without the cache."""

    windows: list[int]
    thetas: list[float]
    lambdahs: list[float]
    losses: torch.Tensor
    best: dict
    plain_loss: float

    def to_record(self) -> dict:
        """A JSON-ready dict of the search (the losses as nested lists of floats)."""
        return {**self._asdict(), "losses": self.losses.tolist()}

    @classmethod
    def from_record(cls, record: dict) -> "CacheSearch":
        """The search :meth:`to_record` wrote, its losses a float64 tensor again."""
        return cls(**{**record, "losses": torch.tensor(record["losses"], dtype=torch.float64)})


def search_cache(inputs: CacheInputs, thetas=(0.1, 0.2, 0.3, 0.5, 0.662, 0.8, 1.0, 1.2),
                 lambdahs=(0.0, 0.025, 0.05, 0.075, 0.1, 0.1279, 0.15, 0.2, 0.25, 0.3),
                 windows=(500,), *, history: str = "paper",
                 block_size: int | None = None) -> CacheSearch:
    """Grid search of ``(window, theta, lambdah)`` on precomputed :func:`cache_inputs` (validation
    data, as in the paper). The scores ``h_t . h_i`` are computed once per window for all thetas, the
    cache's probabilities once per ``(window, theta)``; every ``lambdah`` is then only a re-mix
    (:func:`mix_nll`). Ties go to the first grid point."""
    windows, thetas, lambdahs = [int(w) for w in windows], [float(t) for t in thetas], \
        [float(lam) for lam in lambdahs]
    if not (windows and thetas and lambdahs):
        raise ValueError("each of windows, thetas and lambdahs needs at least one value")
    for window, theta, lambdah in itertools.product(windows, thetas, lambdahs):
        check_cache_params(window, theta, lambdah, history)
    losses = torch.empty(len(windows), len(thetas), len(lambdahs), dtype=torch.float64)
    for w, window in enumerate(windows):
        log_p_cache, uses = cache_log_probs(inputs.hiddens, inputs.targets, window, thetas,
                                            history=history, block_size=block_size)
        for k, j in itertools.product(range(len(thetas)), range(len(lambdahs))):
            nll = mix_nll(inputs.target_log_probs, log_p_cache[k], uses, lambdahs[j])
            losses[w, k, j] = nll.double().mean()
    w, k, j = (int(i) for i in torch.unravel_index(losses.argmin(), losses.shape))
    best = dict(window=windows[w], theta=thetas[k], lambdah=lambdahs[j], loss=losses[w, k, j].item())
    plain = -inputs.target_log_probs.double().mean().item()
    return CacheSearch(windows, thetas, lambdahs, losses, best, plain)


def tune_and_test(model: AWDLSTM, valid: torch.Tensor, test: torch.Tensor, windows=(500,),
                  **grid) -> dict:
    """The cache put on a trained model as the paper does: ``(window, theta, lambdah)`` searched on
    the validation ids at batch 1 (:func:`search_cache`, ``grid`` its ``thetas`` / ``lambdahs``), then
    the test ids scored once with the chosen settings. Returns those settings and the perplexities
    without the cache (``*_plain_ppl``) and with it (``valid_ppl``, ``test_ppl``)."""
    search = search_cache(cache_inputs(model, valid), windows=windows, **grid)
    chosen = {k: search.best[k] for k in ("window", "theta", "lambdah")}
    scored = cache_inputs(model, test)
    return {**chosen, "valid_plain_ppl": math.exp(search.plain_loss),
            "valid_ppl": math.exp(search.best["loss"]),
            "test_plain_ppl": math.exp(-scored.target_log_probs.double().mean().item()),
            "test_ppl": math.exp(scored.loss(**chosen))}
