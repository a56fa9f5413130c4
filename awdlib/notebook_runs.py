"""A notebook's trained run: the shipped weights with the study's record of the run, or a run trained now.

A notebook that needs a trained model asks for one run of a study (``"ladder"``: the results ladder of
notebooks 01-05; ``"notebooks"``: the other runs the notebooks show) by name and seed, and gets a
:class:`~awdlib.train.Trainer` whose model holds the run's best validation weights and whose history holds
its curves. Where it comes from:

1. **Shipped** (the default at demo scale): the run's half-precision weights from ``WEIGHTS/``
   (:mod:`awdlib.shipped`, SHA-256 checked) and its curves from the study's record,
   ``RESULTS/STUDY-SCALE.runs.jsonl``. Nothing trains; a notebook runs top to bottom in minutes.
2. **Trained before** on this machine: the finished run in ``RESULTS/checkpoints/SCALE/STUDY/``.
3. **Trained now**, when neither exists (the smoke scale) or when the notebook asks for it
   (``retrain=True``): first a line saying what will train, on how many threads, and how long the
   study's run of it took; then one line per epoch with the time left (and a progress bar with
   ``progress=True``); then the new run against the study's record of the same seed and the study's
   spread over seeds. A run trained with ``retrain`` leaves the study's files as they are; a run that
   the study lacks is added to them, so a later study or notebook reuses it.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from pathlib import Path
from statistics import mean, stdev

import torch

from .experiments import finished_run, ladder_configs, load_run, read_runs, run_folder, run_one, \
    write_summary
from .presets import PRESETS, Preset
from .shipped import load_weights, read_sums, weights_name
from .train import History, Trainer


def study_run(study: str, scale: str, name: str, seed: int = 141, preset: Preset | None = None, *,
              retrain: bool = False, progress: bool = False, threads: int | None = 1,
              results: str | Path = "results", weights: str | Path = "weights") -> Trainer:
    """One run of ``study`` at ``scale`` (see the module docstring for where it comes from).

    ``preset`` is the run's configuration; for the ladder it defaults to the rung ``name`` of
    ``PRESETS[scale]``. ``threads`` is the torch thread count for training (the studies used 1).
    """
    if preset is None:
        preset = ladder_configs(PRESETS[scale])[name]
    results, weights = Path(results), Path(weights)
    runs_file = results / f"{study}-{scale}.runs.jsonl"
    recorded = next((r for r in read_runs(runs_file) if r["name"] == name and r["seed"] == seed), None)
    shipped = weights / weights_name(study, scale, name, seed)
    if not retrain and recorded is not None and shipped.name in read_sums(weights):
        return _shipped_trainer(preset, shipped, recorded, runs_file)

    folder = run_folder(results / "checkpoints" / scale / study, name, seed)
    done = finished_run(folder)  # reused only if run with these settings (older rows: assumed so)
    if retrain or done is None or done.get("fingerprint", preset.fingerprint()) != preset.fingerprint():
        _train_visibly(name, preset, seed, folder, recorded, threads, progress)
    trainer = load_run(folder, preset.corpus())
    if recorded is None:  # a run the study lacks joins it
        row = finished_run(folder)
        with runs_file.open("a") as f:
            f.write(json.dumps(row) + "\n")
        if study == "ladder":
            write_summary(study, read_runs(runs_file), results / f"{study}-{scale}.json", PRESETS[scale])
    elif retrain:
        _compare_with_study(finished_run(folder), recorded, read_runs(runs_file))
    return trainer


def study_record(study: str, scale: str, name: str, seed: int = 141, preset: Preset | None = None,
                 *, results: str | Path = "results", **options) -> dict:
    """The study's row of one run (curves, best epoch, validation and test perplexity) where a notebook
    needs no weights: read from ``RESULTS/STUDY-SCALE.runs.jsonl``, or, where the file lacks the run
    or ``retrain=True``, the row of the run :func:`study_run` trains now (``options`` are its)."""
    runs_file = Path(results) / f"{study}-{scale}.runs.jsonl"
    if not options.get("retrain"):
        row = next((r for r in read_runs(runs_file) if r["name"] == name and r["seed"] == seed), None)
        if row is not None:
            print(f"read {name!r} seed {seed} from {runs_file} (the study's run took "
                  f"{_run_seconds(row):,.0f} s on one thread)")
            return row
    study_run(study, scale, name, seed, preset, results=results, **options)
    return finished_run(run_folder(Path(results) / "checkpoints" / scale / study, name, seed))


def ladder_run(scale: str, name: str, seed: int = 141, **options) -> Trainer:
    """A run of the results ladder (rung ``name`` of ``PRESETS[scale]``): :func:`study_run` with
    ``study="ladder"``."""
    return study_run("ladder", scale, name, seed, **options)


def _shipped_trainer(preset: Preset, path: Path, row: dict, runs_file: Path) -> Trainer:
    model, header = load_weights(path)
    corpus = preset.corpus()
    if header.get("corpus") != corpus.name or model.config.vocab_size != len(corpus.vocab):
        raise ValueError(f"{path} holds a model of {header.get('corpus')} "
                         f"({model.config.vocab_size:,} words), not of {corpus.name} "
                         f"({len(corpus.vocab):,} words)")
    trainer = Trainer(model, corpus, replace(preset.train, seed=row["seed"]))
    trainer.history = history_from_row(row, preset.train.optimizer)
    trainer.epoch = len(trainer.history.records)
    trainer.phase = trainer.history.records[-1]["phase"]
    trainer.holds_best = True
    print(f"loaded {row['name']!r} seed {row['seed']}: best weights from {path} (SHA-256 checked), "
          f"curves from {runs_file} (the study's run took {_run_seconds(row):,.0f} s on one thread)")
    return trainer


def history_from_row(row: dict, optimizer: str = "ntasgd") -> History:
    """A run's :class:`History` rebuilt from its study row: per epoch, the training and validation
    perplexity (rounded to 2 decimals in the row), the phase (``"finetune"`` after the trained epochs
    of a fine-tuned run) and whether the weights were averaged: in training, never under
    ``optimizer="sgd"`` (its trigger is checked but switches nothing), always under ``"asgd"``, after
    the switch under ``"ntasgd"``; in fine-tuning, always. The stop reason is the whole run's."""
    stage = row.get("finetuned", row)
    trigger = row.get("trigger_epoch")
    records = []
    for epoch, (train_ppl, valid_ppl) in enumerate(zip(stage["train_curve"], stage["valid_curve"]),
                                                   start=1):
        phase = "train" if epoch <= row["epochs"] else "finetune"
        records.append({"epoch": epoch, "phase": phase,
                        "train_loss": math.log(train_ppl), "train_ppl": train_ppl,
                        "valid_loss": math.log(valid_ppl), "valid_ppl": valid_ppl,
                        "averaging": phase == "finetune" or optimizer == "asgd"
                        or (optimizer == "ntasgd" and trigger is not None and epoch > trigger)})
    return History(records, stop_reason=stage["stop_reason"])


def _run_seconds(row: dict) -> float:
    return row.get("finetuned", row)["seconds"]


def _train_visibly(name: str, preset: Preset, seed: int, folder: Path, recorded: dict | None,
                   threads: int | None, progress: bool) -> None:
    cap = preset.train.epochs + preset.finetune_epochs
    plan = (f"training {name!r} seed {seed} now: at most {preset.train.epochs} epochs"
            + (f" + {preset.finetune_epochs} of fine-tuning" if preset.finetune_epochs else "")
            + f", on {threads or torch.get_num_threads()} torch thread(s)")
    if recorded is not None:
        plan += (f"; the study's run of it took {_run_seconds(recorded):,.0f} s on one thread "
                 f"({len(history_from_row(recorded).records)} of at most {cap} epochs)")
    print(plan, flush=True)
    started = time.perf_counter()
    run_one(name, preset, seed, folder, threads=threads, progress=progress, log_epochs=True)
    print(f"trained in {time.perf_counter() - started:,.0f} s", flush=True)


def _compare_with_study(new: dict, recorded: dict, runs: list[dict]) -> None:
    def stage(row: dict) -> dict:
        return row.get("finetuned", row)

    same_name = [stage(r)["valid_ppl"] for r in runs if r["name"] == recorded["name"]]
    spread = f"{mean(same_name):.2f}" + (f" ± {stdev(same_name):.2f}" if len(same_name) > 1 else "")
    change = stage(new)["valid_ppl"] - stage(recorded)["valid_ppl"]
    print(f"this run: valid {stage(new)['valid_ppl']:.2f}, test {stage(new)['test_ppl']:.2f}; the "
          f"study's run with seed {recorded['seed']}: valid {stage(recorded)['valid_ppl']:.2f} "
          f"({change:+.2f}); the study's {len(same_name)} seed(s): valid {spread}")
