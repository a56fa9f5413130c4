"""Command line: ``python -m awdlib {data,train,finetune,evaluate,cache,dynamic,generate,experiment}``.

Examples::

    python -m awdlib data ptb
    python -m awdlib train --preset demo --checkpoint-dir runs/demo --set model.wdrop=0.3 train.lr=20
    python -m awdlib train --preset demo --checkpoint-dir runs/demo --epochs 30 --resume
    python -m awdlib finetune --checkpoint-dir runs/demo --epochs 5
    python -m awdlib evaluate runs/demo/best.pt --split test
    python -m awdlib cache runs/demo/best.pt --search
    python -m awdlib dynamic runs/demo/best.pt --search --search-tokens 30000
    python -m awdlib generate runs/demo/best.pt --words 40 --temperature 0.8 --seed 1
    python -m awdlib experiment ladder --preset demo --seeds 141 142 143 --workers 2
    python -m awdlib experiment ablation --preset ablation-demo --seeds 141 142 143 --workers 2
    python -m awdlib experiment crossover --preset crossover-pilot --seeds 141 --workers 2
    python -m awdlib experiment ablation --preset ablation-demo --executor submitit --workers 24 \
        --partition gpu --gpus-per-node 1 --device cuda --timeout-min 1200

Flags map onto the dataclasses (:class:`~awdlib.presets.Preset`, :class:`~awdlib.train.TrainConfig`,
:class:`~awdlib.model.AWDLSTMConfig`); ``--set`` reaches any of their fields, and the dataclasses check
the values. Needs only torch, numpy and tqdm. ``train`` writes ``run.json`` (the preset, its data
fractions and the ``--set`` changes) beside the checkpoints once the settings, data and model are
known to be good, so that later commands load the same slice of the same corpus. It refuses a folder
that already holds a run unless told ``--resume`` (continue it, to its own ``--epochs`` unless given
again) or ``--overwrite`` (delete its checkpoints and start over).

Exit codes: 0 success; 1 a mistake the user can fix, reported in one ``error:`` line; 2 a malformed
command line (argparse); 3 (``EXIT_NOT_FINITE``) a run stopped by a non-finite loss, or an evaluation
that is not finite; 130 interrupted (Ctrl-C), with ``train --resume`` continuing from ``last.pt`` (the
last checkpointed epoch, or the place where a time budget paused the run: ``--time-budget`` stops
cleanly and exactly resumably, even mid-epoch).
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import math
import shlex
import sys
from pathlib import Path

import torch

from .checkpoint import atomic_file, check_resumable
from .checks import check_seed
from .data import DataError, dataset_dir, load_corpus, resolve_name
from .dynamic import AUTHORS_FAST_TOKENS, STAT_BATCH_SIZE
from .executors import EXECUTORS
from .dynamic import AUTHORS_SETTINGS as AUTHORS_DYNAMIC
from .presets import PRESETS, Preset
from .train import TrainConfig, Trainer, evaluate, perplexity

RUN_FILE = "run.json"
CHECKPOINTS = ("last.pt", "best.pt")
PRESET_FIELDS = ("dataset", "train_fraction", "eval_fraction", "finetune_epochs")
# What evaluate and generate read from a checkpoint; train --resume and finetune need all of Trainer's.
CHECKPOINT_KEYS = ("model_config", "train_config", "model")
RESUME_KEYS = CHECKPOINT_KEYS + ("optimizer", "epoch", "phase", "best_valid_loss", "history", "rng")
EXIT_ERROR, EXIT_NOT_FINITE, EXIT_INTERRUPTED = 1, 3, 130


class CommandError(Exception):
    """A problem the user can fix; printed in one line without a traceback."""

    exit_code = EXIT_ERROR


class NotFiniteError(CommandError):
    """A run stopped by a non-finite loss, or an evaluation that is not finite."""

    exit_code = EXIT_NOT_FINITE


class Interrupted(CommandError):
    """Ctrl-C during training."""

    exit_code = EXIT_INTERRUPTED


def positive_int(text: str, minimum: int = 1) -> int:
    """argparse type: an integer >= 1 (>= ``minimum``)."""
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
    return value


def count(text: str) -> int:
    """argparse type: an integer >= 0."""
    return positive_int(text, minimum=0)


def seed(text: str) -> int:
    """argparse type: a seed torch accepts (64 bits)."""
    try:
        value = int(text)
        check_seed("seed", value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer from -2**63 to 2**64 - 1 (a 64-bit "
                                         f"seed), got {text!r}") from None
    return value


def quoted(path) -> str:
    """A path as a shell command needs it (quoted when it holds spaces or other special characters)."""
    return shlex.quote(str(path))


# ------------------------------------------------------------------------------------------- --set
def parse_value(key: str, text: str, current):
    """``text`` converted to the type of the field's current value (``none`` clears an optional)."""
    if text.lower() == "none":
        return None
    if isinstance(current, bool):
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise CommandError(f"{key}: expected true or false, got {text!r}")
    if isinstance(current, str):
        return text
    for kind in (int, float):
        if current is None or isinstance(current, kind):
            try:
                return kind(text)
            except ValueError:
                if current is not None:
                    raise CommandError(f"{key}: expected {'an integer' if kind is int else 'a number'}"
                                       f", got {text!r}") from None
    return text


def apply_settings(preset: Preset, settings: list[str], **train_changes) -> Preset:
    """Apply ``model.KEY=VALUE``, ``train.KEY=VALUE`` and ``KEY=VALUE`` (a Preset field) changes,
    then ``train_changes`` (from flags such as ``--epochs``); a value the dataclasses refuse is a
    :class:`CommandError`."""
    model_defaults = {f.name: f.default for f in dataclasses.fields(preset.model_config(1))}
    try:
        for setting in settings:
            key, sep, text = setting.partition("=")
            if not sep:
                raise CommandError(f"--set expects KEY=VALUE, got {setting!r}")
            section, _, name = key.rpartition(".")
            if section == "model" and name in model_defaults and name != "vocab_size":
                current = preset.model.get(name, model_defaults[name])
                preset = preset.with_model(**{name: parse_value(key, text, current)})
            elif section == "train" and name in {f.name for f in dataclasses.fields(TrainConfig)}:
                current = getattr(preset.train, name)
                preset = preset.with_train(**{name: parse_value(key, text, current)})
            elif section == "" and name in PRESET_FIELDS:
                current = getattr(preset, name)
                preset = dataclasses.replace(preset, **{name: parse_value(key, text, current)})
            else:
                known = ([f"model.{k}" for k in model_defaults if k != "vocab_size"]
                         + [f"train.{f.name}" for f in dataclasses.fields(TrainConfig)]
                         + list(PRESET_FIELDS))
                raise CommandError(f"unknown setting {key!r}; known: {', '.join(known)}")
        return preset.with_train(**train_changes)
    except ValueError as exc:  # the dataclasses' checks name the field, the value and what is allowed
        raise CommandError(str(exc)) from None


# -------------------------------------------------------------------------------- runs on disk
def load_state(path: str | Path, device: str = "cpu", keys=CHECKPOINT_KEYS) -> dict:
    """A checkpoint's contents, or a :class:`CommandError` saying why it cannot be read."""
    from .checkpoint import load_checkpoint

    path = Path(path)
    if not path.is_file():
        raise CommandError(f"checkpoint {path} does not exist")
    try:
        state = load_checkpoint(path, device)
    except ValueError as exc:  # a torch file, but not one of ours
        raise CommandError(str(exc)) from None
    except Exception as exc:  # torch raises several types for a file that is not a torch file
        raise CommandError(f"{path} is not an awdlib checkpoint: torch.load could not read it "
                           f"({type(exc).__name__}); give a last.pt or best.pt written by "
                           f"'python -m awdlib train'") from None
    missing = [k for k in keys if k not in state]
    if missing:
        raise CommandError(f"{path} lacks {', '.join(missing)}: expected a complete checkpoint; give "
                           f"a last.pt or best.pt written by 'python -m awdlib train'")
    if keys == RESUME_KEYS:
        try:
            check_resumable(state)
        except ValueError as exc:
            raise CommandError(f"{path}: {exc}; give a last.pt written by 'python -m awdlib train'") \
                from None
    return state


def read_run_file(run_file: Path) -> dict:
    """``run.json``'s contents: ``{"preset": NAME, "set": [KEY=VALUE, ...]}``."""
    try:
        run = json.loads(run_file.read_text())
    except (OSError, ValueError):  # unreadable, not UTF-8, not JSON
        run = None
    if not (isinstance(run, dict) and run.get("preset") in PRESETS and isinstance(run.get("set"), list)
            and all(isinstance(s, str) for s in run["set"])):
        raise CommandError(f"{run_file} is not a run file: expected {{\"preset\": one of "
                           f"{', '.join(sorted(PRESETS))}, \"set\": [\"KEY=VALUE\", ...]}} as train "
                           f"writes it; restore it, or delete it to use the checkpoint's own settings "
                           f"(with whole valid and test splits)")
    return run


def run_preset(checkpoint_dir: Path, state: dict) -> Preset:
    """The preset a run was trained with: from its ``run.json``, else rebuilt from the checkpoint
    (e.g. one written by a notebook): its corpus name, ``ptb`` or ``ptb[0.1]`` for the first 10% of
    the training split, and whole valid and test splits."""
    run_file = checkpoint_dir / RUN_FILE
    if run_file.is_file():
        run = read_run_file(run_file)
        return apply_settings(PRESETS[run["preset"]], run["set"])
    dataset, _, fraction = str(state.get("corpus") or "ptb").partition("[")
    model = {k: v for k, v in state["model_config"].items() if k != "vocab_size"}
    try:
        return Preset("checkpoint", resolve_name(dataset), model, stored_train_config(state),
                      train_fraction=float(fraction.rstrip("]") or 1.0))
    except (TypeError, ValueError) as exc:
        raise CommandError(f"{checkpoint_dir} has no {RUN_FILE} and the checkpoint's own settings "
                           f"do not describe a run ({exc}); train it with 'python -m awdlib train'") \
            from None


def stored_train_config(state: dict) -> TrainConfig:
    try:
        return TrainConfig(**state["train_config"])
    except (TypeError, ValueError) as exc:
        raise CommandError(f"the checkpoint's train_config is not valid ({exc}); give a last.pt or "
                           f"best.pt written by 'python -m awdlib train'") from None


def load_run_corpus(preset: Preset, args):
    return preset.corpus(root=args.data_root, download=not args.no_download)


def check_pairing(state: dict, corpus, path) -> None:
    """Refuse a checkpoint trained on another corpus (or vocabulary) than the data its run's
    ``run.json`` describes: its word ids would index the wrong words."""
    trained_on = str(state.get("corpus") or "")
    vocab = state["model_config"].get("vocab_size") if isinstance(state["model_config"], dict) \
        else None
    same_data = trained_on.partition("[")[0] in ("", corpus.name.partition("[")[0])
    if same_data and vocab == len(corpus.vocab):
        return
    source = Path(path).parent / RUN_FILE
    source = source if source.is_file() else "the checkpoint's own settings"
    raise CommandError(f"{path} was trained on {trained_on or 'an unnamed corpus'} (a vocabulary of "
                       f"{vocab} words), but {source} describes a run on {corpus.name} (a vocabulary "
                       f"of {len(corpus.vocab)} words): they do not belong together; keep each "
                       f"checkpoint beside the run.json of the run that wrote it")


def model_from_state(state: dict, device: str, path):
    from .checkpoint import build_model

    try:
        return build_model(state).to(device)
    except ValueError as exc:
        raise CommandError(f"{path}: {exc}; give a last.pt or best.pt written by "
                           f"'python -m awdlib train'") from None


def resumed_trainer(path: Path, corpus, device: str, **config) -> Trainer:
    try:
        return Trainer.resume(path, corpus, device, **config)
    except ValueError as exc:  # weights that do not fit the stored model_config
        raise CommandError(f"{path}: {exc}; give a last.pt written by 'python -m awdlib train'") \
            from None


def check_device(device: str) -> str:
    try:
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError):  # an unknown type, one this torch lacks, no such index
        usable = "cpu" + (", cuda or cuda:N" if torch.cuda.is_available() else "")
        raise CommandError(f"--device {device}: this machine's torch ({torch.__version__}) cannot "
                           f"use it; use --device {usable}") from None
    return device


def saved_place(folder: Path) -> tuple[str, str, int] | None:
    """Where ``folder/last.pt`` stands ("epoch 3", or "epoch 3 and 120 steps of epoch 4" when the
    time budget paused it mid-epoch), its phase ("train" or "finetune") and epoch, or None when
    there is none."""
    from .checkpoint import load_checkpoint

    last = folder / "last.pt"
    if not last.is_file():
        return None
    state = load_checkpoint(last)
    place, epoch = state.get("unfinished"), state["epoch"]
    return (f"epoch {epoch}" + (f" and {place['steps']} steps of epoch {epoch + 1}" if place else ""),
            state["phase"], epoch)


def refuse_to_clobber(folder: Path) -> None:
    held = [name for name in (*CHECKPOINTS, RUN_FILE) if (folder / name).exists()]
    if held:
        raise CommandError(f"{folder} already holds a run ({', '.join(held)}); add --resume to "
                           f"continue it, or --overwrite to delete its checkpoints and start over")


def start_run_folder(folder: Path, run: dict, overwrite: bool) -> None:
    """Create ``folder`` (with ``overwrite``, delete an old run's files) and write ``run.json``."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if overwrite:
            for name in (*CHECKPOINTS, RUN_FILE):
                (folder / name).unlink(missing_ok=True)
        with atomic_file(folder / RUN_FILE) as f:
            f.write((json.dumps(run, indent=1) + "\n").encode())
    except OSError as exc:
        raise CommandError(f"cannot write to --checkpoint-dir {folder} ({exc.strerror}); give a "
                           f"folder you can write to") from None


def how_to_continue(folder: Path | None, finetune: tuple[int, int] | None = None) -> str:
    """The command that continues the run in ``folder``. ``finetune`` is ``(epochs, last epoch)`` of
    an interrupted ``finetune``: ``train --resume`` to that last epoch goes on fine-tuning from
    ``last.pt`` once it holds one of its epochs; before that, ``finetune`` starts it again."""
    if folder is None:
        return "nothing was saved (no --checkpoint-dir)"
    saved = saved_place(folder)
    if saved is None:
        return f"start again with --overwrite (nothing is saved in {quoted(folder)} yet)"
    (place, phase, epoch), command = saved, \
        f"python -m awdlib train --checkpoint-dir {quoted(folder)} --resume"
    if finetune and phase == "finetune" and epoch > finetune[1] - finetune[0]:
        return (f"continue fine-tuning with \"{command} --epochs {finetune[1]}\" (last.pt holds "
                f"{place}, fine-tuned)")
    if finetune:
        return (f"start fine-tuning again with \"python -m awdlib finetune --checkpoint-dir "
                f"{quoted(folder)} --epochs {finetune[0]}\" (none of its epochs was saved; last.pt "
                f"holds {place})")
    return f"continue with \"{command}\" (last.pt holds {place})"


def train_to_the_end(trainer: Trainer, train, finetune: tuple[int, int] | None = None) -> None:
    """Run ``train()`` (fit or, with ``finetune`` as in :func:`how_to_continue`, finetune) and print
    the summary; a stop on a non-finite loss, a failed save or Ctrl-C becomes a one-line error that
    says how to continue and, for Ctrl-C, how much work is lost."""
    folder = trainer.checkpoint_dir
    try:
        train()
    except KeyboardInterrupt:
        raise Interrupted(f"{'fine-tuning' if finetune else 'training'} interrupted after epoch "
                          f"{trainer.epoch}; {trainer.discarded_work()}; "
                          f"{how_to_continue(folder, finetune)}") from None
    except OSError as exc:  # a full disk while saving a checkpoint
        fix = "make room" if exc.errno == errno.ENOSPC else "fix that"
        raise CommandError(f"could not save {exc.filename}: {str(exc.strerror or exc).lower()}; "
                           f"{fix}, then {how_to_continue(folder, finetune)}") from None
    print(summary(trainer))
    if trainer.history.diverged:
        kept = f"; {folder / 'last.pt'} keeps epoch {trainer.epoch}" if folder and trainer.epoch else ""
        raise NotFiniteError(f"{trainer.history.stop_reason}: training stopped{kept}; try a lower "
                             f"train.lr or train.clip")


def summary(trainer: Trainer) -> str:
    best = trainer.history.best()
    where = f"; checkpoints in {trainer.checkpoint_dir}" if trainer.checkpoint_dir else ""
    if best is None:
        return f"no epoch finished{where}"
    return (f"best valid ppl {best['valid_ppl']:.2f} at epoch {best['epoch']} "
            f"({len(trainer.history.records)} epochs so far){where}")


# ------------------------------------------------------------------------------------ commands
def cmd_data(args) -> None:
    try:
        resolve_name(args.name)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    folder = dataset_dir(args.name, root=args.data_root, download=not args.no_download)
    corpus = load_corpus(args.name, root=args.data_root, download=False)
    print(f"{corpus.name}: {folder} (md5 verified)")
    print(f"vocab {len(corpus.vocab):,} words")
    for split in ("train", "valid", "test"):
        print(f"{split:<5} {len(getattr(corpus, split)):>10,} tokens")


def cmd_train(args) -> None:
    device = check_device(args.device)
    checkpoint_dir = Path(args.checkpoint_dir) if args.checkpoint_dir else None
    changes = {k: v for k, v in (("epochs", args.epochs), ("time_budget", args.time_budget))
               if v is not None}
    if args.progress is not None:
        changes["progress"] = args.progress
    if args.resume:
        if checkpoint_dir is None or not (checkpoint_dir / "last.pt").is_file():
            raise CommandError("--resume needs --checkpoint-dir DIR holding last.pt from an earlier "
                               "train run")
        state = load_state(checkpoint_dir / "last.pt", device, RESUME_KEYS)
        preset = run_preset(checkpoint_dir, state)
        if any(s.startswith("model.") for s in args.set):
            raise CommandError("--resume continues the stored model; model.* settings cannot change it")
        changes = {"epochs": state["train_config"]["epochs"], **changes}  # the run's own target
        preset = apply_settings(preset, args.set, **changes)
        corpus = load_run_corpus(preset, args)
        check_pairing(state, corpus, checkpoint_dir / "last.pt")
        trainer = resumed_trainer(checkpoint_dir / "last.pt", corpus, device,
                                  **dataclasses.asdict(preset.train))
        print(f"resuming after epoch {trainer.epoch} from {checkpoint_dir / 'last.pt'}")
    else:
        if checkpoint_dir and not args.overwrite:
            refuse_to_clobber(checkpoint_dir)
        preset = apply_settings(PRESETS[args.preset], args.set, **changes)
        corpus = load_run_corpus(preset, args)
        try:
            trainer = preset.trainer(corpus, device, checkpoint_dir)
        except ValueError as exc:  # a batch size the data cannot fill
            raise CommandError(str(exc)) from None
        if checkpoint_dir:
            run = {"preset": args.preset, "set": list(args.set)}  # the target epochs: in last.pt
            start_run_folder(checkpoint_dir, run, args.overwrite)
        print(f"preset {preset.name!r} ({preset.description}); {trainer.model.num_parameters():,} "
              f"parameters on {device}")
    if trainer.epoch >= preset.train.epochs:
        print(f"the run has finished epoch {trainer.epoch} of {preset.train.epochs}; give --epochs "
              f"N (more than {trainer.epoch}) to train further")
        return
    train_to_the_end(trainer, lambda: trainer.fit(preset.train.epochs))


def cmd_finetune(args) -> None:
    device = check_device(args.device)
    checkpoint_dir = Path(args.checkpoint_dir)
    state = load_state(checkpoint_dir / "last.pt", device, RESUME_KEYS)
    best = checkpoint_dir / "best.pt"
    # Fine-tuning starts from best.pt: refuse a broken, unsafe or foreign one as evaluate does.
    best_state = load_state(best, device) if best.exists() else None
    if best_state:
        model_from_state(best_state, device, best)
    preset = run_preset(checkpoint_dir, state)
    corpus = load_run_corpus(preset, args)
    for path, checked in ((checkpoint_dir / "last.pt", state), (best, best_state)):
        if checked:
            check_pairing(checked, corpus, path)
    trainer = resumed_trainer(checkpoint_dir / "last.pt", corpus, device)
    epochs = args.epochs or preset.finetune_epochs or 300
    train_to_the_end(trainer, lambda: trainer.finetune(epochs), (epochs, trainer.epoch + epochs))


def holds_the_iterate_while_averaging(state: dict) -> bool:
    """Whether a checkpoint (a ``last.pt``) holds the raw weights of the last step while the
    optimizer was already averaging them, so that its score is not the one the epoch log showed."""
    optimizer = state.get("optimizer")
    average = optimizer.get("average") if isinstance(optimizer, dict) else None
    if not isinstance(average, dict):
        return False
    means = {k.removeprefix("module."): v for k, v in average.items() if isinstance(v, torch.Tensor)}
    return any(name in means and not torch.equal(weight, means[name])
               for name, weight in state["model"].items())


def cmd_evaluate(args) -> None:
    device = check_device(args.device)
    state = load_state(args.checkpoint, device)
    preset = run_preset(Path(args.checkpoint).parent, state)
    corpus = load_run_corpus(preset, args)
    check_pairing(state, corpus, args.checkpoint)
    model = model_from_state(state, device, args.checkpoint)
    config = stored_train_config(state)
    batch_size = args.batch_size or (config.test_batch_size if args.split == "test"
                                     else config.eval_batch_size)
    try:
        loss = evaluate(model, getattr(corpus, args.split), config.bptt, batch_size)
    except ValueError as exc:  # more columns than the split can fill
        raise CommandError(f"--batch-size {batch_size}: {exc}") from None
    print(f"{args.split}: loss {loss:.4f}, perplexity {perplexity(loss):.2f} "
          f"({len(getattr(corpus, args.split)):,} tokens of {corpus.name}, batch {batch_size})")
    if holds_the_iterate_while_averaging(state):
        print("scored: the raw weights of the last step; averaging had started, so the epoch log "
              "scored the averaged weights (best.pt holds the best of those)")
    if not math.isfinite(loss):
        finite = all(torch.isfinite(p).all() for p in model.parameters())
        why = "the model overflows on this text" if finite else "the checkpoint's weights are not finite"
        raise NotFiniteError(f"the {args.split} loss is {loss}: {why}; evaluate another checkpoint")


def cmd_cache(args) -> None:
    from .cache import OFFICIAL_SETTINGS, cache_inputs, check_cache_params, search_cache

    device = check_device(args.device)
    state = load_state(args.checkpoint, device)
    preset = run_preset(Path(args.checkpoint).parent, state)
    settings = {**OFFICIAL_SETTINGS[preset.dataset],
                **{k: v for k, v in vars(args).items() if k in ("window", "theta", "lambdah")
                   and v is not None}}
    grid = [("--", settings)] + [("--thetas: ", dict(settings, theta=t)) for t in args.thetas] \
        + [("--lambdahs: ", dict(settings, lambdah=lam)) for lam in args.lambdahs]
    for prefix, point in grid if args.search else grid[:1]:
        try:
            check_cache_params(**point)
        except ValueError as exc:
            raise CommandError(f"{prefix}{exc.args[0]}") from None
    if args.bptt < 1:
        raise CommandError(f"--bptt must be >= 1, got {args.bptt}")
    corpus = load_run_corpus(preset, args)
    check_pairing(state, corpus, args.checkpoint)
    model = model_from_state(state, device, args.checkpoint)
    if args.search:
        result = search_cache(cache_inputs(model, corpus.valid, args.bptt), args.thetas, args.lambdahs,
                              [settings["window"]])
        settings = {k: result.best[k] for k in ("window", "theta", "lambdah")}
        print(f"valid: perplexity {perplexity(result.plain_loss):.2f} without the cache, "
              f"{perplexity(result.best['loss']):.2f} at the best of {result.losses.numel()} points")
        split = "test"
    else:
        split = args.split
    inputs = cache_inputs(model, getattr(corpus, split), args.bptt)
    loss = inputs.loss(**settings)
    plain = -inputs.target_log_probs.double().mean().item()
    print(f"{split}: perplexity {perplexity(plain):.2f} without the cache, {perplexity(loss):.2f} with "
          f"it (loss {loss:.4f}; window {settings['window']}, theta {settings['theta']:g}, lambdah "
          f"{settings['lambdah']:g}; {len(inputs.targets):,} tokens of {corpus.name}, batch 1)")
    if not math.isfinite(loss):
        why = ("the model's own loss is not finite" if not math.isfinite(plain) else
               "with lambdah 1 a word absent from the cache's window has probability 0; use a "
               "lambdah below 1" if settings["lambdah"] == 1 else
               f"theta {settings['theta']:g} overflows the cache's attention; use a smaller theta")
        raise NotFiniteError(f"the {split} loss with the cache is {loss}: {why}")


def cmd_dynamic(args) -> None:
    from .dynamic import (check_dynamic_params, default_grid, dynamic_evaluate, gradient_statistics,
                          search_dynamic)

    device = check_device(args.device)
    state = load_state(args.checkpoint, device)
    preset = run_preset(Path(args.checkpoint).parent, state)
    grid = default_grid(args.segment_len)
    lrs, decays = args.lrs or grid["lrs"], args.decays or grid["decays"]
    points = [("--", dict(lr=args.lr, decay=args.decay))]
    if args.search:
        points = [("--lrs: ", dict(lr=lr, decay=decays[0])) for lr in lrs] + \
            [("--decays: ", dict(lr=lrs[0], decay=decay)) for decay in decays]
    for prefix, point in points:
        try:
            check_dynamic_params(**point, segment_len=args.segment_len, epsilon=args.epsilon)
        except ValueError as exc:
            raise CommandError(f"{prefix}{exc.args[0]}") from None
    corpus = load_run_corpus(preset, args)
    check_pairing(state, corpus, args.checkpoint)
    model = model_from_state(state, device, args.checkpoint)
    settings = dict(segment_len=args.segment_len, epsilon=args.epsilon)
    try:
        ms_grads = gradient_statistics(model, corpus.train, segment_len=args.segment_len,
                                       batch_size=args.stat_batch_size,
                                       max_batches=args.stat_batches, progress=args.progress)
    except ValueError as exc:  # a batch size the training split cannot fill
        raise CommandError(f"--stat-batch-size {args.stat_batch_size}: {exc}") from None
    point = dict(lr=args.lr, decay=args.decay)
    if args.search:
        result = search_dynamic(model, corpus.valid, ms_grads, lrs, decays, **settings,
                                first_tokens=args.search_tokens, progress=args.progress)
        point = {k: result.best[k] for k in ("lr", "decay")}
        print(f"valid: perplexity {perplexity(result.plain_loss):.2f} without adaptation, "
              f"{perplexity(result.best['loss']):.2f} at the best of {result.losses.numel()} points "
              f"(lr {point['lr']:g}, decay {point['decay']:g}; the first {result.tokens:,} tokens)")
        split = "test"
    else:
        split = args.split
    ids = getattr(corpus, split)
    loss = dynamic_evaluate(model, ids, **point, ms_grads=ms_grads, **settings,
                            progress=args.progress)
    plain = evaluate(model, ids, stored_train_config(state).bptt, 1)
    print(f"{split}: perplexity {perplexity(plain):.2f} without adaptation, {perplexity(loss):.2f} "
          f"with it (loss {loss:.4f}; lr {point['lr']:g}, decay {point['decay']:g}, segment "
          f"{args.segment_len}, epsilon {args.epsilon:g}; {len(ids):,} tokens of {corpus.name}, "
          f"batch 1)")
    if not math.isfinite(loss):
        why = ("the model's own loss is not finite" if not math.isfinite(plain) else
               f"the updates diverged at lr {point['lr']:g}; use a smaller --lr")
        raise NotFiniteError(f"the {split} loss with dynamic evaluation is {loss}: {why}")


def cmd_generate(args) -> None:
    from .generate import generate

    device = check_device(args.device)
    state = load_state(args.checkpoint, device)
    corpus = load_run_corpus(run_preset(Path(args.checkpoint).parent, state), args)
    check_pairing(state, corpus, args.checkpoint)
    model = model_from_state(state, device, args.checkpoint)
    try:
        text = generate(model, corpus.vocab, args.words, args.temperature, args.seed, args.start)
    except (KeyError, ValueError) as exc:  # a start word outside the vocabulary, a bad temperature
        raise CommandError(exc.args[0]) from None
    print(text)


def study_configs(study: str, preset: Preset) -> dict[str, Preset]:
    from .experiments import STUDIES

    try:
        return STUDIES[study][0](preset)
    except ValueError as exc:  # a preset the study cannot use (the ablation needs the full recipe)
        fits = []
        for name, candidate in PRESETS.items():
            try:
                STUDIES[study][0](candidate)
                fits.append(name)
            except ValueError:
                pass
        raise CommandError(f"{exc}; presets that fit the {study} study: {', '.join(fits)}") from None


def check_results_folder(folder: Path, files: list[Path]) -> None:
    """Refuse, before any training, a --results folder the study cannot write its files into."""
    probe = folder / f".{files[0].name}.probe"
    try:
        if folder.exists() and not folder.is_dir():
            raise CommandError(f"--results {quoted(folder)} is a file: give a folder")
        for path in files:
            if path.is_dir():
                raise CommandError(f"--results: {path} is a folder, where the study writes a file; "
                                   f"move it away or give another --results folder")
        folder.mkdir(parents=True, exist_ok=True)
        probe.open("xb").close()
        probe.unlink()
        for path in files:
            if path.exists():
                path.open("ab").close()
    except OSError as exc:
        raise CommandError(f"--results {quoted(folder)}: cannot write {exc.filename or folder} "
                           f"({exc.strerror}); give a folder you can write to") from None


def cmd_experiment(args) -> None:
    from .executors import LocalExecutor, SubmititExecutor
    from .experiments import (STUDIES, STUDY_CONTROLS, StudyIncomplete, run_study, study_runs,
                              study_stem, write_summary)
    from .pool import PoolInterrupted
    from .results import RunsFileError, read_runs

    repeated = sorted({s for s in args.seeds if args.seeds.count(s) > 1})
    if repeated:
        raise CommandError(f"--seeds: {', '.join(map(str, repeated))} given more than once; give "
                           f"each seed once (the same seed trains the same run again)")
    preset = apply_settings(PRESETS[args.preset], args.set)
    configs = study_configs(args.study, preset)
    try:  # rows from before fingerprints are taken as runs of the preset as it stands
        legacy = STUDIES[args.study][0](PRESETS[args.preset])
    except ValueError:
        legacy = {}
    unknown = set(args.only or ()) - set(configs)
    if unknown:
        raise CommandError(f"--only: no configuration {sorted(unknown)} in the {args.study} study; "
                           f"it has {', '.join(map(repr, configs))}")
    chosen = {name: configs[name] for name in args.only} if args.only else configs
    folder = Path(args.results)
    stem = folder / study_stem(args.study, args.preset)
    runs_file, summary_file = stem.with_suffix(".runs.jsonl"), stem.with_suffix(".json")
    check_results_folder(folder, [runs_file, summary_file])
    corpus = load_run_corpus(preset, args)  # once, here: a missing dataset stops the study now

    def finished() -> list[dict]:  # run_study itself reports a cut-off last line
        return study_runs(read_runs(runs_file, warn=lambda message: None), configs, legacy)

    def summarize() -> None:
        runs = finished()
        try:
            write_summary(args.study, runs, summary_file, preset, len(corpus.vocab))
        except OSError as exc:
            raise CommandError(f"could not write {summary_file} ({exc.strerror})") from None
        print(f"summary of {len(runs)} runs in {summary_file}")

    checkpoints = folder / "checkpoints" / args.preset / args.study
    device = check_device(args.device)
    if args.executor == "submitit":
        executor = SubmititExecutor(checkpoints / "submitit", max(args.workers, 1),
                                    cluster=args.cluster, partition=args.partition,
                                    gpus_per_node=args.gpus_per_node,
                                    cpus_per_task=args.cpus_per_task, timeout_min=args.timeout_min)
    else:
        executor = LocalExecutor(args.workers)
    try:
        before = len(finished())
        run_study(chosen, args.seeds, runs_file, checkpoints, root=args.data_root, legacy=legacy,
                  download=not args.no_download, executor=executor, device=device,
                  controls=STUDY_CONTROLS.get(args.study, ()))
    except RunsFileError as exc:
        raise CommandError(str(exc)) from None
    except KeyboardInterrupt as exc:
        summarize()
        stopped = f"{len(exc.stopped)} stopped, {len(exc.cancelled)} not started; " \
            if isinstance(exc, PoolInterrupted) else ""
        raise Interrupted(f"study interrupted: {len(finished()) - before} run(s) finished and are "
                          f"recorded in {runs_file}; {stopped}run the same command again to do the "
                          f"rest") from None
    except StudyIncomplete as exc:
        summarize()
        if exc.failed:
            raise NotFiniteError(f"{exc}; a failed run is recorded in {runs_file} and not retried: "
                                 f"try a lower train.lr or train.clip") from None
        raise CommandError(f"{exc}; run the same command again to retry") from None
    summarize()


# -------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m awdlib", epilog="python -m awdlib COMMAND --help describes each command.",
        description="AWD-LSTM (Merity et al., 2017): data, training, fine-tuning, evaluation, sampling.")
    parser.add_argument("--threads", type=positive_int,
                        help="torch CPU threads (default: torch's choice)")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name, func, help):
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        p.add_argument("--data-root", help="folder holding ptb/ and wikitext-2/ "
                       "(default: $AWDLIB_DATA, else ~/.cache/awdlib)")
        p.add_argument("--no-download", action="store_true",
                       help="fail instead of downloading a missing dataset")
        return p

    def device_flag(p):
        p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1, ...")

    p = command("data", cmd_data, "verify (or download) a dataset and print its size")
    p.add_argument("name", help="ptb or wikitext-2 (alias wt2)")

    p = command("train", cmd_train, "train a model from a preset")
    p.add_argument("--preset", choices=sorted(PRESETS), default="demo")
    p.add_argument("--epochs", type=int, help="train until this epoch (total, counting resumed ones; "
                   "default: the preset's, or with --resume the run's own)")
    p.add_argument("--checkpoint-dir", help="write last.pt, best.pt and run.json here")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue from CHECKPOINT_DIR/last.pt "
                       "with the run's own preset, settings (run.json) and target epochs; --set "
                       "train.* and --epochs still apply")
    again.add_argument("--overwrite", action="store_true", help="start a new run in a "
                       "CHECKPOINT_DIR that holds one, deleting its checkpoints")
    p.add_argument("--time-budget", type=float, help="seconds of training, then stop cleanly")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction,
                   help="a progress bar per epoch (default: the preset's)")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                   help="change a field: model.wdrop=0.3, train.lr=20, train_fraction=0.2, ...")
    device_flag(p)

    p = command("finetune", cmd_finetune, "fine-tune a trained run (averaged SGD from its best weights)")
    p.add_argument("--checkpoint-dir", required=True, help="the train run's folder (last.pt)")
    p.add_argument("--epochs", type=positive_int,
                   help="at most this many epochs (default: the preset's)")
    device_flag(p)

    p = command("evaluate", cmd_evaluate, "loss and perplexity of a checkpoint")
    p.add_argument("checkpoint", help="a .pt file written by train or finetune")
    p.add_argument("--split", choices=("valid", "test"), default="test")
    p.add_argument("--batch-size", type=positive_int,
                   help="default: the run's test/eval batch size")
    device_flag(p)

    p = command("cache", cmd_cache, "perplexity with the continuous cache pointer (batch 1); "
                "defaults: the official settings for the run's corpus")
    p.add_argument("checkpoint", help="a .pt file written by train or finetune")
    p.add_argument("--split", choices=("valid", "test"), default="test")
    p.add_argument("--window", type=int, help="earlier steps in the cache (PTB 500, WikiText-2 3785)")
    p.add_argument("--theta", type=float, help="attention sharpness (PTB 1.0, WikiText-2 0.662)")
    p.add_argument("--lambdah", type=float, help="the cache's weight (PTB 0.1, WikiText-2 0.1279)")
    p.add_argument("--search", action="store_true", help="grid-search theta and lambdah on valid at "
                   "--window, then report test at the best point")
    p.add_argument("--thetas", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.5, 0.662, 0.8, 1.0])
    p.add_argument("--lambdahs", type=float, nargs="+",
                   default=[0.0, 0.05, 0.075, 0.1, 0.1279, 0.15, 0.2, 0.3])
    p.add_argument("--bptt", type=int, default=256, help="chunk length (does not change the result)")
    device_flag(p)

    p = command("dynamic", cmd_dynamic, "perplexity with dynamic evaluation (Krause et al. 2018; "
                "batch 1): the model adapts to the text as it scores it, by the paper's RMS rule "
                "with gradient statistics from the run's training split; defaults: the authors' "
                "settings for AWD-LSTM on PTB")
    p.add_argument("checkpoint", help="a .pt file written by train or finetune")
    p.add_argument("--split", choices=("valid", "test"), default="test")
    p.add_argument("--lr", type=float, default=AUTHORS_DYNAMIC["lr"], help="step size eta "
                   f"(default {AUTHORS_DYNAMIC['lr']:g}; 0: no adaptation)")
    p.add_argument("--decay", type=float, default=AUTHORS_DYNAMIC["decay"],
                   help=f"lambda, the pull back toward the trained weights (default "
                        f"{AUTHORS_DYNAMIC['decay']:g})")
    p.add_argument("--segment-len", type=positive_int, default=AUTHORS_DYNAMIC["segment_len"],
                   help="tokens per update (default 5, as in the paper; 20 is about 3x faster)")
    p.add_argument("--epsilon", type=float, default=AUTHORS_DYNAMIC["epsilon"],
                   help=f"added to the RMS gradient (default {AUTHORS_DYNAMIC['epsilon']:g})")
    p.add_argument("--search", action="store_true", help="grid-search lr and decay on valid, then "
                   "report test at the best point")
    p.add_argument("--lrs", type=float, nargs="+", help="the search's lrs (default: the authors' "
                   "grid, 3e-5 to 1e-4, scaled by --segment-len / 5)")
    p.add_argument("--decays", type=float, nargs="+", help="the search's decays (default: the "
                   "authors' grid, 1e-3 to 5e-3, scaled by --segment-len / 5)")
    p.add_argument("--search-tokens", type=lambda text: positive_int(text, minimum=2),
                   help=f"search on the first N validation tokens only (the authors' fast grid: "
                        f"{AUTHORS_FAST_TOKENS}; default: all)")
    p.add_argument("--stat-batch-size", type=positive_int, default=STAT_BATCH_SIZE,
                   help=f"batch size of the gradient statistics on the training split (default "
                        f"{STAT_BATCH_SIZE}, the authors')")
    p.add_argument("--stat-batches", type=positive_int,
                   help="at most this many training batches for them (default: the whole split)")
    p.add_argument("--progress", action="store_true", help="progress bars")
    device_flag(p)

    p = command("generate", cmd_generate, "sample text from a checkpoint")
    p.add_argument("checkpoint", help="a .pt file written by train or finetune")
    p.add_argument("--words", type=positive_int, default=50,
                   help="how many words to sample (default 50)")
    p.add_argument("--temperature", type=float, default=1.0, help="below 1: safer; above 1: wilder")
    p.add_argument("--seed", type=seed, help="make the sample reproducible")
    p.add_argument("--start", default="<eos>", help="words to feed in first (default <eos>)")
    device_flag(p)

    p = command("experiment", cmd_experiment, "a study: named configurations x seeds, resumable")
    p.add_argument("study", choices=("ladder", "ablation", "crossover"),
                   help="ladder: the rungs of notebooks 01-05; ablation: the paper's '– X' table "
                        "(notebook 08; its CPU scale is --preset ablation-demo); crossover: the full "
                        "recipe, without weight drop, and the plain LSTM trained until each stops "
                        "early (notebook 08's pilot, --preset crossover-pilot)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="demo")
    p.add_argument("--seeds", type=seed, nargs="+", default=[141, 142, 143],
                   help="one run per configuration and seed; each seed once")
    p.add_argument("--workers", type=count, default=1,
                   help="parallel runs, one torch thread each (0: one after another in this process)")
    p.add_argument("--only", nargs="+", metavar="NAME", help="run only these configurations")
    p.add_argument("--results", default="notebooks/results",
                   help="folder for STUDY-SCALE.runs.jsonl (one line per finished run) and "
                        "STUDY-SCALE.json (the summary); SCALE is the preset's name, without a "
                        "leading 'STUDY-' (--preset ablation-demo writes ablation-demo.json)")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                   help="change a preset field for every configuration")
    p.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="local (default): --workers processes on this machine; submitit: each run "
                        "a job through the submitit package (Slurm), at most --workers at a time")
    p.add_argument("--device", default="cpu",
                   help="where every run trains: cpu (default), cuda, cuda:1, ... (several workers "
                        "may share one GPU)")
    p.add_argument("--partition", help="submitit: the Slurm partition")
    p.add_argument("--gpus-per-node", type=count, default=0, help="submitit: GPUs per job")
    p.add_argument("--cpus-per-task", type=positive_int, default=1, help="submitit: CPUs per job")
    p.add_argument("--timeout-min", type=positive_int, default=24 * 60,
                   help="submitit: a job's time limit in minutes (default a day)")
    p.add_argument("--cluster", choices=("slurm", "local"),
                   help="submitit: force its Slurm or its local cluster (default: Slurm where "
                        "sbatch exists)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit code (see the module docstring)."""
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        args.func(args)
    except (CommandError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", EXIT_ERROR)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
