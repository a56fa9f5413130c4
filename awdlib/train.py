"""Training and evaluation as in the paper (Sections 3-5): SGD / NT-ASGD, variable BPTT, AR/TAR.

``Trainer.fit`` trains with the learning rate rescaled by ``seq_len / bptt`` per window, gradient-norm
clipping and weight decay, evaluates after every epoch (with the averaged weights once averaging has
started), keeps ``last.pt`` (to resume) and ``best.pt`` (the best validation weights), and records a
:class:`History`. ``Trainer.finetune`` is the paper's fine-tuning: averaged SGD from its first step,
stopped by the same non-monotonic criterion.

**Chunked runs equal one run.** A run may stop and go on again in three ways, and each continues as
if it had never stopped (on a CPU bit for bit; on a GPU as far as its kernels are deterministic):

- *time budget*: training pauses after the step that passes the deadline, mid-epoch if need be; the
  place in the epoch (window position, hidden state, random states, the epoch's running loss) is kept
  in :attr:`Trainer.unfinished` and written to ``last.pt``, and the next ``fit()`` (or a resume from
  ``last.pt``) carries on from that step. Only finished epochs are evaluated, feed the trigger and
  compete for ``best.pt``. A budget stop discards nothing.
- *Ctrl-C* (``KeyboardInterrupt``): may land anywhere, even inside a step, so nothing is saved; resuming
  from ``last.pt`` redoes the work since it was written (the log says how much).
- *checkpoints every k epochs* (``TrainConfig.checkpoint_every``): ``last.pt`` and ``best.pt`` are
  written at epochs that are multiples of k and whenever a run stops other than by Ctrl-C or a
  non-finite loss, so a resume from them is exact too; a crash loses up to k epochs.

**Known differences from the official code** (salesforce/awd-lstm-lm), none of which the paper
specifies, each kept because changing it would change every stored result for a gain far below the
noise between seeds:

- the last training window of an epoch may be a single token (``bptt_batches`` covers every token);
  the official loop stops one token short of the end instead;
- the learning-rate rescaling uses the window's actual length, also for the last, shortened window
  (the official code uses the sampled length before shortening);
- :func:`evaluate` divides the summed loss by the number of predicted tokens; the official
  ``evaluate`` divides by the number of rows of the batched split, one more than it predicts per
  column, which lowers PTB's test perplexity by about 0.003;
- fine-tuning samples window lengths without the official ``finetune.py``'s cap at ``bptt + 10``
  (with ``N(70, 5)`` that cap shortens about 2% of windows);
- the iterate average follows Algorithm 1 (``awdlib.optim.NTASGD`` describes the official variant).

**Speed on a GPU.** A training step reads nothing back from the device: the running loss is a device
tensor read every ``TrainConfig.sync_every`` steps (then also checking that it is finite) and at the
end of the epoch, and the average is updated without reading its counter (``awdlib.optim``).
"""

from __future__ import annotations

import math
import time
from time import perf_counter as wall_clock  # the log's time left; not the budget's clock
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from .checkpoint import build_model, check_resumable, load_checkpoint, save_checkpoint
from .checks import check_int, check_seed, is_int, is_number, require
from .data import Corpus, batchify, bptt_batches
from .model import AWDLSTM, Hidden, detach_hidden
from .optim import MODES, NTASGD, averaged_weights
from .regularize import activation_regularization, temporal_activation_regularization
from .run_state import EpochPlace, clone_state_dict, clone_tensors, rng_state, set_rng_state, use_tf32


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
    # stop after this many epochs without a new best validation loss (fine-tuning: counted from its
    # first epoch, so that it gets the same patience after training stopped early)
    patience: int | None = None
    # what counts as "better" for patience: a validation perplexity below the last counted best by
    # more than this share (0: any lower loss; 0.005: 0.5% lower). Averaged weights keep improving by
    # ever smaller steps; a share ends such a run once its gains fall below what seeds differ by.
    min_improvement: float = 0.0
    variable_bptt: bool = True  # Section 4.1's random window lengths; False: every window is bptt long
    progress: bool = True  # tqdm progress bars
    log_epochs: bool = True  # one summary line per epoch
    checkpoint_every: int = 1  # write last.pt and best.pt every this many epochs (and at every stop)
    sync_every: int = 50  # training steps between reads of the loss from the device (finite check)
    # CUDA only: let cuDNN (the LSTMs) and cuBLAS (the decoder) compute float32 products in TF32. Off
    # by default: the paper's GPUs had no TF32, and PyTorch by itself allows it in cuDNN but not in
    # cuBLAS, so its default is neither the paper's FP32 nor the faster choice.
    tf32: bool = False

    def __post_init__(self):
        for name in ("epochs", "batch_size", "bptt", "eval_batch_size", "test_batch_size",
                     "checkpoint_every", "sync_every"):
            check_int(f"train.{name}", getattr(self, name), minimum=1)
        check_int("train.nonmono", self.nonmono, minimum=0)
        check_seed("train.seed", self.seed)
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
        m = self.min_improvement
        require(is_number(m) and 0 <= m < 1, "train.min_improvement", m, "a share in [0, 1)")
        for name in ("variable_bptt", "progress", "log_epochs", "tf32"):
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

    def last_improvement(self, share: float = 0.0) -> int:
        """The last epoch whose validation perplexity was more than ``share`` below the best counted
        before it (the first epoch counts; 0 without records): early stopping's reference. With
        ``share=0`` that is the best epoch."""
        counted, epoch = math.inf, 0
        for r in self.records:
            if r["valid_loss"] < counted + math.log1p(-share):
                counted, epoch = r["valid_loss"], r["epoch"]
        return epoch

    def to_dict(self) -> dict:
        return {"records": self.records, "events": self.events, "stop_reason": self.stop_reason,
                "diverged": self.diverged}

    @classmethod
    def from_dict(cls, d: dict) -> History:
        return cls(list(d["records"]), list(d["events"]), d["stop_reason"], d.get("diverged", False))


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
    total = torch.zeros((), dtype=torch.float64, device=device)
    for inputs, targets, _ in bptt_batches(data, bptt, variable=False):
        out = model(inputs, hidden)
        hidden = out.hidden
        total += F.cross_entropy(out.logits.flatten(0, 1), targets.flatten(), reduction="sum")
    model.train(was_training)
    return total.item() / ((data.size(0) - 1) * data.size(1))


class Trainer:
    """Trains an :class:`AWDLSTM` on a :class:`Corpus`; see the module docstring.

    ``checkpoint_dir`` (optional) receives ``last.pt`` and ``best.pt`` (every ``checkpoint_every``
    epochs and when a run stops). Both hold state dicts and plain values only (see
    ``awdlib.checkpoint``); ``last.pt`` of a run paused mid-epoch also holds its :class:`EpochPlace`.
    """

    def __init__(self, model: AWDLSTM, corpus: Corpus, config: TrainConfig,
                 checkpoint_dir: str | Path | None = None):
        self.model, self.corpus, self.config = model, corpus, config
        self.device = next(model.parameters()).device
        if self.device.type == "cuda":
            use_tf32(config.tf32)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.train_data = batchify(corpus.train, config.batch_size).to(self.device)
        self.valid_data = batchify(corpus.valid, config.eval_batch_size).to(self.device)
        self.optimizer = self._make_optimizer(config.optimizer)
        self.batch_generator = torch.Generator().manual_seed(config.seed)
        self.history = History()
        self.epoch = 0
        self.phase = "train"
        self.best_valid_loss = math.inf
        self.unfinished: EpochPlace | None = None  # an epoch paused by the time budget
        self.holds_best = False  # the model holds best.pt's weights (load_best), not the iterate
        self._unsaved_best: dict | None = None  # best.pt's contents, to be written at the next save
        self._saved_at: tuple[int, int, float] | None = None  # last.pt's (epoch, step, clock)
        self._rng_at_stop: dict | None = None  # the random states where the last fit() stopped

    def _make_optimizer(self, mode: str) -> NTASGD:
        c = self.config
        return NTASGD(self.model, lr=c.lr, weight_decay=c.weight_decay, n=c.nonmono, mode=mode)

    # ----------------------------------------------------------------------------------------- train
    def fit(self, epochs: int | None = None) -> History:
        """Train until epoch ``epochs`` (default ``config.epochs``), the time budget, or a non-finite loss.

        In ``"ntasgd"`` mode the trigger is checked once per epoch (L = 1 epoch) and, when it fires,
        averaging starts; later evaluations and ``best.pt`` use the averaged weights. An epoch paused
        by the time budget is finished first.
        """
        if self.finetuning_done:
            return self._nothing_to_train()
        # A resumed fine-tuning run keeps fine-tuning's rule: stop when the criterion fires.
        on_trigger = "stop" if self.phase == "finetune" else "average"
        return self._run(epochs or self.config.epochs, on_trigger=on_trigger)

    @property
    def finetuning_done(self) -> bool:
        """Fine-tuning's non-monotonic criterion has fired: the run is finished, and :meth:`fit` and
        :meth:`finetune` train nothing more (the trigger fires once, so going on would run to the epoch
        cap instead of stopping by the criterion)."""
        return self.phase == "finetune" and self.optimizer.trigger.fired_at is not None

    def _nothing_to_train(self) -> History:
        self._log(f"fine-tuning has finished (the non-monotonic criterion was met at epoch "
                  f"{self.epoch}): nothing to train; the best weights are in best.pt")
        return self.history

    def finetune(self, epochs: int = 300) -> History:
        """Fine-tune (paper Section 5): restart averaged SGD (T = 0) from the best weights so far,
        evaluate the average every epoch, keep the best, stop when the non-monotonic criterion fires.

        The official ``finetune.py`` is broken on current PyTorch; this follows its intent. A training
        epoch paused by the time budget is dropped: fine-tuning starts from the best weights.
        """
        if self.finetuning_done:
            return self._nothing_to_train()
        if self.unfinished is not None:
            self._log(f"dropping the paused epoch {self.epoch + 1} ({self.unfinished.steps} steps): "
                      f"fine-tuning starts from the best weights")
            self.unfinished = None
        if self._unsaved_best or self.checkpoint_dir and (self.checkpoint_dir / "best.pt").exists():
            self.load_best()
        elif self.optimizer.averaging:
            with self.optimizer.averaged_weights():
                best = clone_state_dict(self.model)
            self.model.load_state_dict(best)
        self.phase = "finetune"
        self.optimizer = self._make_optimizer("asgd")
        if self._saved_at:  # count the new optimizer's steps as unsaved work
            self._saved_at = (self._saved_at[0], 0, self._saved_at[2])
        self._log(f"fine-tuning from epoch {self.epoch + 1}: averaging from the first step")
        return self._run(self.epoch + epochs, on_trigger="stop")

    def _run(self, last_epoch: int, on_trigger: str) -> History:
        self.holds_best = False  # training goes on from the iterate
        self.history.stop_reason = None  # this call's own reason (None: it reached its last epoch)
        if self._rng_at_stop is not None:  # go on with the random streams where the last run stopped,
            set_rng_state(self._rng_at_stop, self.device, self.batch_generator)  # as a resume would
            self._rng_at_stop = None
        self._run_span = (self.epoch, last_epoch, wall_clock())  # for _time_left
        deadline = None if self.config.time_budget is None else \
            time.perf_counter() + self.config.time_budget
        if self.unfinished is None and self._patience_used_up():  # a resumed run that had stopped
            return self.history
        try:
            while self.epoch < last_epoch:
                if deadline is not None and time.perf_counter() >= deadline:
                    self._stop(f"time budget of {self.config.time_budget:g} s used after epoch "
                               f"{self.epoch}")
                    break
                result = self._train_epoch(deadline)
                if result is None:  # diverged: the last good checkpoint is back, nothing to save
                    return self.history
                if self.unfinished is not None:
                    p = self.unfinished
                    self._stop(f"time budget of {self.config.time_budget:g} s used in epoch "
                               f"{self.epoch + 1}, paused after {p.steps} steps ({p.tokens:,} "
                               f"tokens); the next fit() or resume carries on from there")
                    break
                outcome = self._end_epoch(*result, on_trigger)
                if outcome == "diverged":
                    return self.history
                if outcome == "stop":
                    break
        except KeyboardInterrupt:
            self._log(f"interrupted in epoch {self.epoch + 1}: {self.discarded_work()}")
            raise
        self._rng_at_stop = rng_state(self.device, self.batch_generator)
        self._save()  # every other stop leaves last.pt (and best.pt) current
        return self.history

    def _end_epoch(self, train_loss: float, tokens: int, seconds: float, on_trigger: str):
        """Evaluate the finished epoch, record it, feed the trigger, checkpoint; "stop" to stop,
        "diverged" after a non-finite validation loss."""
        with self.optimizer.averaged_weights():
            valid_loss = evaluate(self.model, self.valid_data, self.config.bptt)
        if not math.isfinite(valid_loss):
            self._diverge(f"non-finite validation loss ({valid_loss}) after epoch {self.epoch + 1}")
            return "diverged"
        self.epoch += 1
        record = {
            "epoch": self.epoch, "phase": self.phase,
            "train_loss": train_loss, "train_ppl": perplexity(train_loss),
            "valid_loss": valid_loss, "valid_ppl": perplexity(valid_loss),
            "seconds": seconds, "tokens_per_s": tokens / seconds,
            "averaging": self.optimizer.averaging,
        }
        self.history.records.append(record)
        improved = valid_loss < self.best_valid_loss
        # Logged before the checkpoints are written, so a failed save does not lose the result.
        self._log(self._summary(record) + self._time_left() + ("  *best*" if improved else ""))
        if improved:
            self.best_valid_loss = valid_loss
            if self.checkpoint_dir:  # the averaged weights now; written with the next last.pt
                self._unsaved_best = clone_tensors(self.state_dict(averaged=True))
        fired = self.optimizer.check(valid_loss)
        if fired and on_trigger == "average" and self.optimizer.mode == "ntasgd":
            self._log(f"non-monotonic trigger fired at epoch {self.epoch}: averaging from now on")
        if self.epoch % self.config.checkpoint_every == 0:
            self._save()
        if fired and on_trigger == "stop":
            self._stop(f"non-monotonic criterion met at epoch {self.epoch}: fine-tuning done")
            return "stop"
        if self._patience_used_up():
            return "stop"
        return None

    def _patience_used_up(self) -> bool:
        """Early stopping: whether this phase has gone ``patience`` epochs without a better
        validation loss (:meth:`History.last_improvement`); if so, say so as the stop reason.
        Counted within the phase, so that fine-tuning after early stopping gets its own patience."""
        patience, share = self.config.patience, self.config.min_improvement
        phase = [r for r in self.history.records if r["phase"] == self.phase]
        if not patience or not phase:
            return False
        since = max(self.history.last_improvement(share), phase[0]["epoch"] - 1)
        if self.epoch - since < patience:
            return False
        better = f" (better: by more than {share:.2%} in perplexity)" if share else ""
        self._stop(f"no better validation loss for {patience} epochs{better}: stopped early at "
                   f"epoch {self.epoch}")
        return True

    def _step(self, inputs: torch.Tensor, targets: torch.Tensor, seq_len: int,
              hidden: Hidden) -> tuple[Hidden, torch.Tensor, torch.Tensor]:
        """One window of the recipe; returns the new hidden state, the cross-entropy and the loss
        with AR/TAR, both still on the device."""
        c, opt = self.config, self.optimizer
        for group in opt.sgd.param_groups:  # longer windows take larger steps (Section 4.1)
            group["lr"] = c.lr * seq_len / c.bptt
        out = self.model(inputs, detach_hidden(hidden))  # truncated BPTT: no gradient into the past
        raw_loss = F.cross_entropy(out.logits.flatten(0, 1), targets.flatten())
        loss = raw_loss
        if c.alpha:  # AR on the last layer's dropped output (Section 4.6)
            loss = loss + activation_regularization(out.dropped_outputs[-1], c.alpha)
        if c.beta:  # TAR on its raw output
            loss = loss + temporal_activation_regularization(out.raw_outputs[-1], c.beta)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.clip)
        opt.step()  # SGD, and the running average once averaging has started (Section 3)
        return out.hidden, raw_loss.detach(), loss.detach()

    def _train_epoch(self, deadline: float | None):
        """Train the rest of the epoch: ``(mean loss, tokens, seconds)``; None if the loss became
        non-finite; with the epoch left in :attr:`unfinished` if ``deadline`` passed first."""
        c = self.config
        self.model.train()
        place = self.unfinished or EpochPlace(0, self.model.init_hidden(c.batch_size),
                                              torch.zeros((), dtype=torch.float64, device=self.device))
        if place.rng is not None:  # continue the paused epoch's random streams
            set_rng_state(place.rng, self.device, self.batch_generator)
            place.rng = None
        self.unfinished = None
        loss_check = torch.zeros((), device=self.device)  # not finite once any loss was not
        last = self.train_data.size(0) - 1
        bar = _progress(c.progress, total=last * c.batch_size, initial=place.tokens,
                        desc=f"epoch {self.epoch + 1}")
        start = time.perf_counter()
        for inputs, targets, seq_len in bptt_batches(self.train_data, c.bptt, c.variable_bptt,
                                                     self.batch_generator, start=place.position):
            place.hidden, raw_loss, loss = self._step(inputs, targets, seq_len, place.hidden)
            place.loss_sum += raw_loss.double() * targets.numel()
            loss_check += loss
            place.position += seq_len
            place.tokens += targets.numel()
            place.steps += 1
            bar.update(targets.numel())
            pause = deadline is not None and time.perf_counter() >= deadline and place.position < last
            if pause or place.steps % c.sync_every == 0 or place.position == last:
                finite = torch.isfinite(loss_check)
                if pause:  # these weights go into last.pt without a validation loss: check them
                    finite &= torch.stack([p.isfinite().all() for p in self.model.parameters()]).all()
                loss_sum, ok = torch.stack([place.loss_sum, finite.double()]).tolist()
                if not ok:  # the only way out of an epoch without a place to go on
                    bar.close()
                    self._diverge(f"non-finite loss in epoch {self.epoch + 1}, found after step "
                                  f"{place.steps} ({place.tokens:,} tokens)")
                    return None
                bar.set_postfix(ppl=f"{perplexity(loss_sum / place.tokens):.1f}", refresh=False)
            if pause:
                break
        bar.close()
        place.seconds += time.perf_counter() - start
        if place.position < last:  # paused: keep the place, and the random states to go on with
            place.rng = rng_state(self.device, self.batch_generator)
            self.unfinished = place
        return float(place.loss_sum) / place.tokens, place.tokens, place.seconds

    # ------------------------------------------------------------------------------------ evaluate
    def evaluate(self, split: str = "valid", batch_size: int | None = None) -> float:
        """Loss on ``"valid"`` (batch ``eval_batch_size``) or ``"test"`` (batch ``test_batch_size``)
        of the weights the model holds: after :meth:`load_best` the best ones, otherwise the averaged
        weights while averaging and the iterate before."""
        if batch_size is None:
            batch_size = self.config.test_batch_size if split == "test" else \
                self.config.eval_batch_size
        average = None if self.holds_best else self.optimizer.average
        with averaged_weights(self.model, average):
            return evaluate(self.model, getattr(self.corpus, split), self.config.bptt, batch_size)

    def load_best(self) -> None:
        """Put the best validation weights (``best.pt``, or the newer ones not yet written to it)
        into the model; :meth:`evaluate` then evaluates them, and training goes on from them."""
        state = self._unsaved_best or load_checkpoint(self.checkpoint_dir / "best.pt", self.device)
        self.model.load_state_dict(state["model"])
        self.holds_best = True

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
            "rng": rng_state(self.device, self.batch_generator),
            "unfinished": None if self.unfinished is None else self.unfinished.to_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.phase = state["epoch"], state["phase"]
        self.best_valid_loss = state["best_valid_loss"]
        self.history = History.from_dict(state["history"])
        set_rng_state(state["rng"], self.device, self.batch_generator)
        unfinished = state.get("unfinished")
        self.unfinished = None if unfinished is None else EpochPlace.from_dict(unfinished, self.device)
        self._unsaved_best, self.holds_best = None, False
        self._saved_at = (self.epoch, self.optimizer.steps, time.perf_counter())

    @classmethod
    def resume(cls, path: str | Path, corpus: Corpus, device: str | torch.device = "cpu",
               **overrides) -> Trainer:
        """Rebuild a trainer from ``last.pt`` and continue where it stopped, mid-epoch if the time
        budget paused it there (``overrides`` change the stored TrainConfig, e.g. ``epochs``).
        A ``last.pt`` that lacks a field, or holds one of the wrong kind, raises a one-line
        ``ValueError`` naming it."""
        state = load_checkpoint(path, device)
        check_resumable(state)
        model = build_model(state).to(device)
        try:
            config = TrainConfig(**{**state["train_config"], **overrides})
        except TypeError as exc:  # a field TrainConfig does not have
            raise ValueError(f"the checkpoint's train_config is not valid ({exc})") from None
        trainer = cls(model, corpus, config, checkpoint_dir=Path(path).parent)
        trainer.optimizer = trainer._make_optimizer(state["optimizer"]["mode"])
        try:
            trainer.load_state_dict(state)
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ValueError(f"the checkpoint's optimizer state does not fit its model "
                             f"({detail})") from None
        return trainer

    def _save(self) -> None:
        """Write the best weights found since the last save (if any) to ``best.pt``, then ``last.pt``."""
        if self.checkpoint_dir:
            self._write_unsaved_best()
            save_checkpoint(self.checkpoint_dir / "last.pt", self.state_dict())
            self._saved_at = (self.epoch, self.optimizer.steps, time.perf_counter())

    def _write_unsaved_best(self) -> None:
        if self._unsaved_best is not None:
            save_checkpoint(self.checkpoint_dir / "best.pt", self._unsaved_best)
            self._unsaved_best = None

    def discarded_work(self) -> str:
        """What stopping now, without a save, throws away: the training since ``last.pt``."""
        if not self.checkpoint_dir:
            return "nothing is saved (no checkpoint folder)"
        if self._saved_at is None:
            return f"all {self.optimizer.steps} training steps so far are lost (nothing saved yet)"
        epoch, steps, clock = self._saved_at
        return (f"the {self.optimizer.steps - steps} training steps and {time.perf_counter() - clock:.0f}"
                f" s since last.pt was written (after epoch {epoch}) are lost")

    def _diverge(self, reason: str) -> None:
        """Stop on a non-finite loss and go back to the last good checkpoint."""
        self.history.diverged = True
        self._stop(reason)
        self._restore_last_good()

    def _restore_last_good(self) -> None:
        last = self.checkpoint_dir / "last.pt" if self.checkpoint_dir else None
        if last and last.exists():
            history, lost = self.history, self.discarded_work()  # the stored history lacks the stop
            self.load_state_dict(load_checkpoint(last, self.device))
            history.records = [r for r in history.records if r["epoch"] <= self.epoch]
            self.history = history
            self._log(f"kept the last good checkpoint {last} and restored it (epoch {self.epoch}); "
                      f"{lost}")
        else:
            self._log("no checkpoint to restore: the model's weights may no longer be finite")

    # ------------------------------------------------------------------------------------- logging
    def _summary(self, r: dict) -> str:
        avg = " (averaged)" if r["averaging"] else ""
        return (f"epoch {r['epoch']:3d} | train ppl {r['train_ppl']:8.2f} | valid ppl "
                f"{r['valid_ppl']:8.2f}{avg} | {r['seconds']:6.1f} s | {r['tokens_per_s']:6.0f} tok/s")

    def _time_left(self) -> str:
        """`` | <= 12.5 min left``: the epochs up to this call's cap at the pace of its epochs so far,
        validation included (early stopping or the criterion may end the run sooner)."""
        first, last, started = self._run_span
        if self.epoch >= last:
            return ""
        seconds = (last - self.epoch) * (wall_clock() - started) / (self.epoch - first)
        return f" | <= {seconds / 60:.1f} min left"

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
