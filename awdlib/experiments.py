"""Experiment runner: named configurations x seeds at one scale, one JSON line per finished run.

A study is a dict of named :class:`~awdlib.presets.Preset` s (:func:`ladder_configs` builds the results
ladder of notebooks 01-05, :func:`ablation_configs` the paper's ablation table of notebook 08,
:func:`crossover_configs` its pilot). :func:`run_study` trains every (configuration, seed) pair to its
own best validation loss within the preset's epoch cap, under the same early-stopping rule for all
(``patience``, ``min_improvement``), so compute and data are matched across configurations. Each
finished run is appended to a JSON Lines file at once; a study started again skips the runs already in
that file, so it can be interrupted and resumed. Runs go to an executor (:mod:`awdlib.executors`):
``workers`` processes with one torch thread each (:mod:`awdlib.pool`: Ctrl-C stops them at once,
keeping every finished run), or Slurm jobs through submitit; only this driver writes the results.
Whether a run ended by its rule or at its cap is in its ``stop_reason`` (:func:`stopped_at_cap`).

Every row says what produced it: the preset's name, its :meth:`~awdlib.presets.Preset.settings`
(everything the result depends on besides the seed: the corpus and the fractions of it, the
fine-tuning budget, every model field, every training field but the display, time-budget and
checkpoint-frequency ones) and their fingerprint. A row is reused only for the same fingerprint
(:func:`study_runs`); rows written before rows carried one are taken as runs of the preset the study
names, as it stands. A run stopped by a non-finite loss is recorded with ``failed`` (the reason).

A preset with ``finetune_epochs > 0`` is fine-tuned after training (paper Section 5), and its row
holds both results: before (``valid_ppl``, ``test_ppl``) and after (``finetuned``), and for the
configurations a study names as controls (:data:`STUDY_CONTROLS`) the training continued instead
(``trained_longer``).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import replace
from pathlib import Path
from statistics import mean, stdev

import torch

from .checkpoint import atomic_file
from .checks import require
from .model import AWDLSTM
from .presets import PRESETS, Preset
from .results import append_run, read_runs

RESULT_FILE = "result.json"  # written into a run's checkpoint folder when it has finished
LONGER_FOLDER = "trained-longer"  # a run's fine-tuning control (run_one's ``longer``), in its folder
STAGES_FILE = "stages.json"  # an unfinished run's row so far and the stage it is in (run_one)
STAGES = ("train", "finetune", "longer", "done")

# The ladder, rung by rung: each adds one technique to the rung above (notebooks 01-05). The last
# rung is no run of its own: it is the "+ NT-ASGD" runs' fine-tuned stage.
_LADDER_SOURCE = {"+ fine-tuning": ("+ NT-ASGD", "finetuned")}
LADDER = ("plain LSTM", "+ weight drop", "+ locked dropout", "+ embedding dropout", "+ AR/TAR",
          "+ NT-ASGD", "+ fine-tuning")


# The paper's model ablation table: validation / test perplexity of the full model and of each "– X"
# row, the full model with technique X removed, on PTB and WikiText-2.
PAPER_ABLATION = {
    "ptb": {"AWD-LSTM": {"valid": 60.0, "test": 57.3}, "– fine-tuning": {"valid": 60.7, "test": 58.8},
            "– NT-ASGD": {"valid": 66.3, "test": 63.7},
            "– variable sequence lengths": {"valid": 61.3, "test": 58.9},
            "– embedding dropout": {"valid": 65.1, "test": 62.7},
            "– weight decay": {"valid": 63.7, "test": 61.0}, "– AR/TAR": {"valid": 62.7, "test": 60.3},
            "– full sized embedding": {"valid": 68.0, "test": 65.6},
            "– weight-dropping": {"valid": 71.1, "test": 68.9}},
    "wikitext-2": {"AWD-LSTM": {"valid": 68.6, "test": 65.8},
                   "– fine-tuning": {"valid": 69.1, "test": 66.0},
                   "– NT-ASGD": {"valid": 73.3, "test": 69.7},
                   "– variable sequence lengths": {"valid": 69.3, "test": 66.2},
                   "– embedding dropout": {"valid": 71.1, "test": 68.1},
                   "– weight decay": {"valid": 71.9, "test": 68.7},
                   "– AR/TAR": {"valid": 73.2, "test": 70.1},
                   "– full sized embedding": {"valid": 73.7, "test": 70.7},
                   "– weight-dropping": {"valid": 78.4, "test": 74.9}},
}
ABLATION = tuple(PAPER_ABLATION["ptb"])  # the paper's row order: the full model first
PAPER_PTB_VALID = {name: row["valid"] for name, row in PAPER_ABLATION["ptb"].items()}
PAPER_RUNG_ABLATION = {"+ weight drop": "– weight-dropping", "+ embedding dropout": "– embedding dropout",
                       "+ AR/TAR": "– AR/TAR", "+ NT-ASGD": "– NT-ASGD",
                       "+ fine-tuning": "– fine-tuning"}


def paper_change(rung_name: str) -> float | None:
    """How much the paper's PTB validation perplexity rose when this rung's technique was removed
    from the full model (Table 3); None where the paper has no such row."""
    row = PAPER_RUNG_ABLATION.get(rung_name)
    return None if row is None else round(PAPER_PTB_VALID[row] - PAPER_PTB_VALID["AWD-LSTM"], 1)


def ladder_configs(preset: Preset) -> dict[str, Preset]:
    """The ladder's trained configurations; ``"+ NT-ASGD"`` is ``preset`` itself, fine-tuned
    afterwards, so the row ``"+ fine-tuning"`` is read from the same runs (:func:`ladder_rows`)."""
    m = preset.model
    plain = replace(preset.plain(), finetune_epochs=0)
    weight_drop = plain.with_model(wdrop=m["wdrop"])
    locked = weight_drop.with_model(dropouti=m["dropouti"], dropouth=m["dropouth"],
                                    dropout=m["dropout"])
    embedding = locked.with_model(dropoute=m["dropoute"])
    ar_tar = embedding.with_train(alpha=preset.train.alpha, beta=preset.train.beta)
    nt_asgd = ar_tar.with_train(optimizer=preset.train.optimizer)
    configs = dict(zip(LADDER, (plain, weight_drop, locked, embedding, ar_tar)))
    configs["+ NT-ASGD"] = replace(nt_asgd, finetune_epochs=preset.finetune_epochs)
    return configs


def ablation_configs(preset: Preset) -> dict[str, Preset]:
    """The trained configurations of the paper's ablation table at the scale of ``preset``.

    ``"AWD-LSTM"`` is ``preset`` itself: every regulariser, NT-ASGD, then fine-tuning. Each ``"– X"``
    configuration removes X and nothing else, with the same epochs, early stopping and fine-tuning, so
    every row still ends in averaged weights. ``"– fine-tuning"`` is no run of its own: it is the
    full model's runs before their fine-tuning (:func:`ablation_rows`).

    - ``"– NT-ASGD"``: plain SGD at the constant learning rate, never averaging during training; it is
      still fine-tuned (averaged SGD from its best weights), so that the row removes one technique, as
      every other row does, and is scored on averaged weights like them. Its result before
      fine-tuning is kept as well (``before_finetuning`` in the row). (The paper's text describes its
      row as SGD with the learning rate halved by the same non-monotonic criterion; we keep the
      constant rate: the plain SGD of the ladder's first rungs.)
    - ``"– variable sequence lengths"``: every training window exactly ``bptt`` long
      (``TrainConfig.variable_bptt = False``), so the learning rate is never rescaled either.
    - ``"– full sized embedding"``: our reading of Section 4.5 and of the ablation's text. The full
      model uses a small embedding (400 on PTB) independent of the hidden size (1150), the last LSTM
      layer sized to the embedding so that the decoder can be tied to it. Removing that means
      "matching the sizes of the embedding vectors and the hidden states": an embedding as large as
      the hidden size, every LSTM layer ``hidden_size`` wide, still tied (about 43M parameters at the
      paper's PTB size instead of 24M). Here: ``emb_size = hidden_size``.
    - ``"– weight decay"``: ``weight_decay = 0``; ``"– AR/TAR"``: ``alpha = beta = 0``;
      ``"– embedding dropout"``: ``dropoute = 0``; ``"– weight-dropping"``: ``wdrop = 0``.
    """
    require(preset.train.optimizer == "ntasgd" and preset.finetune_epochs > 0, "the ablation's preset",
            preset.name, "one with NT-ASGD (train.optimizer 'ntasgd') and fine-tuning "
            "(finetune_epochs > 0), the full recipe that each row removes one thing from")
    hidden = preset.model_config(vocab_size=1).hidden_size
    return {"AWD-LSTM": preset,
            "– NT-ASGD": preset.with_train(optimizer="sgd"),
            "– variable sequence lengths": preset.with_train(variable_bptt=False),
            "– embedding dropout": preset.with_model(dropoute=0.0),
            "– weight decay": preset.with_train(weight_decay=0.0),
            "– AR/TAR": preset.with_train(alpha=0.0, beta=0.0),
            "– full sized embedding": preset.with_model(emb_size=hidden),
            "– weight-dropping": preset.with_model(wdrop=0.0)}


def crossover_configs(preset: Preset) -> dict[str, Preset]:
    """The crossover pilot (notebook 08): the full recipe, the same without weight drop (the paper's
    largest ablation row), and the plain LSTM of the ladder's first rung (no fine-tuning)."""
    ablation = ablation_configs(preset)
    return {"AWD-LSTM": preset, "– weight-dropping": ablation["– weight-dropping"],
            "plain LSTM": ladder_configs(preset)["plain LSTM"]}


# Two rows (three with "– fine-tuning") that prove the ablation's code path in seconds at smoke scale.
ABLATION_SMOKE = ("AWD-LSTM", "– weight-dropping")


def study_preset(study: str, scale: str) -> str:
    """The preset a study runs at a notebook's scale: ``"STUDY-SCALE"`` where there is one (the
    ablation's ``"ablation-demo"``), else the scale's own."""
    return f"{study}-{scale}" if f"{study}-{scale}" in PRESETS else scale


def study_stem(study: str, preset_name: str) -> str:
    """The results files' stem (``STEM.json``, ``STEM.runs.jsonl``): ``"STUDY-SCALE"``, where a preset
    made for the study (``"ablation-demo"``) counts as its scale (``"demo"``)."""
    return f"{study}-{preset_name.removeprefix(study + '-')}"


# ------------------------------------------------------------------------------------------ runs
def run_one(name: str, preset: Preset, seed: int, checkpoint_dir: str | Path, root=None,
            threads: int | None = 1, progress: bool = False, log_epochs: bool = False,
            download: bool = True, device: str = "cpu", longer: bool = False) -> dict:
    """Train one configuration with one seed; the result row (plain numbers, curves included).

    Test perplexity is that of the best validation weights (``best.pt``, averaged when NT-ASGD has
    switched), at the preset's test batch size (1, as in the paper). The row says what produced it:
    ``preset`` (the name), ``settings`` (:meth:`~awdlib.presets.Preset.settings`, everything the
    result depends on besides the seed) and their ``fingerprint``. A run stopped by a non-finite loss
    (in training or fine-tuning) returns a row with ``failed`` (the reason) in place of results, and
    writes no ``result.json``.

    **An interrupted run goes on where it stopped.** A run keeps ``last.pt`` every epoch and, after
    each stage (training, fine-tuning), its row so far in ``stages.json``. Started again in the same
    folder for the same configuration and seed (same fingerprint), it resumes from there, exactly as
    if it had not stopped (a resume from ``last.pt`` is exact on a CPU); its ``seconds`` then count
    only the time since the stages' last save, plus the stages before, and ``resumed`` says how often.
    Anything else in the folder (another configuration's files, a finished run's result) is deleted
    and the run starts afresh.

    ``device`` trains there (``"cuda"``: several workers may share one GPU). With ``longer`` (and
    fine-tuning), the row also holds ``trained_longer``: the control for fine-tuning, the run's
    training continued from where its early stopping ended it, without the restart and without
    early stopping, for as many epochs as its fine-tuning took.
    """
    from .train import Trainer, evaluate, perplexity

    if threads:
        torch.set_num_threads(threads)
    preset = preset.with_train(seed=seed, progress=progress, log_epochs=log_epochs)
    checkpoint_dir = Path(checkpoint_dir)
    identity = {"name": name, "seed": seed, "preset": preset.name, "fingerprint": preset.fingerprint()}
    saved = _saved_stages(checkpoint_dir, identity)
    resume = saved is not None and (checkpoint_dir / "last.pt").exists()
    if saved is None or not resume and saved["stage"] != "train":  # start afresh
        for file in ("last.pt", "best.pt", RESULT_FILE, STAGES_FILE):
            for stale in (checkpoint_dir / file, checkpoint_dir / f"{file}.tmp"):
                stale.unlink(missing_ok=True)
        shutil.rmtree(checkpoint_dir / LONGER_FOLDER, ignore_errors=True)
        saved = {"stage": "train", "row": {**identity, "settings": preset.settings()},
                 "seconds": 0.0, "resumed": 0}
    saved["resumed"] += resume
    row, stage = saved["row"], saved["stage"]
    if saved["resumed"]:
        row["resumed"] = saved["resumed"]
    corpus = preset.corpus(root, download)
    started = time.perf_counter() - saved["seconds"]

    def elapsed() -> float:
        return round(time.perf_counter() - started, 1)

    def save_stage(next_stage: str) -> None:
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        with atomic_file(checkpoint_dir / STAGES_FILE) as f:
            f.write(json.dumps({"stage": next_stage, "row": row, "seconds": elapsed(),
                                "resumed": saved["resumed"]}).encode())

    save_stage(stage)  # from now on a last.pt in this folder is this run's
    if resume:
        trainer = Trainer.resume(checkpoint_dir / "last.pt", corpus, device)
    else:
        trainer = preset.trainer(corpus, device=device, checkpoint_dir=checkpoint_dir)

    def result(trainer=trainer) -> dict:
        trainer.load_best()
        c, h = trainer.config, trainer.history
        best = h.best()
        test_loss = evaluate(trainer.model, corpus.test, c.bptt, c.test_batch_size)
        return {"valid_ppl": best["valid_ppl"], "test_ppl": perplexity(test_loss),
                "best_epoch": best["epoch"], "epochs": len(h.records),
                "valid_curve": [round(v, 2) for v in h.column("valid_ppl")],
                "train_curve": [round(v, 2) for v in h.column("train_ppl")],
                "stop_reason": h.stop_reason, "seconds": elapsed()}

    def failed(stage: str, trainer=trainer) -> dict:
        (checkpoint_dir / STAGES_FILE).unlink(missing_ok=True)
        return {**row, "failed": f"{stage}{trainer.history.stop_reason}",
                "epochs": len(trainer.history.records), "seconds": elapsed()}

    if stage == "train":
        trainer.fit()
        if trainer.history.diverged:
            return failed("")
        row.update(result())
        trigger = trainer.optimizer.trigger.fired_at  # NT-ASGD's switch (also runs under SGD)
        row["trigger_epoch"] = trigger + 1 if trigger is not None and trainer.optimizer.averaging \
            else None
        if preset.finetune_epochs and longer:  # where training ended, to go on from after fine-tuning
            (checkpoint_dir / LONGER_FOLDER).mkdir(exist_ok=True)
            for file in ("last.pt", "best.pt"):
                shutil.copy(checkpoint_dir / file, checkpoint_dir / LONGER_FOLDER / file)
        stage = "finetune" if preset.finetune_epochs else "done"
        save_stage(stage)
    if stage == "finetune":
        if trainer.phase == "finetune":  # resumed inside fine-tuning: its own epoch cap
            trainer.fit(row["epochs"] + preset.finetune_epochs)
        else:
            trainer.finetune(preset.finetune_epochs)
        if trainer.history.diverged:
            return failed("fine-tuning: ")
        row["finetuned"] = result()
        stage = "longer" if longer else "done"
        save_stage(stage)
    if stage == "longer":
        control = Trainer.resume(checkpoint_dir / LONGER_FOLDER / "last.pt", corpus, device,
                                 patience=None)
        control.fit(row["finetuned"]["epochs"])
        if control.history.diverged:
            return failed("trained longer: ", control)
        row["trained_longer"] = result(control)
    with atomic_file(checkpoint_dir / RESULT_FILE) as f:
        f.write((json.dumps(row) + "\n").encode())
    (checkpoint_dir / STAGES_FILE).unlink(missing_ok=True)
    return row


def _saved_stages(checkpoint_dir: Path, identity: dict) -> dict | None:
    """What an unfinished run of this configuration and seed saved in ``checkpoint_dir``
    (``stages.json``), or None when there is nothing of it to resume."""
    try:
        saved = json.loads((checkpoint_dir / STAGES_FILE).read_text())
        if all(saved["row"][k] == v for k, v in identity.items()) and saved["stage"] in STAGES:
            return saved
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def run_folder(checkpoint_root: str | Path, name: str, seed: int) -> Path:
    """Where a study keeps the checkpoints of one (configuration, seed) run."""
    slug = "".join(ch if ch.isalnum() else "-" for ch in name).strip("-")
    return Path(checkpoint_root) / f"{slug}-seed{seed}"


def finished_run(checkpoint_dir: str | Path) -> dict | None:
    """The result row of a run that :func:`run_one` finished in ``checkpoint_dir``, else None."""
    path = Path(checkpoint_dir) / RESULT_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def load_run(checkpoint_dir: str | Path, corpus):
    """A finished run's :class:`~awdlib.train.Trainer`: its history from ``last.pt`` (with the stop
    reason from its result, since ``last.pt`` is written before a run decides to stop) and, in the
    model, its best validation weights (``best.pt``)."""
    from .train import Trainer

    trainer = Trainer.resume(Path(checkpoint_dir) / "last.pt", corpus)
    trainer.load_best()
    row = finished_run(checkpoint_dir)
    trainer.history.stop_reason = row.get("finetuned", row)["stop_reason"]
    return trainer


def _flat(settings: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in settings.items():
        flat.update(_flat(value, f"{key}.") if isinstance(value, dict) else {prefix + key: value})
    return flat


def settings_change(old: dict, new: dict) -> str:
    """The settings in which ``old`` and ``new`` (:meth:`~awdlib.presets.Preset.settings`) differ,
    in words: ``"train.epochs 2, here 3"``."""
    a, b = _flat(old), _flat(new)
    return "; ".join(f"{k} {a.get(k, 'unset')}, here {b.get(k, 'unset')}"
                     for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k))


def _why_not_reused(row: dict, config: Preset, legacy: Preset | None) -> str | None:
    """None when ``row`` is a run of ``config``; else why not. A row without a fingerprint (written
    before rows carried one) is taken to be a run of ``legacy`` if its epoch counts fit that."""
    if "fingerprint" in row:
        if row["fingerprint"] == config.fingerprint():
            return None
        stored = row.get("settings")
        change = settings_change(stored, config.settings()) if isinstance(stored, dict) else ""
        return change or f"fingerprint {row['fingerprint']}, here {config.fingerprint()}"
    if legacy is None:
        return "it has no fingerprint, and no preset to take it from"
    if legacy.fingerprint() != config.fingerprint():
        return (f"no fingerprint (taken as a run of preset {legacy.name!r}): "
                f"{settings_change(legacy.settings(), config.settings())}")
    caps = {"": legacy.train.epochs, "finetuned.": legacy.train.epochs + legacy.finetune_epochs}
    for stage, cap in caps.items():
        result = row.get(stage.rstrip(".")) if stage else row
        if isinstance(result, dict) and result.get("epochs", 0) > cap:
            return (f"{stage.replace('.', ' ')}{result['epochs']} epochs, more than preset "
                    f"{legacy.name!r} allows ({cap}): a run of another scale")
    return None


def study_runs(rows: list[dict], configs: dict[str, Preset],
               legacy: dict[str, Preset] | None = None, log=None) -> list[dict]:
    """The rows that are runs of ``configs`` (by name and fingerprint), one per (name, seed), in
    file order; rows of other names are left out. Rows without a fingerprint are taken to come from
    ``legacy[name]`` (default: ``configs[name]``), when their epoch counts fit it. ``log`` (when
    given) hears how many rows were left out as runs of another configuration, and why."""
    legacy = configs if legacy is None else legacy
    kept, seen, others = [], set(), {}
    for row in rows:
        if row["name"] not in configs:
            continue
        why = _why_not_reused(row, configs[row["name"]], legacy.get(row["name"]))
        if why is not None:
            others.setdefault(why, []).append(row)
        elif (row["name"], row["seed"]) not in seen:
            seen.add((row["name"], row["seed"]))
            kept.append(row)
    if log and others:
        count = sum(map(len, others.values()))
        log(f"{count} run(s) of another configuration, not reused: "
            + "; ".join(f"{len(rs)} with {why}" for why, rs in others.items()))
    return kept


# ---------------------------------------------------------------------------------------- studies
class StudyIncomplete(RuntimeError):
    """A study that went through its queue with runs that did not finish: ``runs`` (its finished
    runs), ``failed`` (rows of runs stopped by a non-finite loss, recorded in the runs file and not
    retried) and ``lost`` (``(name, seed, reason)`` of runs that crashed or were killed, not
    recorded: running the study again retries them)."""

    def __init__(self, runs: list[dict], failed: list[dict], lost: list[tuple]):
        self.runs, self.failed, self.lost = runs, failed, lost
        parts = [f"{r['name']!r} seed {r['seed']} failed: {r['failed']}" for r in failed]
        parts += [f"{name!r} seed {seed}: {why}" for name, seed, why in lost]
        super().__init__(f"{len(failed) + len(lost)} run(s) did not finish: {'; '.join(parts)}")


def run_study(configs: dict[str, Preset], seeds: list[int], results: str | Path,
              checkpoint_root: str | Path, workers: int = 1, root=None, log=print, *,
              legacy: dict[str, Preset] | None = None, download: bool = True, executor=None,
              device: str = "cpu", controls: tuple[str, ...] = ()) -> list[dict]:
    """Run every configuration with every seed not yet in ``results`` (JSON Lines); append each
    run's row as it ends. Returns the file's finished runs of ``configs``. The runs go to
    ``executor`` (:mod:`awdlib.executors`; default: ``workers`` processes on this machine,
    ``workers=0`` one after another in this process), each training on ``device``; only this
    driver writes ``results``, so a study resumes whichever executor ran it. Configurations named
    in ``controls`` also train the fine-tuning control (:func:`run_one`'s ``longer``).

    A row is reused only if it is a run of the same configuration (:func:`study_runs`: same
    fingerprint; rows from before fingerprints are taken to be runs of ``legacy``, default
    ``configs``); the log says how many rows were not reused, and why. A seed given twice runs once.
    A run that finished in its checkpoint folder (its ``result.json``) but is not in ``results``
    (the driver stopped while a cluster job ran on) is recorded from there, not trained again.

    Ctrl-C stops the study at once (queued runs are cancelled, running ones ended) with every
    finished run recorded, and raises ``KeyboardInterrupt``. A run stopped by a non-finite loss is
    recorded as failed (``failed``: the reason) and not retried; a run whose process crashes or dies
    is not recorded. Either way the others go on, and the study ends in :class:`StudyIncomplete`.
    """
    from .executors import LocalExecutor

    executor = LocalExecutor(workers) if executor is None else executor
    results = Path(results)
    unique = list(dict.fromkeys(seeds))
    if len(unique) < len(seeds):
        log(f"seeds given more than once run once: {', '.join(map(str, unique))}")
    rows = study_runs(read_runs(results, failed=True, warn=log), configs, legacy,
                      lambda message: log(f"{results}: {message}"))
    done = {(r["name"], r["seed"]) for r in rows}
    # seed by seed: a study stopped part way has every configuration of its first seeds (pairs)
    todo = [(name, seed) for seed in unique for name in configs if (name, seed) not in done]
    failed = sum("failed" in r for r in rows)
    results.parent.mkdir(parents=True, exist_ok=True)
    lost = []

    def record(row: dict) -> None:
        append_run(results, row, warn=log)
        if "failed" in row:
            log(f"{row['name']!r} seed {row['seed']} failed: {row['failed']}")
            return
        log(f"{row['name']!r} seed {row['seed']}: valid {row['valid_ppl']:.2f}, test "
            f"{row['test_ppl']:.2f} (best epoch {row['best_epoch']}/{row['epochs']}, "
            f"{row['seconds']:.0f} s)")

    def crashed(job: tuple, why: str) -> None:
        lost.append((job[0], job[2], why))
        log(f"{job[0]!r} seed {job[2]} did not finish: {why}")

    harvested = []
    for name, seed in todo:
        row = finished_run(run_folder(checkpoint_root, name, seed))
        if (row and row.get("name") == name and row.get("seed") == seed
                and row.get("fingerprint") == configs[name].fingerprint()
                and (name not in controls or "trained_longer" in row)):
            harvested.append((name, seed))
            log(f"{name!r} seed {seed} finished in its folder without being recorded: recording it")
            record(row)
    todo = [job for job in todo if job not in harvested]
    log(f"{len(done) + len(harvested)} runs already in {results}"
        + (f" ({failed} failed: not retried)" if failed else "")
        + f"; {len(todo)} to go on {executor.describe()}")
    jobs = [(name, configs[name], seed, run_folder(checkpoint_root, name, seed), root, 1, False,
             False, download, device, name in controls) for name, seed in todo]
    executor.run(run_one, jobs, done=lambda job, row: record(row), failed=crashed)
    rows = study_runs(read_runs(results, failed=True, warn=log), configs, legacy)
    asked = [r for r in rows if r["seed"] in unique]
    failed = [r for r in asked if "failed" in r]
    finished = [r for r in rows if "failed" not in r]
    if failed or lost:
        raise StudyIncomplete(finished, failed, lost)
    return finished


# --------------------------------------------------------------------------------------- summary
def rung_runs(runs: list[dict], name: str) -> list[dict]:
    """The runs behind one ladder row, by seed: its own, or for ``"+ fine-tuning"`` (when it has none
    of its own) the ``"+ NT-ASGD"`` runs' fine-tuned results."""
    if name in _LADDER_SOURCE and not any(r["name"] == name for r in runs):
        return stage_runs(runs, *_LADDER_SOURCE[name])
    return stage_runs(runs, name)


def stage_runs(runs: list[dict], name: str, stage: str | None = None) -> list[dict]:
    """The results of the runs named ``name``, by seed: the whole run's (``stage=None``) or one
    stage's (``"finetuned"``: after fine-tuning), each with its seed; runs without that stage are left
    out."""
    picked = [r if stage is None else {**r[stage], "seed": r["seed"]}
              for r in runs if r["name"] == name and (stage is None or stage in r)]
    return sorted(picked, key=lambda r: r["seed"])


def summarize(runs: list[dict], name: str, picked: list[dict] | None = None) -> dict | None:
    """Mean and sample standard deviation over seeds of one row (see :func:`rung_runs`), or of the
    results ``picked``; None if no run of it has finished."""
    picked = rung_runs(runs, name) if picked is None else picked
    if not picked:
        return None
    row = {"seeds": [r["seed"] for r in picked]}
    for key in ("valid_ppl", "test_ppl"):
        values = [r[key] for r in picked]
        row[key] = round(mean(values), 2)
        row[f"{key}_seeds"] = [round(v, 2) for v in values]
        row[f"{key}_std"] = round(stdev(values), 2) if len(values) > 1 else None
    row["epochs_seeds"] = [r["epochs"] for r in picked]
    row["seconds"] = round(sum(r["seconds"] for r in picked), 1)
    return row


def ladder_rows(runs: list[dict]) -> list[dict]:
    """The ladder's rows (rung 1 = plain LSTM ... rung 7 = + fine-tuning) from a study's runs."""
    rows = []
    for rung, name in enumerate(LADDER, start=1):
        row = summarize(runs, name)
        if row is not None:
            rows.append({"name": name, "rung": rung, **row})
    return rows


# How a stage of a run ends when its rule, not its epoch cap, stopped it (awdlib.train's wording):
# training by early stopping; fine-tuning by its non-monotonic criterion or by early stopping.
PATIENCE_STOP = "no better validation loss for"
FINETUNE_STOPS = (PATIENCE_STOP, "non-monotonic criterion met")


def stopped_at_cap(run: dict, stage: str | None = None) -> bool:
    """Whether a run (its training; with ``stage="finetuned"`` its fine-tuning too) ended at its
    epoch cap instead of by its rule: a run that did is not converged (notebook 08's gate)."""
    trained = str(run.get("stop_reason") or "").startswith(PATIENCE_STOP)
    if stage is None:
        return not trained
    return not trained or not str(run[stage].get("stop_reason") or "").startswith(FINETUNE_STOPS)


def ladder_runs_from_ablation(runs: list[dict]) -> list[dict]:
    """The ladder's last rungs read from an ablation study's runs, which trained them already: the
    ladder's ``"+ AR/TAR"`` is the ablation's ``"– NT-ASGD"`` before its fine-tuning (the same
    settings but for fine-tuning, which comes after training), and ``"+ NT-ASGD"`` (fine-tuned:
    ``"+ fine-tuning"``) is ``"AWD-LSTM"`` (the same settings). So :func:`ladder_rows` gives rungs
    5-7 at the ablation's scale without a run of their own (notebook 05 at the converged scale)."""
    renamed = []
    for r in runs:
        if r["name"] == "– NT-ASGD":
            renamed.append({k: v for k, v in r.items() if k not in ("finetuned", "trained_longer")}
                           | {"name": "+ AR/TAR"})
        elif r["name"] == "AWD-LSTM":
            renamed.append({k: v for k, v in r.items() if k != "trained_longer"} | {"name": "+ NT-ASGD"})
    return renamed


def ablation_rows(runs: list[dict]) -> list[dict]:
    """The ablation's rows in the paper's order, from a study's runs: each configuration's results
    after fine-tuning, and ``"– fine-tuning"`` from the ``"AWD-LSTM"`` runs before it. A row that
    was fine-tuned also carries ``before_finetuning`` (its runs' results before) and, by seed, the
    epoch after which NT-ASGD switched to averaging (``trigger_epoch_seeds``; None: it did not).
    Every row lists the seeds whose run stopped at an epoch cap (``capped_seeds``, see
    :func:`stopped_at_cap`); the full model's row also summarises its fine-tuning control
    (``trained_longer``) where its runs have one."""
    rows = []
    for name in ABLATION:
        source, stage = ("AWD-LSTM", None) if name == "– fine-tuning" else (name, "finetuned")
        row = summarize(runs, name, stage_runs(runs, source, stage))
        if row is None:
            continue
        row = {"name": name, **row}
        row["capped_seeds"] = [r["seed"] for r in stage_runs(runs, source)
                               if r["seed"] in row["seeds"] and stopped_at_cap(r, stage)]
        longer = stage_runs(runs, source, "trained_longer") if name == "AWD-LSTM" else []
        if longer:
            row["trained_longer"] = {k: v for k, v in summarize(runs, name, longer).items()
                                     if k.startswith(("seeds", "valid_ppl", "test_ppl", "epochs"))}
        if stage:
            trained = stage_runs(runs, source)
            before = summarize(runs, name, [r for r in trained if r["seed"] in row["seeds"]])
            row["before_finetuning"] = {k: v for k, v in before.items()
                                        if k.startswith(("valid_ppl", "test_ppl"))}
            row["trigger_epoch_seeds"] = [r.get("trigger_epoch") for r in trained
                                          if r["seed"] in row["seeds"]]
        rows.append(row)
    return rows


def crossover_rows(runs: list[dict]) -> list[dict]:
    """The crossover pilot's rows: each configuration's runs, trained and (where it was) fine-tuned,
    summarised like the ablation's."""
    rows = []
    for name in ("AWD-LSTM", "– weight-dropping", "plain LSTM"):
        row = summarize(runs, name, stage_runs(runs, name))
        if row is not None:
            tuned = summarize(runs, name, stage_runs(runs, name, "finetuned"))
            rows.append({"name": name, **row, **({"finetuned": tuned} if tuned else {})})
    return rows


# study name -> the configurations whose runs also train the fine-tuning control (run_one's longer)
STUDY_CONTROLS = {"ablation": ("AWD-LSTM",)}
# study name -> (its configurations from a preset, its summary rows from the runs)
STUDIES = {"ladder": (ladder_configs, ladder_rows), "ablation": (ablation_configs, ablation_rows),
           "crossover": (crossover_configs, crossover_rows)}


def write_summary(study: str, runs: list[dict], path: str | Path, preset: Preset,
                  vocab_size: int | None = None) -> list[dict]:
    """Write the study's rows (:func:`summary_rows`) as JSON."""
    rows = summary_rows(study, runs, preset, vocab_size)
    with atomic_file(path) as f:
        f.write((json.dumps(rows, indent=1) + "\n").encode())
    return rows


def _last_stage(run: dict) -> dict:
    """A run's last stage (its control, fine-tuning or training): its ``seconds`` are the run's."""
    return run.get("trained_longer", run.get("finetuned", run))


def summary_rows(study: str, runs: list[dict], preset: Preset,
                 vocab_size: int | None = None) -> list[dict]:
    """The study's rows (means and per-seed values), each with the scale it ran at.

    The scale includes ``run_seconds``, every run's time (training, fine-tuning, control, testing) summed:
    the study's wall time times the number of workers, if they never waited. Given the corpus's
    ``vocab_size``, it also gives each configuration's number of parameters.
    """
    scale = {"preset": preset.name, "dataset": preset.dataset, "description": preset.description,
             "model": preset.model, "train_fraction": preset.train_fraction,
             "eval_fraction": preset.eval_fraction, "epochs": preset.train.epochs,
             "patience": preset.train.patience, "finetune_epochs": preset.finetune_epochs,
             "seeds": sorted({r["seed"] for r in runs}),
             "run_seconds": round(sum(_last_stage(r)["seconds"] for r in runs), 1)}
    if vocab_size is not None:
        scale["parameters"] = {name: AWDLSTM(c.model_config(vocab_size)).num_parameters()
                               for name, c in STUDIES[study][0](preset).items()}
    return [{**row, "scale": scale} for row in STUDIES[study][1](runs)]
