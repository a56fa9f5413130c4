"""The published numbers a full-scale run is compared with, defined once (notebook 07, the README).

Perplexities as ``(validation, test)``, test at batch size 1, per corpus and source:

- ``"paper"``: Merity, Keskar & Socher (2017). ``"trained"`` is Table 3's "– fine-tuning" row,
  ``"fine-tuned"`` the AWD-LSTM rows of Tables 1 (PTB) and 2 (WikiText-2), ``"+ cache"`` the same model
  with the continuous cache pointer (the paper's text gives window 2000 on PTB).
- ``"official"``: the README of the official repository (salesforce/awd-lstm-lm) for its later
  PyTorch 0.4 code, with its own commands (PTB batch 20, ``dropouth`` 0.25; WikiText-2 ``dropouth``
  0.2) and cache settings (:data:`awdlib.cache.OFFICIAL_SETTINGS`).

:data:`DYNAMIC_EVAL` holds the dynamic evaluation results of Krause, Kahembwe, Murray & Renals (2018)
for an AWD-LSTM they trained with the official code (another paper, so not a stage of :data:`PUBLISHED`).

:data:`OFFICIAL_EPOCH_SECONDS` holds the same README's training speed of its code on an NVIDIA Quadro
GP100 (PyTorch 0.x, cuDNN): the anchor for projecting a full run's GPU time before measuring one.
:data:`awdlib.cache.PAPER_CACHE` (the paper's perplexity without and with the cache) is derived from
:data:`PUBLISHED`.
"""

from __future__ import annotations

STAGES = ("trained", "fine-tuned", "+ cache")

PUBLISHED: dict[str, dict[str, dict[str, tuple[float, float]]]] = {
    "ptb": {
        "paper": {"trained": (60.7, 58.8), "fine-tuned": (60.0, 57.3), "+ cache": (53.9, 52.8)},
        "official": {"trained": (61.2, 58.8), "fine-tuned": (58.8, 56.5), "+ cache": (53.2, 52.5)},
    },
    "wikitext-2": {
        "paper": {"trained": (69.1, 66.0), "fine-tuned": (68.6, 65.8), "+ cache": (53.8, 52.0)},
        "official": {"trained": (68.7, 65.6), "fine-tuned": (67.4, 64.7), "+ cache": (52.2, 50.6)},
    },
}

SOURCES = {
    "paper": "Merity, Keskar & Socher (2017), Tables 1-3",
    "official": "salesforce/awd-lstm-lm README (its PyTorch 0.4 code)",
}

# Krause et al. (2018), "Dynamic Evaluation of Neural Sequence Models", Section 7.1 (abstract: "51.1 and
# 44.3"): AWD-LSTM + dynamic evaluation, (validation, test) perplexity, segments of 5 tokens, test at
# batch 1. Their AWD-LSTM was trained with the official code; awdlib.dynamic has their settings.
DYNAMIC_EVAL: dict[str, tuple[float, float]] = {"ptb": (51.6, 51.1), "wikitext-2": (46.4, 44.3)}
DYNAMIC_EVAL_SOURCE = "Krause, Kahembwe, Murray & Renals (2018), Section 7.1"

# Seconds per training epoch of the official code, by (corpus, batch size); README "Speed".
OFFICIAL_EPOCH_SECONDS: dict[tuple[str, int], float] = {
    ("ptb", 40): 45.0, ("ptb", 20): 65.0, ("wikitext-2", 80): 105.0,
}
OFFICIAL_HARDWARE = "NVIDIA Quadro GP100 (official code, PyTorch 0.x)"


def published(dataset: str, source: str, stage: str) -> tuple[float, float]:
    """``(valid_ppl, test_ppl)`` that ``source`` (``"paper"`` or ``"official"``) reports for ``stage``
    (one of :data:`STAGES`) on ``dataset`` (``"ptb"`` or ``"wikitext-2"``)."""
    for name, value, known in (("dataset", dataset, PUBLISHED), ("source", source, SOURCES),
                               ("stage", stage, STAGES)):
        if value not in known:
            raise KeyError(f"{name} must be one of {', '.join(map(repr, known))}, got {value!r}")
    return PUBLISHED[dataset][source][stage]


def comparison_table(dataset: str, ours: dict[str, tuple[float, float]], label: str = "this run") -> str:
    """A fixed-width table, one line per stage: ``ours`` (``{stage: (valid, test)}``; missing stages
    left blank) beside the paper's and the official code's numbers for ``dataset``."""
    def pair(values):
        return f"{values[0]:8.2f} {values[1]:8.2f}" if values else f"{'':8} {'':8}"

    header = (f"{'':12} {label:>17} {'paper':>17} {'official code':>17}\n"
              f"{'stage':12} " + " ".join([f"{'valid':>8} {'test':>8}"] * 3))
    lines = [f"{stage:12} {pair(ours.get(stage))} {pair(published(dataset, 'paper', stage))} "
             f"{pair(published(dataset, 'official', stage))}" for stage in STAGES]
    return "\n".join([header, *lines])


def projected_hours(seconds_per_epoch: float, epochs: int, finetune_epochs: int = 0) -> float:
    """Training time of a whole recipe if every epoch took ``seconds_per_epoch``: a projection (it
    ignores evaluation, and fine-tuning usually stops before ``finetune_epochs``)."""
    return seconds_per_epoch * (epochs + finetune_epochs) / 3600
