# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: -papermill,-execution
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 07 · The full recipe on a GPU
#
# Notebooks 01–05 built each technique of Merity, Keskar & Socher (2017) and measured it on a CPU-sized
# slice of PTB. This notebook builds nothing new. It runs **the whole recipe at full scale**, the way the
# paper reports its numbers, and puts the results beside the published ones:
#
# 1. **train** the 3-layer AWD-LSTM (400-dimensional embedding, 1150 hidden units, tied weights, 24M
#    parameters on PTB) with every regulariser on, under NT-ASGD, for 750 epochs on both corpora as the
#    paper's Section 5 states (the official code's commands: 500 on PTB; preset `ptb-official`);
# 2. **fine-tune**: averaged SGD again from the best weights, until the non-monotonic criterion stops it;
# 3. **the continuous cache pointer**: tune its $\theta$ and $\lambda$ on validation data;
# 4. **test** at batch size 1, with and without the cache.
#
# "Full scale" means exactly this: the whole corpus, the paper's model size and its epoch counts. On the
# official code's GPU (a Quadro GP100) one PTB epoch took 45 seconds; the projection cell near the end
# turns that into the recipe's hours, and the training cell prints the same projection for *your* GPU
# after the first epoch, before the hours are spent. On the 2-core CPU that made the other notebooks'
# outputs this model would train for days (`benchmarks/README.md` measures its speed).
#
# **The stored outputs below come from the smoke scale on a CPU** (a tiny model on 1% of PTB, two
# epochs): this project has had no GPU so far. They prove that every cell runs and show what each cell
# prints; **none of their numbers is a result**, and the notebook says so in a banner. With the default
# parameters on a machine without a GPU, "Run All" prints one paragraph that says what to do and trains
# nothing. To produce real results, run it on a GPU (`scale = "full"`, the default), or run the same
# recipe from the command line (the end of this notebook) and point the notebook at its folder.

# %% tags=["parameters"]
import os
scale = os.environ.get("AWDLIB_SCALE", "full")  # "full": the recipe preset_name (a GPU, hours)
#                         "smoke": seconds on a CPU (the stored outputs) | "demo": minutes on a CPU
preset_name = "ptb"  # at full scale: a recipe in awdlib.PRESETS ("ptb", "wt2", "ptb-official", ...)
device = "auto"  # "auto": cuda when torch sees a GPU, else cpu
tf32 = False  # True: on a GPU, float32 matrix products run in TF32 (a 10-bit mantissa): faster on
#               Ampere and later GPUs, but no longer the paper's FP32 arithmetic
time_budget = None  # seconds of training per stage (training, fine-tuning) and session; None: no limit
checkpoint_dir = None  # None: results/checkpoints/<scale>/07-<preset>
resume = None  # continue the run in checkpoint_dir; None: yes at full scale, no otherwise
threads = int(os.environ.get("AWDLIB_THREADS", "1"))  # 1, as the stored outputs were made
progress = False  # True: a live progress bar per epoch

# %% tags=["nbval-ignore-output"]
# %matplotlib inline
import json
import math
import statistics
import tempfile
import textwrap
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch

import awdlib
from awdlib.cache import OFFICIAL_SETTINGS
from awdlib.checkpoint import build_model, load_checkpoint
from awdlib.plots import plot_curves
from awdlib.published import (OFFICIAL_EPOCH_SECONDS, OFFICIAL_HARDWARE, SOURCES, comparison_table,
                              projected_hours)

torch.set_num_threads(threads)
full = scale == "full"
recipe = awdlib.PRESETS[preset_name]  # the full recipe, whatever the scale
preset = recipe if full else awdlib.PRESETS[scale]  # what this run trains
device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
run_here = not (full and device.type != "cuda")  # the full recipe trains on a GPU only
if resume is None:
    resume = full
folder = Path(checkpoint_dir or f"results/checkpoints/{scale}/07-{preset.name}")
if device.type == "cuda":
    hardware = (f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda}), "
                f"torch {torch.__version__}, TF32 {'on' if tf32 else 'off'}")
else:
    hardware = f"CPU ({os.cpu_count()} cores), {threads} torch thread(s), torch {torch.__version__}"
corpus = preset.corpus()
print(f"scale {scale!r}: preset {preset.name!r} ({preset.description})")
print(f"hardware: {hardware}")
print(f"checkpoints: {folder} ({'resume if there' if resume else 'start over'})")

# %%
if not run_here:
    why = "torch sees no GPU on this machine" if not torch.cuda.is_available() else \
        f"device = {str(device)!r} in the parameters cell"
    print(textwrap.fill(
        f"NOTHING WILL TRAIN HERE. With scale = 'full' (the default) this notebook runs the recipe "
        f"{recipe.name!r}: {recipe.train.epochs} epochs, then up to {recipe.finetune_epochs} of "
        f"fine-tuning, hours on a GPU and days on a CPU, and {why}. To get results, run it where torch "
        f"sees a GPU (or train there from the command line, as the end of this notebook shows, and "
        f"point checkpoint_dir at that folder with resume = True). To watch every cell run here in "
        f"seconds, set scale = 'smoke' in the parameters cell (or AWDLIB_SCALE=smoke) and Run All "
        f"again: a tiny model on 1% of PTB that gives no result. The outputs stored in this notebook "
        f"come from exactly that, the smoke scale on a CPU. The cells below train nothing.", width=100))
elif full:
    print(f"FULL SCALE: the recipe {preset.name!r} on {device.type}")
else:
    print(f"*** {scale.upper()} SCALE: a stand-in for the full recipe. Every number below checks that the "
          f"cells run; NONE is a result to compare with the paper. ***")

# %% [markdown]
# ## The recipe
#
# A preset is data: the model's sizes and dropouts, and the optimiser's settings. The cell below prints
# the full recipe (for `ptb` the paper's Section 5: dropouts 0.4 / 0.3 / 0.4 / 0.1 on the output,
# between layers, on the input and on whole words, weight drop 0.5, batch 40, BPTT 70, learning rate
# 30, gradient clipping 0.25, AR $\alpha = 2$, TAR $\beta = 1$, weight decay $1.2 \times 10^{-6}$,
# NT-ASGD with $n = 5$) and, at a smaller scale, the stand-in that this run trains instead.


# %%
def describe(p, corpus):
    """Print a preset: its corpus, model and training settings."""
    m, c = p.model_config(len(corpus.vocab)), p.train
    n_parameters = awdlib.AWDLSTM(m).num_parameters()  # a CPU model, built to be counted
    print(f"corpus {corpus.name}: {len(corpus.train):,} / {len(corpus.valid):,} / {len(corpus.test):,} "
          f"train / valid / test tokens, vocabulary {len(corpus.vocab):,}")
    print(f"model: {m.n_layers} layers, emb {m.emb_size}, hidden {m.hidden_size}, tied {m.tie_weights}"
          f" ({n_parameters:,} parameters); dropout {m.dropout}, dropouth {m.dropouth}, dropouti "
          f"{m.dropouti}, dropoute {m.dropoute}, wdrop {m.wdrop}")
    print(f"training: {c.epochs} epochs of {c.optimizer} (n = {c.nonmono}), then up to "
          f"{p.finetune_epochs} of fine-tuning; batch {c.batch_size}, BPTT {c.bptt}, lr {c.lr}, clip "
          f"{c.clip}, AR {c.alpha}, TAR {c.beta}, weight decay {c.weight_decay}, seed {c.seed}")


print(f"the full recipe {recipe.name!r}:")
describe(recipe, corpus if preset is recipe else recipe.corpus())
if preset is not recipe:
    print(f"\nthis run trains the {scale} stand-in {preset.name!r}:")
    describe(preset, corpus)
c = preset.train

# %% [markdown]
# ## Time budgets and resuming
#
# GPU hours rarely come in one sitting: a machine is lent for a while, a kernel dies, a job queue has a
# time limit. The trainer is built for that:
#
# - after **every epoch** it writes `last.pt` (weights, optimiser and averaging state, random-number
#   states, history) and, when validation improves, `best.pt` (the averaged weights once NT-ASGD has
#   switched);
# - `time_budget` (seconds) stops training cleanly when the budget is used, with `last.pt` written;
# - `Trainer.resume(last.pt, corpus)` rebuilds the run and continues where it stopped.
#
# A resumed run should be the run that was never interrupted. Here is that check, in seconds, with the
# smoke preset on the CPU whatever the scale above: two epochs straight, against one epoch, a fresh
# trainer resumed from its `last.pt`, and a second epoch.

# %%
smoke = awdlib.PRESETS["smoke"].with_train(log_epochs=False)
smoke_corpus = corpus if preset.name == "smoke" else smoke.corpus()
with tempfile.TemporaryDirectory() as straight, tempfile.TemporaryDirectory() as stopped:
    uninterrupted = smoke.trainer(smoke_corpus, checkpoint_dir=straight)
    uninterrupted.fit(2)
    first = smoke.trainer(smoke_corpus, checkpoint_dir=stopped)
    first.fit(1)
    resumed = awdlib.Trainer.resume(Path(stopped) / "last.pt", smoke_corpus, log_epochs=False)
    resumed.fit(2)
straight_losses = uninterrupted.history.column("valid_loss")
resumed_losses = resumed.history.column("valid_loss")
print(f"validation losses, straight:         {[round(v, 4) for v in straight_losses]}")
print(f"stopped after epoch 1, then resumed: {[round(v, 4) for v in resumed_losses]}")
print(f"identical to the last bit: {straight_losses == resumed_losses}")

# %% [markdown]
# ## Train
#
# With `resume` on and a `last.pt` in the folder, the run continues, whoever started it (this notebook,
# or the command line: point `checkpoint_dir` at its folder). Otherwise a fresh model starts; it trains
# **one epoch first**, and the time of that epoch projects the whole recipe's time on this hardware
# before the hours are spent.
#
# After training, the best validation weights are scored on the test split at batch size 1 (the
# paper's protocol: one long stream, the state carried through) and the pair is kept in `stages.json`
# beside the checkpoints, because fine-tuning overwrites `best.pt` as soon as it improves on them. A run
# that was fine-tuned before this notebook saw it may have lost those weights: then the trained stage
# has its validation perplexity (from the history) and no test perplexity, and the table says so.


# %%
def records(t, phase):
    return [r for r in t.history.records if r["phase"] == phase]


def stopped_by_budget(t):
    return (t.history.stop_reason or "").startswith("time budget")


def not_finished(t):
    place = f" and {t.unfinished.steps} steps of epoch {t.epoch + 1}" if t.unfinished else ""
    why = f"the time budget of {time_budget:g} s is used" if stopped_by_budget(t) else \
        t.history.stop_reason
    return (f"NOT FINISHED: {why}; last.pt holds epoch {t.epoch}{place}. Run the notebook again with "
            f"resume=True (or the command line with --resume) to continue.")


def duration(seconds):
    return f"{seconds / 3600:.1f} hours" if seconds >= 3600 else f"{seconds / 60:.1f} minutes"


def trained_stage(t):
    """(valid, test) perplexity of the training stage's best weights; test is None when best.pt no
    longer holds them (fine-tuning improved on them)."""
    best = min(records(t, "train"), key=lambda r: r["valid_loss"])
    if t.phase == "train":
        t.load_best()
        model = t.model
    else:  # fine-tuning has begun: best.pt holds the training stage's weights until it improves
        state = load_checkpoint(folder / "best.pt", device)
        if state["phase"] != "train":
            return best["valid_ppl"], None
        model = build_model(state).to(device)
    test_loss = awdlib.evaluate(model, corpus.test, c.bptt, batch_size=1)
    return best["valid_ppl"], awdlib.perplexity(test_loss)


# %% tags=["nbval-ignore-output"]
settings = dict(time_budget=time_budget, progress=progress, log_epochs=False, tf32=tf32)
stages_file = folder / "stages.json"
trainer, stages = None, {}
if not run_here:
    print("nothing trained: this machine has no GPU for the full recipe (see the paragraph above)")
elif resume and (folder / "last.pt").exists():
    trainer = awdlib.Trainer.resume(folder / "last.pt", corpus, device, **settings)
    stages = json.loads(stages_file.read_text()) if stages_file.exists() else {}
    print(f"resumed after epoch {trainer.epoch} ({trainer.phase})")
else:
    stages_file.unlink(missing_ok=True)  # a new run: an old run's stage results no longer hold
    trainer = preset.with_train(**settings).trainer(corpus, device, checkpoint_dir=folder)
    print(f"a fresh model: {trainer.model.num_parameters():,} parameters on {device}")

# %% tags=["nbval-ignore-output"]
if trainer and trainer.phase == "train":
    trainer.history.stop_reason = None
    if trainer.epoch == 0:  # one epoch first, to price the recipe
        started = time.perf_counter()
        trainer.fit(1)
        if time_budget is not None and not stopped_by_budget(trainer):  # the budget covers the stage
            trainer.config.time_budget = max(time_budget - (time.perf_counter() - started), 0.001)
    epoch1 = trainer.history.records[0] if trainer.history.records else None
    if epoch1:
        seconds = epoch1["seconds"] * (preset.train.epochs + preset.finetune_epochs)
        print(f"epoch 1 took {epoch1['seconds']:.1f} s: the recipe {preset.name!r} "
              f"({preset.train.epochs} epochs + up to {preset.finetune_epochs} of fine-tuning) would "
              f"take about {duration(seconds)} on {hardware.split(',')[0]} (training passes only)")
    if not stopped_by_budget(trainer):
        trainer.fit(preset.train.epochs)
    trainer.config.time_budget = time_budget
trained = bool(trainer) and (trainer.phase == "finetune"
                             or not (stopped_by_budget(trainer) or trainer.history.diverged))
history = records(trainer, "train") if trainer else []
switch = next((r["epoch"] for r in history if r["averaging"]), None)
if history:
    print(f"{len(history)} training epochs; best validation perplexity "
          f"{min(r['valid_ppl'] for r in history):.2f}; NT-ASGD " +
          (f"switched to averaging at epoch {switch}" if switch else "did not switch"))
if trainer and not trained:
    print(not_finished(trainer))

# %% tags=["nbval-ignore-output"]
if trained and "trained" not in stages:  # before any more fine-tuning can overwrite best.pt
    stages["trained"] = trained_stage(trainer)
    stages_file.write_text(json.dumps(stages))
if trained:
    valid, test = stages["trained"]
    print(f"the trained stage: validation perplexity {valid:.2f}, test " +
          (f"{test:.2f} (batch 1)" if test is not None else
           f"unknown: fine-tuning had replaced its best weights in best.pt before this notebook saw "
           f"the run"))

# %% [markdown]
# ## Fine-tune
#
# `trainer.finetune(epochs)` loads the best weights, restarts averaged SGD with averaging from its first
# step, and stops when the non-monotonic criterion fires (or after `epochs`). The same time budget
# applies; a run stopped inside fine-tuning resumes inside fine-tuning. A run whose fine-tuning has
# ended stays finished: running the notebook again on it trains nothing and only reports.

# %% tags=["nbval-ignore-output"]
finetuned, tuned = False, []
if trained:
    last_epoch = len(history) + preset.finetune_epochs  # fine-tuning's cap, as the command line's
    if trainer.finetuning_done:
        finetuned = True
        print(f"fine-tuning finished at epoch {trainer.epoch} (criterion met); nothing to train")
    elif trainer.phase == "finetune" and trainer.epoch >= last_epoch:
        finetuned = True
        print(f"fine-tuning finished at epoch {trainer.epoch} (its {preset.finetune_epochs} epochs "
              f"run); nothing to train")
    else:
        trainer.history.stop_reason = None
        if trainer.phase == "train":
            trainer.finetune(preset.finetune_epochs)
        else:  # resumed inside fine-tuning: continue it to the same last epoch
            trainer.fit(last_epoch)
        finetuned = not stopped_by_budget(trainer) and not trainer.history.diverged
        print(f"{len(records(trainer, 'finetune'))} fine-tuning epochs; "
              f"{trainer.history.stop_reason or 'ran them all'}" if finetuned else not_finished(trainer))
    tuned = records(trainer, "finetune")
elif trainer:
    print("fine-tuning waits until training has finished")

# %% [markdown]
# ## The curves
#
# Training (dashed) and validation (solid) perplexity per epoch; the dotted line marks NT-ASGD's switch
# to averaging, after which validation is measured on the averaged weights. Fine-tuning continues the
# epoch count.

# %% tags=["nbval-ignore-output"]
if history:
    ax = plot_curves({"training": awdlib.History(history), "fine-tuning": awdlib.History(tuned)},
                     title=(f"{preset.name}, full scale" if full else f"{scale} scale: not a result")
                     + f", {hardware.split(',')[0]}")
    if switch:
        ax.annotate(f"NT-ASGD switch\n(epoch {switch})", (switch - 0.5, ax.get_ylim()[1]), fontsize=8,
                    ha="right", va="top")
    plt.show()

# %% [markdown]
# ## The cache pointer and the test split
#
# The fine-tuned weights (`best.pt`) run once over the validation split at batch size 1, keeping what
# the cache needs (`awdlib.cache_inputs`); `awdlib.search_cache` then scores a grid of $\theta$ and
# $\lambda$ at the official window for this corpus, and the best point is applied to the test split.
# The test perplexity without the cache comes from the same batch-1 pass, and is checked against
# `awdlib.evaluate` at batch size 1.

# %% tags=["nbval-ignore-output"]
if finetuned:
    trainer.load_best()
    model = trainer.model
    official = OFFICIAL_SETTINGS[preset.dataset]
    search = awdlib.search_cache(awdlib.cache_inputs(model, corpus.valid), windows=[official["window"]])
    best = {k: search.best[k] for k in ("window", "theta", "lambdah")}
    test = awdlib.cache_inputs(model, corpus.test)
    plain_test = -test.target_log_probs.double().mean().item()
    check = awdlib.evaluate(model, corpus.test, c.bptt, batch_size=1)
    assert abs(plain_test - check) < 1e-4, (plain_test, check)
    stages["fine-tuned"] = (trainer.history.best()["valid_ppl"], awdlib.perplexity(plain_test))
    stages["+ cache"] = (awdlib.perplexity(search.best["loss"]), awdlib.perplexity(test.loss(**best)))
    stages_file.write_text(json.dumps(stages))
    print(f"valid, no cache {awdlib.perplexity(search.plain_loss):.2f}; best of {search.losses.numel()} "
          f"grid points: theta {best['theta']:g}, lambda {best['lambdah']:g} -> "
          f"{awdlib.perplexity(search.best['loss']):.2f}")
    print(f"test at batch 1: {awdlib.perplexity(plain_test):.2f} without the cache "
          f"(awdlib.evaluate agrees), {awdlib.perplexity(test.loss(**best)):.2f} with it; with the "
          f"official settings {official}: {awdlib.perplexity(test.loss(**official)):.2f}")

# %% [markdown]
# ## Against the published numbers
#
# Validation and test perplexity after each stage, beside the paper's (its Tables 1–3) and the official
# code's README (its later PyTorch 0.4 code, with its own commands: batch 20 and `dropouth` 0.25 on
# PTB). Both are single runs; the official README calls its numbers "approximately" reproduced. The
# published numbers live in one place, `awdlib.published`. A dash marks a number this run cannot
# provide (the trained stage's test perplexity, when fine-tuning replaced its weights first).

# %% tags=["nbval-ignore-output"]
label = (f"{scale} scale, {device.type}" if full else f"{scale} scale: NOT a result") if run_here \
    else "not run: no GPU"
shown = {stage: (valid, math.nan if test is None else test) for stage, (valid, test) in stages.items()}
print(f"this run: preset {preset.name!r} on {hardware}")
print(comparison_table(preset.dataset, shown, label=label).replace("     nan", "       -"))
print("paper:", SOURCES["paper"], "| official code:", SOURCES["official"])
if full and finetuned:
    record = {"preset": preset.name, "hardware": hardware, "stages": stages, "epochs": len(history),
              "finetune_epochs": len(tuned), "nt_asgd_switch_epoch": switch}
    Path(f"results/full-{preset.name}.json").write_text(json.dumps(record, indent=1) + "\n")

# %% [markdown]
# ## How long the full recipe takes: a projection
#
# The trainer records the seconds of every epoch's training pass (evaluation not included). Their median
# times the recipe's epoch count (training, plus fine-tuning's maximum, which the criterion usually cuts
# short) projects the run's GPU time. It is a **projection**: it assumes every epoch costs the same and
# that nothing else shares the device. At full scale it projects this very run; at the smoke or demo
# scale it projects only that small preset on this hardware, so the full recipe is projected from the
# official code's own speed on its GPU instead.

# %% tags=["nbval-ignore-output"]
measured = [r["seconds"] for r in history]  # every record is a whole epoch (a paused one adds up)
if measured:
    s_epoch = statistics.median(measured)
    print(f"measured: {s_epoch:.2f} s per training epoch (median of {len(measured)}), "
          f"{statistics.median(r['tokens_per_s'] for r in history):,.0f} tokens/s, on {hardware}")
    hours = projected_hours(s_epoch, preset.train.epochs, preset.finetune_epochs)
    print(f"projected for {preset.name!r} ({preset.train.epochs} + up to {preset.finetune_epochs} "
          f"epochs) on this hardware: {hours:.2f} h")
anchor = OFFICIAL_EPOCH_SECONDS.get((recipe.dataset, recipe.train.batch_size))
if anchor:
    print(f"projected for {recipe.name!r} from the official code's {anchor:g} s/epoch at batch "
          f"{recipe.train.batch_size} on an {OFFICIAL_HARDWARE}: "
          f"{projected_hours(anchor, recipe.train.epochs, recipe.finetune_epochs):.1f} h")

# %% [markdown]
# `benchmarks/gpu.py` measures the speed of every recipe on a GPU in a few minutes without training it
# through (tokens/s, seconds per epoch, FP32 against TF32, the AWD-LSTM against a plain `nn.LSTM` of
# the same sizes); `benchmarks/README.md` describes it. The `tf32` parameter makes the same choice for
# this run.
#
# ## The same recipe from the command line
#
# A notebook kernel is a fragile home for a job of many hours. The command line runs the same code,
# needs only torch, numpy and tqdm, and takes the same budget and resume flags:
#
# ```bash
# export AWDLIB_DATA=/path/to/data   # holding ptb/ and wikitext-2/
# python -m awdlib train --preset ptb --device cuda --checkpoint-dir runs/ptb --time-budget 3600
# python -m awdlib train --preset ptb --device cuda --checkpoint-dir runs/ptb --time-budget 3600 --resume
# python -m awdlib evaluate runs/ptb/best.pt --split test --device cuda  # the trained stage's test
# python -m awdlib finetune --checkpoint-dir runs/ptb --device cuda
# python -m awdlib cache runs/ptb/best.pt --search --device cuda    # tune on valid, report test, batch 1
# ```
#
# (`--resume` continues with the run's own settings; run it until training reports its last epoch.
# `--set train.tf32=true` is the `tf32` parameter.) `finetune` overwrites `best.pt` as soon as it
# improves on it, so `evaluate` before it is the only chance to score the trained stage's weights on the
# test split. Then point this notebook at the folder (`checkpoint_dir = "../runs/ptb"`, `resume = True`)
# to draw the curves and fill the table: a finished run is only reported, not trained further. Or run
# the notebook itself headless on the GPU machine with papermill:
# `papermill 07_full_scale_gpu.ipynb out.ipynb -p scale full -p preset_name ptb -p time_budget 36000`.
#
# ## Takeaways
#
# - Full scale is the paper's recipe unchanged: whole corpus, the paper's model (24M parameters on
#   PTB), hundreds of epochs of NT-ASGD, fine-tuning, the cache tuned on validation, test at batch
#   size 1.
# - It costs GPU hours (the projection cell prints how many on the official code's GPU); a time budget
#   and an exact resume make those hours survivable in pieces, and a finished run stays finished.
# - A number is a result only with its scale and hardware next to it: the stored outputs above come
#   from the smoke scale on a CPU and say so.
#
# ## Exercises (predict, then run)
#
# 1. Set `preset_name = "wt2"` and predict the last line of the projection cell (the official code's
#    speed times WikiText-2's epoch counts) before running it. The recipe cell prints those counts and
#    the projection cell the speed (750 + up to 750 epochs at 105 s each). That line prints at any
#    scale: on a CPU keep the default `scale = "full"` (nothing trains there) or set `scale = "smoke"`;
#    on a GPU set `scale = "smoke"` too, since at full scale the change would train WikiText-2 for hours.
# 2. With `scale = "smoke"`, pass `windows=[100, 500, 2000]` to `search_cache` in the cache cell (the
#    paper's text used 2000 on PTB, the official code 500). Which window wins on 5% of the validation
#    split, and why might a long window help less on a short text?
