"""Sampling text from a trained language model, one word at a time.

At each step the model's next-word distribution is sharpened or flattened by a temperature ``T``:
``p(w) proportional to exp(logit_w / T)``; ``T = 1`` samples the model itself, ``T -> 0`` approaches
greedy decoding, ``T > 1`` gives more surprising text.

With a continuous cache (``cache_window``; see :mod:`awdlib.cache`) the words of the text so far, the
start words included, become likelier: ``p(w) = (1 - lambdah) p_T(w) + lambdah p_cache(w)``, with
``p_cache`` the attention of the current output over the last ``cache_window`` outputs, each pointing at
the word that followed it.
"""

from __future__ import annotations

import math

import torch

from .cache import cache_distribution, check_cache_params
from .checks import check_seed
from .data import EOS, Vocab
from .model import AWDLSTM


@torch.no_grad()
def sample_words(model: AWDLSTM, vocab: Vocab, n_words: int = 50, temperature: float = 1.0,
                 seed: int | None = None, start: str | list[str] = EOS, *,
                 cache_window: int | None = None, cache_theta: float = 1.0,
                 cache_lambdah: float = 0.1) -> list[str]:
    """``n_words`` words sampled after the start words (which are fed in first, not returned).

    ``start`` is a string split on whitespace or a list of tokens; every one must be in ``vocab``. The
    default, ``<eos>``, starts the text as at the beginning of a sentence. ``seed`` makes the sample
    reproducible without touching the global random state. ``cache_window`` (default: no cache) mixes
    in the continuous cache with ``cache_theta`` and ``cache_lambdah`` (the temperature applies to the
    model's softmax only); a step with no history yet samples from the softmax alone.
    """
    if not 0 < temperature < math.inf:  # also rejects nan
        raise ValueError(f"temperature must be a finite number > 0, got {temperature}")
    if seed is not None:
        check_seed("seed", seed)
    try:  # theta and lambdah are checked even without a window: a typo should not pass silently
        check_cache_params(1 if cache_window is None else cache_window, cache_theta, cache_lambdah)
    except ValueError as exc:
        raise ValueError(f"cache_{exc.args[0]}") from None
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    inputs = vocab.encode(start).to(device).view(-1, 1)  # (time, batch = 1)
    if inputs.numel() == 0:
        raise ValueError("start must contain at least one word")
    hidden = model.init_hidden(1)
    keys, next_words = [], []  # the cache: outputs h_i and the words x_{i+1} that followed them
    words = []
    for _ in range(n_words):
        out = model(inputs, hidden)
        hidden = out.hidden
        probs = torch.softmax(out.logits[-1, 0] / temperature, dim=-1)
        if cache_window is not None:
            outputs = out.dropped_outputs[-1][:, 0]  # what the decoder saw, one row per input
            keys.extend(outputs[:-1])
            next_words.extend(inputs[1:, 0])
            if keys:
                h, x = torch.stack(keys[-cache_window:]), torch.stack(next_words[-cache_window:])
                p_cache = cache_distribution(outputs[-1], h, x, len(probs), cache_theta)
                probs = (1 - cache_lambdah) * probs + cache_lambdah * p_cache
            keys.append(outputs[-1])
        word = torch.multinomial(probs, 1, generator=generator)
        if cache_window is not None:
            next_words.append(word[0])
            del keys[:-cache_window], next_words[:-cache_window]
        words.append(vocab.itos[int(word)])
        inputs = word.view(1, 1)
    model.train(was_training)
    return words


def generate(model: AWDLSTM, vocab: Vocab, n_words: int = 50, temperature: float = 1.0,
             seed: int | None = None, start: str | list[str] = EOS, *,
             cache_window: int | None = None, cache_theta: float = 1.0,
             cache_lambdah: float = 0.1) -> str:
    """Sampled text as a string: :func:`sample_words` with each ``<eos>`` written as a line break."""
    words = sample_words(model, vocab, n_words, temperature, seed, start, cache_window=cache_window,
                         cache_theta=cache_theta, cache_lambdah=cache_lambdah)
    return "\n".join(line.strip() for line in " ".join(words).split(EOS))
