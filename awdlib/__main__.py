"""Command line: ``python -m awdlib {data,train,finetune,evaluate,cache,generate,experiment}``.

Examples::

    python -m awdlib data ptb
    python -m awdlib train --preset demo --checkpoint-dir runs/demo --set model.wdrop=0.3 train.lr=20
    python -m awdlib train --preset demo --checkpoint-dir runs/demo --epochs 30 --resume
    python -m awdlib finetune --checkpoint-dir runs/demo --epochs 5
    python -m awdlib evaluate runs/demo/best.pt --split test
    python -m awdlib cache runs/demo/best.pt --search
    python -m awdlib generate runs/demo/best.pt --words 40 --temperature 0.8 --seed 1
    python -m awdlib experiment ladder --preset demo --seeds 141 142 143 --workers 2

Flags map onto the dataclasses (:class:`~awdlib.presets.Preset`, :class:`~awdlib.train.TrainConfig`,
:class:`~awdlib.model.AWDLSTMConfig`); ``--set`` reaches any of their fields. Needs only torch, numpy
and tqdm. ``train`` writes ``run.json`` (the preset, its data fractions and the ``--set`` changes) beside
the checkpoints, so that later commands load the same slice of the same corpus.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import torch

from .data import DataError, dataset_dir, load_corpus, resolve_name
from .presets import PRESETS, Preset
from .train import TrainConfig, Trainer, evaluate, perplexity

RUN_FILE = "run.json"
PRESET_FIELDS = ("dataset", "train_fraction", "eval_fraction", "finetune_epochs")


class CommandError(Exception):
    """A problem the user can fix; printed without a traceback."""


# ------------------------------------------------------------------------------------------- --set
def parse_value(text: str, current):
    """``text`` converted to the type of the field's current value (``none`` clears an optional)."""
    if text.lower() == "none":
        return None
    if isinstance(current, bool):
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise CommandError(f"expected true or false, got {text!r}")
    if isinstance(current, str):
        return text
    for kind in (int, float):
        if current is None or isinstance(current, kind):
            try:
                return kind(text)
            except ValueError:
                if current is not None:
                    raise CommandError(f"expected {'an integer' if kind is int else 'a number'}, "
                                       f"got {text!r}") from None
    return text


def apply_settings(preset: Preset, settings: list[str]) -> Preset:
    """Apply ``model.KEY=VALUE``, ``train.KEY=VALUE`` and ``KEY=VALUE`` (a Preset field) changes."""
    model_defaults = {f.name: f.default for f in dataclasses.fields(preset.model_config(1))}
    for setting in settings:
        key, sep, text = setting.partition("=")
        if not sep:
            raise CommandError(f"--set expects KEY=VALUE, got {setting!r}")
        section, _, name = key.rpartition(".")
        if section == "model" and name in model_defaults and name != "vocab_size":
            current = preset.model.get(name, model_defaults[name])
            preset = preset.with_model(**{name: parse_value(text, current)})
        elif section == "train" and name in {f.name for f in dataclasses.fields(TrainConfig)}:
            preset = preset.with_train(**{name: parse_value(text, getattr(preset.train, name))})
        elif section == "" and name in PRESET_FIELDS:
            preset = dataclasses.replace(preset, **{name: parse_value(text, getattr(preset, name))})
        else:
            known = ([f"model.{k}" for k in model_defaults if k != "vocab_size"]
                     + [f"train.{f.name}" for f in dataclasses.fields(TrainConfig)]
                     + list(PRESET_FIELDS))
            raise CommandError(f"unknown setting {key!r}; known: {', '.join(known)}")
    return preset


# -------------------------------------------------------------------------------- runs on disk
def load_state(path: str | Path, device: str = "cpu") -> dict:
    """A checkpoint's contents, or a :class:`CommandError` saying why it cannot be read."""
    from .checkpoint import load_checkpoint

    path = Path(path)
    if not path.is_file():
        raise CommandError(f"checkpoint {path} does not exist")
    try:
        return load_checkpoint(path, device)
    except ValueError as exc:  # a torch file, but not one of ours
        raise CommandError(str(exc)) from None
    except Exception as exc:  # torch raises several types for a file that is not a torch file
        raise CommandError(f"{path} is not an awdlib checkpoint: torch.load could not read it "
                           f"({type(exc).__name__}); give a last.pt or best.pt written by "
                           f"'python -m awdlib train'") from None


def run_preset(checkpoint_dir: Path, state: dict) -> Preset:
    """The preset a run was trained with: from its ``run.json``, else rebuilt from the checkpoint
    (e.g. one written by a notebook): its corpus name, ``ptb`` or ``ptb[0.1]`` for the first 10% of
    the training split, and whole valid and test splits."""
    run_file = checkpoint_dir / RUN_FILE
    if run_file.is_file():
        run = json.loads(run_file.read_text())
        return apply_settings(PRESETS[run["preset"]], run["set"])
    dataset, _, fraction = str(state.get("corpus") or "ptb").partition("[")
    model = {k: v for k, v in state["model_config"].items() if k != "vocab_size"}
    return Preset("checkpoint", resolve_name(dataset), model, TrainConfig(**state["train_config"]),
                  train_fraction=float(fraction.rstrip("]") or 1.0))


def load_run_corpus(preset: Preset, args):
    return preset.corpus(root=args.data_root, download=not args.no_download)


def model_from_state(state: dict, device: str):
    from .checkpoint import build_model

    return build_model(state).to(device)


def check_device(device: str) -> str:
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CommandError(f"--device {device}: no CUDA device is available to this torch "
                           f"({torch.__version__}); use --device cpu")
    return device


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
        state = load_state(checkpoint_dir / "last.pt", device)
        preset = run_preset(checkpoint_dir, state)
        if any(s.startswith("model.") for s in args.set):
            raise CommandError("--resume continues the stored model; model.* settings cannot change it")
        preset = apply_settings(preset, args.set).with_train(**changes)
        trainer = Trainer.resume(checkpoint_dir / "last.pt", load_run_corpus(preset, args), device,
                                 **dataclasses.asdict(preset.train))
        print(f"resuming after epoch {trainer.epoch} from {checkpoint_dir / 'last.pt'}")
    else:
        preset = apply_settings(PRESETS[args.preset], args.set).with_train(**changes)
        if checkpoint_dir:
            checkpoint_dir.mkdir(parents=True, exist_ok=True)
            run = {"preset": args.preset, "set": list(args.set)}  # not epochs: --resume may add
            (checkpoint_dir / RUN_FILE).write_text(json.dumps(run, indent=1) + "\n")
        corpus = load_run_corpus(preset, args)
        trainer = preset.trainer(corpus, device, checkpoint_dir)
        print(f"preset {preset.name!r} ({preset.description}); {trainer.model.num_parameters():,} "
              f"parameters on {device}")
    trainer.fit(preset.train.epochs)
    print(summary(trainer))


def cmd_finetune(args) -> None:
    device = check_device(args.device)
    checkpoint_dir = Path(args.checkpoint_dir)
    state = load_state(checkpoint_dir / "last.pt", device)
    preset = run_preset(checkpoint_dir, state)
    trainer = Trainer.resume(checkpoint_dir / "last.pt", load_run_corpus(preset, args), device)
    trainer.finetune(args.epochs or preset.finetune_epochs or 300)
    print(summary(trainer))


def cmd_evaluate(args) -> None:
    device = check_device(args.device)
    state = load_state(args.checkpoint, device)
    preset = run_preset(Path(args.checkpoint).parent, state)
    corpus = load_run_corpus(preset, args)
    model = model_from_state(state, device)
    config = TrainConfig(**state["train_config"])
    batch_size = args.batch_size or (config.test_batch_size if args.split == "test"
                                     else config.eval_batch_size)
    loss = evaluate(model, getattr(corpus, args.split), config.bptt, batch_size)
    print(f"{args.split}: loss {loss:.4f}, perplexity {perplexity(loss):.2f} "
          f"({len(getattr(corpus, args.split)):,} tokens of {corpus.name}, batch {batch_size})")


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
    model = model_from_state(state, device)
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


def cmd_generate(args) -> None:
    from .generate import generate

    device = check_device(args.device)
    state = load_state(args.checkpoint, device)
    corpus = load_run_corpus(run_preset(Path(args.checkpoint).parent, state), args)
    model = model_from_state(state, device)
    try:
        text = generate(model, corpus.vocab, args.words, args.temperature, args.seed, args.start)
    except (KeyError, ValueError) as exc:  # a start word outside the vocabulary, a bad temperature
        raise CommandError(exc.args[0]) from None
    print(text)


def cmd_experiment(args) -> None:
    from .experiments import STUDIES, run_study, write_summary

    preset = apply_settings(PRESETS[args.preset], args.set)
    configs = STUDIES[args.study](preset)
    unknown = set(args.only or ()) - set(configs)
    if unknown:
        raise CommandError(f"--only: no configuration {sorted(unknown)} in the {args.study} study; "
                           f"it has {', '.join(map(repr, configs))}")
    if args.only:
        configs = {name: configs[name] for name in args.only}
    stem = Path(args.results) / f"{args.study}-{args.preset}"
    runs = run_study(configs, args.seeds, stem.with_suffix(".runs.jsonl"),
                     Path(args.results) / "checkpoints" / args.preset / args.study, args.workers,
                     root=args.data_root)
    write_summary(args.study, runs, stem.with_suffix(".json"), preset, args.seeds)
    print(f"summary of {len(runs)} runs in {stem.with_suffix('.json')}")


# -------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m awdlib", epilog="python -m awdlib COMMAND --help describes each command.",
        description="AWD-LSTM (Merity et al., 2017): data, training, fine-tuning, evaluation, sampling.")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
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
    p.add_argument("--epochs", type=int, help="train until this epoch (total, counting resumed ones)")
    p.add_argument("--checkpoint-dir", help="write last.pt, best.pt and run.json here")
    p.add_argument("--resume", action="store_true", help="continue from CHECKPOINT_DIR/last.pt with the run's own preset and "
                   "settings (run.json); --set train.* and --epochs still apply")
    p.add_argument("--time-budget", type=float, help="seconds of training, then stop cleanly")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction,
                   help="a progress bar per epoch (default: the preset's)")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                   help="change a field: model.wdrop=0.3, train.lr=20, train_fraction=0.2, ...")
    device_flag(p)

    p = command("finetune", cmd_finetune, "fine-tune a trained run (averaged SGD from its best weights)")
    p.add_argument("--checkpoint-dir", required=True, help="the train run's folder (last.pt)")
    p.add_argument("--epochs", type=int, help="at most this many epochs (default: the preset's)")
    device_flag(p)

    p = command("evaluate", cmd_evaluate, "loss and perplexity of a checkpoint")
    p.add_argument("checkpoint", help="a .pt file written by train or finetune")
    p.add_argument("--split", choices=("valid", "test"), default="test")
    p.add_argument("--batch-size", type=int, help="default: the run's test/eval batch size")
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

    p = command("generate", cmd_generate, "sample text from a checkpoint")
    p.add_argument("checkpoint", help="a .pt file written by train or finetune")
    p.add_argument("--words", type=int, default=50, help="how many words to sample (default 50)")
    p.add_argument("--temperature", type=float, default=1.0, help="below 1: safer; above 1: wilder")
    p.add_argument("--seed", type=int, help="make the sample reproducible")
    p.add_argument("--start", default="<eos>", help="words to feed in first (default <eos>)")
    device_flag(p)

    p = command("experiment", cmd_experiment, "a study: named configurations x seeds, resumable")
    p.add_argument("study", choices=("ladder",), help="ladder: the rungs of notebooks 01-05")
    p.add_argument("--preset", choices=sorted(PRESETS), default="demo")
    p.add_argument("--seeds", type=int, nargs="+", default=[141, 142, 143])
    p.add_argument("--workers", type=int, default=1, help="parallel runs, one torch thread each")
    p.add_argument("--only", nargs="+", metavar="NAME", help="run only these configurations")
    p.add_argument("--results", default="notebooks/results",
                   help="folder for STUDY-PRESET.runs.jsonl (one line per finished run) and "
                        "STUDY-PRESET.json (the summary)")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                   help="change a preset field for every configuration")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit code (0 ok, 1 a problem reported in one message)."""
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        args.func(args)
    except (CommandError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
