"""Named configurations, each with its source: the paper's recipes, the official code's, and CPU-sized
demo and smoke scales.

A :class:`Preset` is data: which corpus (and how much of it), the model sizes and dropouts, a
:class:`TrainConfig`, the fine-tuning budget and, for the full-scale recipes, the perplexities their
source published (:attr:`Preset.published`). Notebooks take one and switch techniques on or off with
:meth:`Preset.with_model` and :meth:`Preset.with_train`; :meth:`Preset.plain` is the unregularised LSTM
of notebook 01.

Two sources, two pairs of full-scale presets: ``ptb`` / ``wt2`` are the paper's text (Merity et al.,
2017, Section 5); ``ptb-official`` / ``wt2-official`` are the commands of the official repository's
README for its PyTorch 0.4 code, which differ from the text in batch size (PTB), ``dropouth``, epochs
and the fine-tuning budget. Where this library's training differs from the official code itself (not
its settings), ``awdlib.train`` says so.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace

import torch

from .checks import check_int, is_number, require
from .data import Corpus, load_corpus, resolve_name
from .model import AWDLSTM, AWDLSTMConfig
from .published import PUBLISHED
from .train import TrainConfig, Trainer

NO_DROPOUT = dict(dropout=0.0, dropouth=0.0, dropouti=0.0, dropoute=0.0, wdrop=0.0)
# TrainConfig fields that do not change what a run computes: what it shows, and when it pauses or
# writes checkpoints (a paused or checkpointed run goes on exactly as if it had not stopped).
RESULT_NEUTRAL = ("progress", "log_epochs", "time_budget", "checkpoint_every", "sync_every")
# TrainConfig fields added after runs were first fingerprinted, left out of a preset's settings at
# this value (the behaviour before they existed), so that those runs keep their fingerprints.
ADDED_LATER = {"min_improvement": 0.0}


def settings_fingerprint(settings: dict) -> str:
    """The fingerprint of :meth:`Preset.settings` (also of settings stored in a results row)."""
    def plain(value):
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
    text = json.dumps(plain(settings), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Preset:
    name: str
    dataset: str  # "ptb" or "wikitext-2"
    model: dict = field(default_factory=dict)  # AWDLSTMConfig arguments except vocab_size
    train: TrainConfig = field(default_factory=TrainConfig)
    train_fraction: float = 1.0  # first fraction of the training split
    eval_fraction: float = 1.0  # first fraction of valid and test
    finetune_epochs: int = 0  # at most this many epochs of fine-tuning (0: none)
    description: str = ""  # one line: the scale, or the source and its published result
    # The source's (valid, test) perplexity by stage ("trained", "fine-tuned", "+ cache"), from
    # awdlib.published, where every published number lives
    published: dict[str, tuple[float, float]] = field(default_factory=dict)

    def __post_init__(self):
        resolve_name(self.dataset)
        for name in ("train_fraction", "eval_fraction"):
            value = getattr(self, name)
            require(is_number(value) and 0 < value <= 1, name, value, "a fraction in (0, 1]")
        check_int("finetune_epochs", self.finetune_epochs, minimum=0)
        self.model_config(vocab_size=1)  # checks the model settings

    def model_config(self, vocab_size: int) -> AWDLSTMConfig:
        return AWDLSTMConfig(vocab_size=vocab_size, **self.model)

    def corpus(self, root=None, download: bool = True) -> Corpus:
        return load_corpus(self.dataset, root, download).subset(self.train_fraction,
                                                               self.eval_fraction)

    def trainer(self, corpus: Corpus, device: str | torch.device = "cpu",
                checkpoint_dir=None) -> Trainer:
        """A fresh model (seeded with ``train.seed``) and its :class:`Trainer` for ``corpus``."""
        torch.manual_seed(self.train.seed)
        model = AWDLSTM(self.model_config(len(corpus.vocab))).to(device)
        return Trainer(model, corpus, self.train, checkpoint_dir=checkpoint_dir)

    def settings(self) -> dict:
        """Every setting a run's result depends on, besides its seed: the corpus (``dataset``, the
        ``train_fraction`` and ``eval_fraction`` used), ``finetune_epochs``, every model field
        (defaults included, so that leaving a field out and giving its default agree) and every
        ``train`` field except the seed, the :data:`RESULT_NEUTRAL` ones and those of
        :data:`ADDED_LATER` at their old behaviour. Not included: the
        preset's name, description and published numbers."""
        model = {k: v for k, v in asdict(self.model_config(vocab_size=1)).items() if k != "vocab_size"}
        train = {k: v for k, v in asdict(self.train).items() if k not in RESULT_NEUTRAL
                 and k != "seed" and not (k in ADDED_LATER and v == ADDED_LATER[k])}
        return {"dataset": resolve_name(self.dataset), "train_fraction": self.train_fraction,
                "eval_fraction": self.eval_fraction, "finetune_epochs": self.finetune_epochs,
                "model": model, "train": train}

    def fingerprint(self) -> str:
        """A short hash of :meth:`settings` (numbers as floats, so that ``lr=30`` and ``lr=30.0``
        agree): two presets with one fingerprint train the same run from the same seed, with the
        same code and data."""
        return settings_fingerprint(self.settings())

    def with_model(self, **changes) -> Preset:
        return replace(self, model={**self.model, **changes})

    def with_train(self, **changes) -> Preset:
        return replace(self, train=replace(self.train, **changes))

    def plain(self) -> Preset:
        """The same sizes with no regularisation and plain SGD (notebook 01's baseline)."""
        return self.with_model(**NO_DROPOUT).with_train(alpha=0.0, beta=0.0, optimizer="sgd")


# The paper's text, Section 5: 3 layers, 400/1150, tied; dropouts (output, between layers, input,
# embedding) = (0.4, 0.3, 0.4, 0.1) and weight drop 0.5; input dropout 0.65 on WT2; 750 epochs of
# NT-ASGD (L = 1 epoch, n = 5), batch 40 (PTB) / 80 (WT2), BPTT 70, lr 30, clip 0.25, AR 2, TAR 1,
# weight decay 1.2e-6. Fine-tuning (Section 5) restarts ASGD from the trained weights and stops by the
# same non-monotonic criterion; the text gives it no epoch cap, so its cap here is the training
# budget (750), which the criterion ends long before. The text names no seed: we use the official ones.
_PAPER = dict(emb_size=400, hidden_size=1150, n_layers=3, dropout=0.4, dropouth=0.3, dropouti=0.4,
              dropoute=0.1, wdrop=0.5, tie_weights=True)




# The official repository's README (salesforce/awd-lstm-lm, for its PyTorch 0.4 code) trains with
#   PTB: main.py --batch_size 20 --dropouti 0.4 --dropouth 0.25 --seed 141 --epoch 500, then
#        finetune.py with the same flags;
#   WT2: main.py --epochs 750 --dropouth 0.2 --seed 1882 (batch 80, dropouti 0.65 by default), then
#        finetune.py with the same flags;
# every other setting is its default, which is the paper's. finetune.py runs at most --epochs epochs.
PRESETS: dict[str, Preset] = {
    "ptb": Preset("ptb", "ptb", dict(_PAPER), TrainConfig(epochs=750, batch_size=40, seed=141),
                  finetune_epochs=750,
                  published=PUBLISHED["ptb"]["paper"],
                  description="the paper's PTB recipe as its Section 5 states it (GPU, hours); the "
                              "paper reports valid/test perplexity 60.0/57.3, with the cache 53.9/52.8"),
    "wt2": Preset("wt2", "wikitext-2", {**_PAPER, "dropouti": 0.65},
                  TrainConfig(epochs=750, batch_size=80, seed=1882), finetune_epochs=750,
                  published=PUBLISHED["wikitext-2"]["paper"],
                  description="the paper's WikiText-2 recipe as its Section 5 states it (GPU, hours); "
                              "the paper reports valid/test perplexity 68.6/65.8, with the cache "
                              "53.8/52.0"),
    "ptb-official": Preset(
        "ptb-official", "ptb", {**_PAPER, "dropouth": 0.25},
        TrainConfig(epochs=500, batch_size=20, seed=141), finetune_epochs=500,
        published=PUBLISHED["ptb"]["official"],
        description="the official salesforce/awd-lstm-lm README's PTB commands (GPU, hours); it "
                    "reports valid/test perplexity 61.2/58.8, fine-tuned 58.8/56.5, with the cache "
                    "(window 500, theta 1.0, lambda 0.1) 53.2/52.5"),
    "wt2-official": Preset(
        "wt2-official", "wikitext-2", {**_PAPER, "dropouti": 0.65, "dropouth": 0.2},
        TrainConfig(epochs=750, batch_size=80, seed=1882), finetune_epochs=750,
        published=PUBLISHED["wikitext-2"]["official"],
        description="the official salesforce/awd-lstm-lm README's WikiText-2 commands (GPU, hours); "
                    "it reports valid/test perplexity 68.7/65.6, fine-tuned 67.4/64.7, with the "
                    "cache (window 3785, theta 0.662, lambda 0.1279) 52.2/50.6"),
    # CPU-sized: the first 10% of PTB's training text, so that an unregularised model overfits within
    # minutes; the first half of valid and test. 40 epochs at most, and every run stops after 8 epochs
    # without a better validation loss: the plain LSTM peaks near epoch 15, the full recipe's trigger
    # fires near epoch 25 and its averaged weights still improve at 40 (notebooks/README.md).
    "demo": Preset("demo", "ptb", {**_PAPER, "emb_size": 100, "hidden_size": 200},
                   TrainConfig(epochs=40, batch_size=20, seed=141, patience=8),
                   train_fraction=0.1, eval_fraction=0.5, finetune_epochs=10,
                   description="first 10% of PTB train, half of valid/test, 100/200 model, "
                               "at most 40 epochs (CPU minutes)"),
    # The same model on WikiText-2 (the paper's input dropout 0.65), sized for notebook 06's cache:
    # its vocabulary is 3.3 times PTB's, so the softmax makes every token ~2.5 times dearer; the
    # first 5% of train (~104k tokens, about the demo's 93k) and 10 epochs keep it within ~15 CPU
    # minutes, a quarter of valid and test (~54k and ~61k tokens) keeps the cache search quick.
    "demo-wt2": Preset("demo-wt2", "wikitext-2", {**_PAPER, "emb_size": 100, "hidden_size": 200,
                                                  "dropouti": 0.65},
                       TrainConfig(epochs=10, batch_size=20, seed=141, patience=8),
                       train_fraction=0.05, eval_fraction=0.25,
                       description="first 5% of WikiText-2 train, a quarter of valid/test, 100/200 "
                                   "model, 10 epochs (CPU minutes)"),
    # Seconds: proves that every cell runs.
    "smoke": Preset("smoke", "ptb", {**_PAPER, "emb_size": 16, "hidden_size": 32},
                    TrainConfig(epochs=2, batch_size=10, bptt=20, seed=141, nonmono=1,
                                test_batch_size=10, progress=False),
                    train_fraction=0.01, eval_fraction=0.05, finetune_epochs=2,
                    description="1% of PTB train, 5% of valid/test, tiny model, 2 epochs (seconds)"),
}
# A third of smoke's share of WikiText-2's training text and valid/test: its softmax is 3.3 times PTB's.
PRESETS["smoke-wt2"] = replace(PRESETS["smoke"], name="smoke-wt2", dataset="wikitext-2",
                               train_fraction=0.003, eval_fraction=0.015, finetune_epochs=0,
                               description="0.3% of WikiText-2 train, 1.5% of valid/test, tiny model, "
                                           "2 epochs (seconds)")

# The ablation study of notebook 08 (8 trained configurations x 3 seeds, two runs at a time on one
# thread each) within 3 hours on 2 CPU cores. The demo's model, recipe and early stopping, on half its
# training text and half its validation and test text, at most 32 epochs and 5 of fine-tuning. A demo
# epoch took ~37 s with two runs side by side (~32 s of training, ~5 s of validation); here ~18.5 s,
# so a run takes at most 37 x 18.5 s plus two tests at batch 1 (~1 min): ~12.4 min; the 3 runs with
# the full sized embedding cost ~1.5 times that. Worst case (no run stopped early):
# (21 x 12.4 + 3 x 18.4) / 2 workers ~ 158 minutes (notebooks/README.md).
PRESETS["ablation-demo"] = replace(
    PRESETS["demo"], name="ablation-demo", train=replace(PRESETS["demo"].train, epochs=32),
    train_fraction=0.05, eval_fraction=0.25, finetune_epochs=5,
    description="first 5% of PTB train, a quarter of valid/test, 100/200 model, at most 32 epochs "
                "+ 5 of fine-tuning (the ablation study: CPU hours for 24 runs)")

# The crossover pilot of notebook 08 ("when does regularisation pay?"): the demo's model and recipe on
# the first 3% of PTB's training text (~28k tokens: 1.7M parameters for 28k tokens, more parameters
# per token than the paper's 24M for 930k) and a quarter of valid/test, so that an epoch takes ~10 s
# with two runs side by side. No run may stop at the cap: 300 epochs, and patience 20 (room for
# NT-ASGD's n = 5 to fire and for averaging to act); fine-tuning stops by its own criterion.
PRESETS["crossover-pilot"] = replace(
    PRESETS["demo"], name="crossover-pilot",
    train=replace(PRESETS["demo"].train, epochs=300, patience=20),
    train_fraction=0.03, eval_fraction=0.25, finetune_epochs=300,
    description="first 3% of PTB train, a quarter of valid/test, 100/200 model, early stopping "
                "(patience 20) within 300 epochs (the crossover pilot: CPU minutes per run)")

# The ablation of notebook 08 trained to convergence, at the pilot's scale (notebooks/README.md says
# how the pilot chose it): every run ends by early stopping, none at its cap. Averaged weights
# (NT-ASGD, fine-tuning) improve by ever smaller steps long after the iterate overfits, so "better"
# means 0.5% lower validation perplexity (about 2 points at ~450, below the seed-to-seed spread);
# notebook 08 applies both rules to the pilot's curves.
PRESETS["ablation-converged"] = replace(
    PRESETS["crossover-pilot"], name="ablation-converged",
    train=replace(PRESETS["crossover-pilot"].train, min_improvement=0.005),
    description="first 3% of PTB train, a quarter of valid/test, 100/200 model, each run until 20 "
                "epochs bring no 0.5% better validation perplexity (at most 300), fine-tuning alike "
                "(the converged ablation: CPU hours)")
