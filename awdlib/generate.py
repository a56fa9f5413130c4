"""Sampling text from a trained language model, one word at a time.

At each step the model's next-word distribution is sharpened or flattened by a temperature ``T``:
``p(w) proportional to exp(logit_w / T)``; ``T = 1`` samples the model itself, ``T -> 0`` approaches
greedy decoding, ``T > 1`` gives more surprising text.
"""

from __future__ import annotations

import math

import torch

from .data import EOS, Vocab
from .model import AWDLSTM


@torch.no_grad()
def sample_words(model: AWDLSTM, vocab: Vocab, n_words: int = 50, temperature: float = 1.0,
                 seed: int | None = None, start: str | list[str] = EOS) -> list[str]:
    """``n_words`` words sampled after the start words (which are fed in first, not returned).

    ``start`` is a string split on whitespace or a list of tokens; every one must be in ``vocab``. The
    default, ``<eos>``, starts the text as at the beginning of a sentence. ``seed`` makes the sample
    reproducible without touching the global random state.
    """
    if not 0 < temperature < math.inf:  # also rejects nan
        raise ValueError(f"temperature must be a finite number > 0, got {temperature}")
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
    words = []
    for _ in range(n_words):
        out = model(inputs, hidden)
        hidden = out.hidden
        probs = torch.softmax(out.logits[-1, 0] / temperature, dim=-1)
        word = torch.multinomial(probs, 1, generator=generator)
        words.append(vocab.itos[int(word)])
        inputs = word.view(1, 1)
    model.train(was_training)
    return words


def generate(model: AWDLSTM, vocab: Vocab, n_words: int = 50, temperature: float = 1.0,
             seed: int | None = None, start: str | list[str] = EOS) -> str:
    """Sampled text as a string: :func:`sample_words` with each ``<eos>`` written as a line break."""
    words = sample_words(model, vocab, n_words, temperature, seed, start)
    return "\n".join(line.strip() for line in " ".join(words).split(EOS))
