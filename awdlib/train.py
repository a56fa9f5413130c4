"""Training and evaluation as in the paper (Sections 3-5): SGD / NT-ASGD, variable BPTT, AR/TAR.

``Trainer.fit`` trains with the learning rate rescaled by ``seq_len / bptt`` per window, gradient-norm
clipping and weight decay, evaluates after every epoch (with the averaged weights once averaging has
started), keeps ``last.pt`` (to resume) and ``best.pt`` (the best validation weights), and records a
:class:`History`. ``Trainer.finetune`` is the paper's fine-tuning: averaged SGD from its first step,
stopped by the same non-monotonic criterion.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from .checkpoint import build_model, load_checkpoint, save_checkpoint
from .checks import check_int, is_int, is_number, require
from .data import Corpus, batchify, bptt_batches
from .model import AWDLSTM, detach_hidden
from .optim import MODES, NTASGD
from .regularize import activation_regularization, temporal_activation_regularization


@dataclass
class TrainConfig:
    """Optimisation settings; defaults are the paper's PTB recipe (Section 5)."""

    epochs: int = 500
    batch_size: int = 40
    bptt: int = 70
    lr: float = 30.0
    clip: float = 0.25
    weight_decay: float = 1.2e-6
    alpha: float = 2.0  # AR
    beta: float = 1.0  # TAR
    optimizer: str = "ntasgd"  # "sgd", "asgd" (average from the start) or "ntasgd"
    nonmono: int = 5  # n of the non-monotonic trigger
    eval_batch_size: int = 10
    test_batch_size: int = 1
    seed: int = 141
    time_budget: float | None = None  # seconds of training per fit()/finetune() call
    patience: int | None = None  # stop after this many epochs without a new best validation loss
    variable_bptt: bool = True  # Section 4.1's random window lengths; False: every window is bptt long
    progress: bool = True  # tqdm progress bars
    log_epochs: bool = True  # one summary line per epoch

    def __post_init__(self):
        for name in ("epochs", "batch_size", "bptt", "eval_batch_size", "test_batch_size"):
            check_int(f"train.{name}", getattr(self, name), minimum=1)
        check_int("train.nonmono", self.nonmono, minimum=0)
        require(is_int(self.seed), "train.seed", self.seed, "an integer")
        for name in ("lr", "clip"):
            value = getattr(self, name)
            require(is_number(value) and value > 0, f"train.{name}", value, "a number > 0")
        for name in ("weight_decay", "alpha", "beta"):
            value = getattr(self, name)
            require(is_number(value) and value >= 0, f"train.{name}", value, "a number >= 0")
        require(self.optimizer in MODES, "train.optimizer", self.optimizer,
                f"one of {', '.join(map(repr, MODES))}")
        t = self.time_budget
        require(t is None or is_number(t) and t > 0, "train.time_budget", t,
                "none or a number of seconds > 0")
        p = self.patience
        require(p is None or is_int(p) and p >= 1, "train.patience", p, "none or an integer >= 1")
        for name in ("variable_bptt", "progress", "log_epochs"):
            require(isinstance(getattr(self, name), bool), f"train.{name}", getattr(self, name),
                    "true or false")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class History:
    """Per-epoch records (dicts of plain numbers) and notable events (strings)."""

    records: list[dict] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    stop_reason: str | None = None
    diverged: bool = False  # stopped on a non-finite loss

    def column(self, key: str) -> list:
        return [r[key] for r in self.records]

    def best(self) -> dict | None:
        return min(self.records, key=lambda r: r["valid_loss"]) if self.records else None

    def to_dict(self) -> dict:
        return {"records": self.records, "events": self.events, "stop_reason": self.stop_reason,
                "diverged": self.diverged}

    @classmethod
    def from_dict(cls, d: dict) -> History:
        return cls(list(d["records"]), list(d["events"]), d["stop_reason"], d.get("diverged", False))


def clone_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A copy of ``model.state_dict()`` that keeps tied weights tied: a parameter registered twice
    (the embedding that is also the decoder) is cloned once, and both entries hold that one tensor."""
    state = model.state_dict(keep_vars=True)  # the parameters themselves: tied ones are one object
    clones: dict[int, torch.Tensor] = {}
    for tensor in state.values():
        if id(tensor) not in clones:
            clones[id(tensor)] = tensor.detach().clone()
    return {name: clones[id(tensor)] for name, tensor in state.items()}


def perplexity(loss: float) -> float:
    return math.exp(loss) if loss < 700 else float("inf")


@torch.no_grad()
def evaluate(model: AWDLSTM, source: torch.Tensor, bptt: int = 70, batch_size: int = 10) -> float:
    """Mean cross-entropy per predicted token, carrying the hidden state through the whole split.

    ``source`` is a 1-D id stream (batchified here into ``batch_size`` columns) or an already
    batchified ``(steps, batch)`` tensor. The result does not depend on ``bptt``.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    data = (batchify(source, batch_size) if source.dim() == 1 else source).to(device)
    hidden = model.init_hidden(data.size(1))
    total, count = 0.0, 0
    for inputs, targets, _ in bptt_batches(data, bptt, variable=False):
        out = model(inputs, hidden)
        hidden = out.hidden
        total += F.cross_entropy(out.logits.flatten(0, 1), targets.flatten(), reduction="sum").item()
        count += targets.numel()
    model.train(was_training)
    return total / count


class Trainer:
    """Trains an :class:`AWDLSTM` on a :class:`Corpus`; see the module docstring.

    ``checkpoint_dir`` (optional) receives ``last.pt`` after every epoch and ``best.pt`` whenever the
    validation loss improves. Both hold state dicts and plain values only (see ``awdlib.checkpoint``).
    """

    def __init__(self, model: AWDLSTM, corpus: Corpus, config: TrainConfig,
                 checkpoint_dir: str | Path | None = None):
        self.model, self.corpus, self.config = model, corpus, config
        self.device = next(model.parameters()).device
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.train_data = batchify(corpus.train, config.batch_size).to(self.device)
        self.valid_data = batchify(corpus.valid, config.eval_batch_size).to(self.device)
        self.optimizer = self._make_optimizer(config.optimizer)
        self.batch_generator = torch.Generator().manual_seed(config.seed)
        self.history = History()
        self.epoch = 0
        self.phase = "train"
        self.best_valid_loss = math.inf

    def _make_optimizer(self, mode: str) -> NTASGD:
        c = self.config
        return NTASGD(self.model, lr=c.lr, weight_decay=c.weight_decay, n=c.nonmono, mode=mode)

    # ----------------------------------------------------------------------------------------- train
    def fit(self, epochs: int | None = None) -> History:
        """Train until epoch ``epochs`` (default ``config.epochs``), the time budget, or a non-finite loss.

        In ``"ntasgd"`` mode the trigger is checked once per epoch (L = 1 epoch) and, when it fires,
        averaging starts; later evaluations and ``best.pt`` use the averaged weights.
        """
        # A resumed fine-tuning run keeps fine-tuning's rule: stop when the criterion fires.
        on_trigger = "stop" if self.phase == "finetune" else "average"
        return self._run(epochs or self.config.epochs, on_trigger=on_trigger)

    def finetune(self, epochs: int = 300) -> History:
        """Fine-tune (paper Section 5): restart averaged SGD (T = 0) from the best weights so far,
        evaluate the average every epoch, keep the best, stop when the non-monotonic criterion fires.

        The official ``finetune.py`` is broken on current PyTorch; this follows its intent.
        """
        if self.checkpoint_dir and (self.checkpoint_dir / "best.pt").exists():
            self.model.load_state_dict(load_checkpoint(self.checkpoint_dir / "best.pt",
                                                       self.device)["model"])
        elif self.optimizer.averaging:
            with self.optimizer.averaged_weights():
                best = clone_state_dict(self.model)
            self.model.load_state_dict(best)
        self.phase = "finetune"
        self.optimizer = self._make_optimizer("asgd")
        self._log(f"fine-tuning from epoch {self.epoch + 1}: averaging from the first step")
        return self._run(self.epoch + epochs, on_trigger="stop")

    def _run(self, last_epoch: int, on_trigger: str) -> History:
        started = time.perf_counter()
        while self.epoch < last_epoch:
            budget_left = None
            if self.config.time_budget is not None:
                budget_left = self.config.time_budget - (time.perf_counter() - started)
                if budget_left <= 0:
                    self._stop(f"time budget of {self.config.time_budget:.0f} s used")
                    break
            result = self._train_epoch(budget_left)
            if result is None:
                break
            train_loss, tokens, seconds, partial = result
            with self.optimizer.averaged_weights():
                valid_loss = evaluate(self.model, self.valid_data, self.config.bptt)
            if not math.isfinite(valid_loss):
                self._diverge(f"non-finite validation loss ({valid_loss}) after epoch {self.epoch + 1}")
                break
            self.epoch += 1
            record = {
                "epoch": self.epoch, "phase": self.phase,
                "train_loss": train_loss, "train_ppl": perplexity(train_loss),
                "valid_loss": valid_loss, "valid_ppl": perplexity(valid_loss),
                "seconds": seconds, "tokens_per_s": tokens / seconds,
                "averaging": self.optimizer.averaging, "partial": partial,
            }
            self.history.records.append(record)
            improved = valid_loss < self.best_valid_loss
            # Logged before the checkpoints are written, so a failed save does not lose the result.
            self._log(self._summary(record) + ("  *best*" if improved else ""))
            if improved:
                self.best_valid_loss = valid_loss
                self._save("best.pt", averaged=True)
            fired = self.optimizer.check(valid_loss)
            if fired and on_trigger == "average" and self.optimizer.mode == "ntasgd":
                self._log(f"non-monotonic trigger fired at epoch {self.epoch}: averaging from now on")
            self._save("last.pt", averaged=False)
            if fired and on_trigger == "stop":
                self._stop(f"non-monotonic criterion met at epoch {self.epoch}: fine-tuning done")
                break
            patience = self.config.patience
            if patience and self.epoch - self.history.best()["epoch"] >= patience:
                self._stop(f"no better validation loss for {patience} epochs: stopped early at "
                           f"epoch {self.epoch}")
                break
            if partial:
                self._stop(f"time budget of {self.config.time_budget:.0f} s used in epoch {self.epoch}")
                break
        return self.history

    def _train_epoch(self, budget_left: float | None):
        """One pass over the training data; None if the loss became non-finite."""
        c, model, opt = self.config, self.model, self.optimizer
        model.train()
        hidden = model.init_hidden(c.batch_size)
        total, tokens, partial = 0.0, 0, False
        start = time.perf_counter()
        bar = _progress(c.progress, total=(self.train_data.size(0) - 1) * c.batch_size,
                        desc=f"epoch {self.epoch + 1}")
        for inputs, targets, seq_len in bptt_batches(self.train_data, c.bptt, c.variable_bptt,
                                                     self.batch_generator):
            for group in opt.sgd.param_groups:  # longer windows take larger steps (Section 4.1)
                group["lr"] = c.lr * seq_len / c.bptt
            out = model(inputs, detach_hidden(hidden))
            hidden = out.hidden
            raw_loss = F.cross_entropy(out.logits.flatten(0, 1), targets.flatten())
            loss = raw_loss
            if c.alpha:
                loss = loss + activation_regularization(out.dropped_outputs[-1], c.alpha)
            if c.beta:
                loss = loss + temporal_activation_regularization(out.raw_outputs[-1], c.beta)
            if not torch.isfinite(loss):
                bar.close()
                self._diverge(f"non-finite loss ({loss.item()}) in epoch {self.epoch + 1} after "
                              f"{tokens} tokens")
                return None
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), c.clip)
            opt.step()
            total += raw_loss.item() * targets.numel()
            tokens += targets.numel()
            bar.update(targets.numel())
            bar.set_postfix(ppl=f"{perplexity(total / tokens):.1f}", refresh=False)
            if budget_left is not None and time.perf_counter() - start > budget_left:
                partial = True
                break
        bar.close()
        return total / tokens, tokens, time.perf_counter() - start, partial

    # ------------------------------------------------------------------------------------ evaluate
    def evaluate(self, split: str = "valid", batch_size: int | None = None) -> float:
        """Loss on ``"valid"`` (batch ``eval_batch_size``) or ``"test"`` (batch ``test_batch_size``),
        with the averaged weights when averaging."""
        if batch_size is None:
            batch_size = self.config.test_batch_size if split == "test" else \
                self.config.eval_batch_size
        with self.optimizer.averaged_weights():
            return evaluate(self.model, getattr(self.corpus, split), self.config.bptt, batch_size)

    def load_best(self) -> None:
        """Put the best validation weights (``best.pt``) into the model."""
        self.model.load_state_dict(load_checkpoint(self.checkpoint_dir / "best.pt",
                                                   self.device)["model"])

    # ---------------------------------------------------------------------------------- checkpoints
    def state_dict(self, averaged: bool = False) -> dict:
        if averaged:
            with self.optimizer.averaged_weights():
                model_state = clone_state_dict(self.model)
        else:
            model_state = self.model.state_dict()
        return {
            "model_config": self.model.config.to_dict(), "train_config": self.config.to_dict(),
            "model": model_state, "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch, "phase": self.phase, "best_valid_loss": self.best_valid_loss,
            "history": self.history.to_dict(), "corpus": self.corpus.name,
            "rng": {"torch": torch.get_rng_state(), "batches": self.batch_generator.get_state()},
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.phase = state["epoch"], state["phase"]
        self.best_valid_loss = state["best_valid_loss"]
        self.history = History.from_dict(state["history"])
        torch.set_rng_state(state["rng"]["torch"])
        self.batch_generator.set_state(state["rng"]["batches"])

    @classmethod
    def resume(cls, path: str | Path, corpus: Corpus, device: str | torch.device = "cpu",
               **overrides) -> Trainer:
        """Rebuild a trainer from ``last.pt`` and continue where it stopped (``overrides`` change the
        stored TrainConfig, e.g. ``epochs``)."""
        state = load_checkpoint(path, device)
        model = build_model(state).to(device)
        config = TrainConfig(**{**state["train_config"], **overrides})
        trainer = cls(model, corpus, config, checkpoint_dir=Path(path).parent)
        trainer.optimizer = trainer._make_optimizer(state["optimizer"]["mode"])
        trainer.load_state_dict(state)
        return trainer

    def _save(self, name: str, averaged: bool) -> None:
        if self.checkpoint_dir:
            save_checkpoint(self.checkpoint_dir / name, self.state_dict(averaged=averaged))

    def _diverge(self, reason: str) -> None:
        """Stop on a non-finite loss and go back to the last good checkpoint."""
        self.history.diverged = True
        self._stop(reason)
        self._restore_last_good()

    def _restore_last_good(self) -> None:
        last = self.checkpoint_dir / "last.pt" if self.checkpoint_dir else None
        if last and last.exists():
            history = self.history  # the stored one lacks the stop just recorded
            self.load_state_dict(load_checkpoint(last, self.device))
            self.history = history
            self._log(f"kept the last good checkpoint {last} and restored it (epoch {self.epoch})")
        else:
            self._log("no checkpoint to restore: the model's weights may no longer be finite")

    # ------------------------------------------------------------------------------------- logging
    def _summary(self, r: dict) -> str:
        avg = " (averaged)" if r["averaging"] else ""
        return (f"epoch {r['epoch']:3d} | train ppl {r['train_ppl']:8.2f} | valid ppl "
                f"{r['valid_ppl']:8.2f}{avg} | {r['seconds']:6.1f} s | {r['tokens_per_s']:6.0f} tok/s")

    def _log(self, message: str) -> None:
        self.history.events.append(message)
        if self.config.log_epochs:
            from tqdm.auto import tqdm
            tqdm.write(message)

    def _stop(self, reason: str) -> None:
        self.history.stop_reason = reason
        self._log(reason)


def _progress(enabled: bool, **kwargs):
    from tqdm.auto import tqdm
    return tqdm(disable=not enabled, unit="tok", unit_scale=True, leave=False, **kwargs)
