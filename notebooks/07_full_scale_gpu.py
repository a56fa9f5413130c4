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
# official code's GPU (a Quadro GP100) one PTB epoch took about 45 seconds, so the recipe is ten hours
# of GPU time or more. The 2-core CPU that made the other notebooks' outputs trains this model at about
# 2,000 tokens/s (`benchmarks/README.md`): eight minutes per PTB epoch, four days for the recipe.
#
# **The stored outputs below come from the smoke scale on a CPU** (tiny model, 1% of PTB, two epochs):
# this project has had no GPU so far. They prove that every cell runs and show what each cell prints;
# **none of their numbers is a result**, and the notebook says so in a banner. To produce real ones, run
# it on a GPU with `scale = "full"` (the parameters cell), or run the same recipe from the command line
# (the end of this notebook).

# %% tags=["parameters"]
import os
scale = os.environ.get("AWDLIB_SCALE", "full")  # "full": preset_name below (GPU, hours)
#                                                 "smoke" / "demo": the CPU presets, to try the cells
preset_name = "ptb"  # at full scale: a recipe in awdlib.PRESETS ("ptb", "wt2", ...)
device = "auto"  # "auto": cuda when torch sees a GPU, else cpu
time_budget = None  # seconds of training per call (training, then fine-tuning); None: no limit
checkpoint_dir = None  # None: results/checkpoints/<scale>/07-<preset>
resume = None  # continue the run in checkpoint_dir; None: yes at full scale, no otherwise
threads = int(os.environ.get("AWDLIB_THREADS", "2"))
progress = False  # True: a live progress bar per epoch

# %% tags=["nbval-ignore-output"]
# %matplotlib inline
import json
import statistics
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import torch

import awdlib
from awdlib.cache import OFFICIAL_SETTINGS
from awdlib.plots import plot_curves
from awdlib.published import (OFFICIAL_EPOCH_SECONDS, OFFICIAL_HARDWARE, SOURCES, comparison_table,
                              projected_hours)

torch.set_num_threads(threads)
full = scale == "full"
preset = awdlib.PRESETS[preset_name if full else scale]
device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
if full and device.type != "cuda":
    raise RuntimeError(f"scale 'full' trains {preset_name!r} for hundreds of epochs: on a CPU that takes "
                       f"days. Run this notebook where torch sees a GPU (device='cuda'), or set "
                       f"scale='smoke' (seconds) or 'demo' (CPU minutes) to try the cells.")
if resume is None:
    resume = full
folder = Path(checkpoint_dir or f"results/checkpoints/{scale}/07-{preset.name}")
if device.type == "cuda":
    hardware = (f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda}), "
                f"torch {torch.__version__}")
else:
    hardware = f"CPU ({os.cpu_count()} cores), {threads} torch thread(s), torch {torch.__version__}"
corpus = preset.corpus()
print(f"scale {scale!r}: preset {preset.name!r} ({preset.description})")
print(f"hardware: {hardware}")
print(f"checkpoints: {folder} ({'resume if there' if resume else 'start over'})")

# %%
if full:
    print(f"FULL SCALE: the recipe {preset.name!r} on {device.type}")
else:
    print(f"*** {scale.upper()} SCALE: a stand-in for the full recipe. Every number below checks that the "
          f"cells run; NONE is a result to compare with the paper. ***")

# %% [markdown]
# ## The recipe
#
# A preset is data: the model's sizes and dropouts, and the optimiser's settings. These are the ones
# this run uses (at full scale, the paper's Section 5: dropouts 0.4 / 0.3 / 0.4 / 0.1 on the output,
# between layers, on the input and on whole words, weight drop 0.5, batch 40, BPTT 70, learning rate
# 30, gradient clipping 0.25, AR $\alpha = 2$, TAR $\beta = 1$, weight decay $1.2 \times 10^{-6}$,
# NT-ASGD with $n = 5$).

# %%
model_config = preset.model_config(len(corpus.vocab))
c = preset.train
print(f"corpus {corpus.name}: {len(corpus.train):,} / {len(corpus.valid):,} / {len(corpus.test):,} "
      f"train / valid / test tokens, vocabulary {len(corpus.vocab):,}")
print(f"model: {model_config.n_layers} layers, emb {model_config.emb_size}, hidden "
      f"{model_config.hidden_size}, tied {model_config.tie_weights}; dropout {model_config.dropout}, "
      f"dropouth {model_config.dropouth}, dropouti {model_config.dropouti}, dropoute "
      f"{model_config.dropoute}, wdrop {model_config.wdrop}")
print(f"training: {c.epochs} epochs of {c.optimizer} (n = {c.nonmono}), then up to "
      f"{preset.finetune_epochs} of fine-tuning; batch {c.batch_size}, BPTT {c.bptt}, lr {c.lr}, clip "
      f"{c.clip}, AR {c.alpha}, TAR {c.beta}, weight decay {c.weight_decay}, seed {c.seed}")

# %% [markdown]
# ## Time budgets and resuming
#
# Ten GPU hours rarely happen in one sitting: a machine is lent for a while, a kernel dies, a job queue
# has a time limit. The trainer is built for that:
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
# With `resume` on and a `last.pt` in the folder, the run continues (also one started from the command
# line: point `checkpoint_dir` at its folder). Otherwise a fresh model starts. After training, the best
# validation weights are scored on the test split at batch size 1 (the paper's protocol: one long
# stream, the state carried through) and kept in `stages.json` beside the checkpoints, because
# fine-tuning will overwrite `best.pt`.

# %% tags=["nbval-ignore-output"]
settings = dict(time_budget=time_budget, progress=progress, log_epochs=False)
stages_file = folder / "stages.json"
if resume and (folder / "last.pt").exists():
    trainer = awdlib.Trainer.resume(folder / "last.pt", corpus, device, **settings)
    stages = json.loads(stages_file.read_text()) if stages_file.exists() else {}
    print(f"resumed after epoch {trainer.epoch} ({trainer.phase})")
else:
    trainer = preset.with_train(**settings).trainer(corpus, device, checkpoint_dir=folder)
    stages = {}
    print(f"a fresh model: {trainer.model.num_parameters():,} parameters on {device}")


def stopped_by_budget(t):
    return (t.history.stop_reason or "").startswith("time budget")


def train_records(t, phase="train"):
    return [r for r in t.history.records if r["phase"] == phase]


if trainer.phase == "train":
    trainer.history.stop_reason = None
    trainer.fit(preset.train.epochs)
trained = not stopped_by_budget(trainer) and not trainer.history.diverged
if trained and trainer.phase == "train" and "trained" not in stages:  # before fine-tuning only
    trainer.load_best()
    test_loss = awdlib.evaluate(trainer.model, corpus.test, c.bptt, batch_size=1)
    stages["trained"] = (trainer.history.best()["valid_ppl"], awdlib.perplexity(test_loss))
    stages_file.write_text(json.dumps(stages))
history = train_records(trainer)
switch = next((r["epoch"] for r in history if r["averaging"]), None)
print(f"{len(history)} training epochs; best validation perplexity "
      f"{min(r['valid_ppl'] for r in history):.2f}; NT-ASGD " +
      (f"switched to averaging at epoch {switch}" if switch else "did not switch"))
if not trained:
    print(f"NOT FINISHED: {trainer.history.stop_reason}. Run this cell again with resume=True "
          f"(or the command line with --resume) to continue.")

# %% [markdown]
# ## Fine-tune
#
# `trainer.finetune(epochs)` loads the best weights, restarts averaged SGD with averaging from its first
# step, and stops when the non-monotonic criterion fires (or after `epochs`). The same time budget
# applies; a run stopped inside fine-tuning resumes inside fine-tuning.

# %% tags=["nbval-ignore-output"]
if trained:
    trainer.history.stop_reason = None
    if trainer.phase == "train":
        trainer.finetune(preset.finetune_epochs)
    else:  # resumed inside fine-tuning: continue it to the same last epoch
        trainer.fit(len(history) + preset.finetune_epochs)
    finetuned = not stopped_by_budget(trainer) and not trainer.history.diverged
    tuned = train_records(trainer, "finetune")
    print(f"{len(tuned)} fine-tuning epochs; {trainer.history.stop_reason or 'ran them all'}")
else:
    finetuned, tuned = False, []
    print("fine-tuning waits until training has finished")

# %% [markdown]
# ## The curves
#
# Training (dashed) and validation (solid) perplexity per epoch; the dotted line marks NT-ASGD's switch
# to averaging, after which validation is measured on the averaged weights. Fine-tuning continues the
# epoch count.

# %% tags=["nbval-ignore-output"]
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
# published numbers live in one place, `awdlib.published`.

# %% tags=["nbval-ignore-output"]
label = f"{scale} scale, {device.type}" if full else f"{scale} scale: NOT a result"
print(f"this run: preset {preset.name!r} on {hardware}")
print(comparison_table(preset.dataset, stages, label=label))
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
recipe = awdlib.PRESETS[preset_name]
anchor = OFFICIAL_EPOCH_SECONDS.get((recipe.dataset, recipe.train.batch_size))
if anchor:
    print(f"projected for {recipe.name!r} from the official code's {anchor:g} s/epoch at batch "
          f"{recipe.train.batch_size} on an {OFFICIAL_HARDWARE}: "
          f"{projected_hours(anchor, recipe.train.epochs, recipe.finetune_epochs):.1f} h")

# %% [markdown]
# `benchmarks/gpu.py` measures the speed of every recipe on a GPU in a few minutes without training it
# through (tokens/s, seconds per epoch, FP32 against TF32, the AWD-LSTM against a plain `nn.LSTM` of
# the same sizes); `benchmarks/README.md` describes it.
#
# ## The same recipe from the command line
#
# A notebook kernel is a fragile home for a ten-hour job. The command line runs the same code, needs
# only torch, numpy and tqdm, and takes the same budget and resume flags:
#
# ```bash
# export AWDLIB_DATA=/path/to/data   # holding ptb/ and wikitext-2/
# python -m awdlib train --preset ptb --device cuda --checkpoint-dir runs/ptb --time-budget 3600
# python -m awdlib train --preset ptb --device cuda --checkpoint-dir runs/ptb --time-budget 3600 --resume
# python -m awdlib finetune --checkpoint-dir runs/ptb --device cuda
# python -m awdlib cache runs/ptb/best.pt --search --device cuda    # tune on valid, report test, batch 1
# ```
#
# (`--resume` continues with the run's own settings; run it until training reports its last epoch.)
# Then point this notebook at the folder (`checkpoint_dir = "../runs/ptb"`, `resume = True`) to draw
# the curves and fill the table. Or run the notebook itself headless on the GPU machine with papermill:
# `papermill 07_full_scale_gpu.ipynb out.ipynb -p scale full -p preset_name ptb -p time_budget 36000`.
#
# ## Takeaways
#
# - Full scale is the paper's recipe unchanged: whole corpus, 24M (PTB) or 33M (WikiText-2) parameters,
#   hundreds of epochs of NT-ASGD, fine-tuning, the cache tuned on validation, test at batch size 1.
# - It costs GPU hours (about ten for PTB on the official code's GPU); a time budget and an exact resume
#   make those hours survivable in pieces.
# - A number is a result only with its scale and hardware next to it: the stored outputs above come
#   from the smoke scale on a CPU and say so.
#
# ## Exercises (predict, then run)
#
# 1. Set `preset_name = "wt2"` (and keep the smoke scale): predict the official-anchor projection
#    printed by the projection cell before running it. (WikiText-2 trains 750 + up to 750 epochs of
#    fine-tuning at 105 s each.)
# 2. At smoke scale, pass `windows=[100, 500, 2000]` to `search_cache` (the paper's text used 2000 on
#    PTB, the official code 500). Which window wins on 5% of the validation split, and why might a long
#    window help less on a short text?
