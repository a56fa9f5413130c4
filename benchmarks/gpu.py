"""GPU evidence for the full recipe (issue #10): how fast does the AWD-LSTM train on this device?

For each configuration -- ``PRESETS["ptb"]`` (batch 40), the same with the official command's batch 20
and ``dropouth`` 0.25 (what ``ptb-official`` holds; built here from ``ptb`` so that this file does not
depend on that preset), and ``PRESETS["wt2"]`` (batch 80) -- it trains the AWD-LSTM with every dropout
on, and a plain stack of single-layer ``nn.LSTM``s of identical sizes (tied embedding/decoder, no
dropout, no AR/TAR), for ``--warmup`` steps and then ``--steps`` timed steps. One step is the training
step of ``awdlib.Trainer``: a variable-length BPTT window, forward, cross-entropy (+ AR and TAR for the
AWD-LSTM), backward, gradient clipping at 0.25, SGD at lr 30 scaled by the window's length. Time is
taken between ``torch.cuda.synchronize()`` calls, so it counts the GPU's work, not the launches.

    python benchmarks/gpu.py            # one GPU; aimed at under 6 minutes on an H100 (not yet timed)
    python benchmarks/gpu.py --json benchmarks/results/gpu-h100.json
    python benchmarks/gpu.py --device cpu --quick --synthetic   # proves it runs (seconds, tiny model)

The table printed last gives, per configuration, model and float precision: training tokens/s; the
seconds per epoch that speed implies (the corpus's training tokens / tokens/s: a projection from the
timed steps, evaluation not included) and the whole recipe's hours (epochs + fine-tuning epochs, at
most); AWD-LSTM over plain tokens/s; peak GPU memory; validation perplexity after warm-up + timed
steps (same seed, same windows, so FP32 and TF32 rows differ only by the arithmetic); and whether
cuDNN's fused RNN kernel ran (``aten::_cudnn_rnn`` in a profiled step) and whether cuDNN warned that
the weights "are not part of single contiguous chunk of memory" (it then copies them every call).
The ``ptb`` rows run in FP32 and in TF32 (matmuls and cuDNN RNNs); the others in FP32.

Needs only torch, numpy and awdlib (no Jupyter, no matplotlib, no downloads when the data is there:
``AWDLIB_DATA`` or ``--data-root``).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # awdlib from this checkout

from awdlib import (PRESETS, AWDLSTM, activation_regularization, batchify, bptt_batches,  # noqa: E402
                    evaluate, load_corpus, perplexity, synthetic_corpus,
                    temporal_activation_regularization)
from awdlib.model import detach_hidden  # noqa: E402
from awdlib.published import OFFICIAL_EPOCH_SECONDS, projected_hours  # noqa: E402
from benchmarks.reference import PlainLSTMLM  # noqa: E402

COMPACTION_WARNING = "not part of single contiguous chunk of memory"


@dataclass(frozen=True)
class Config:
    name: str
    preset: object  # awdlib.Preset
    note: str
    precisions: tuple[str, ...] = ("fp32",)


def configs() -> list[Config]:
    ptb, wt2 = PRESETS["ptb"], PRESETS["wt2"]
    return [
        Config("ptb", ptb, "PRESETS['ptb']", ("fp32", "tf32")),
        Config("ptb-b20", ptb.with_train(batch_size=20).with_model(dropouth=0.25),
               "PRESETS['ptb'] with the official command's batch 20, dropouth 0.25"),
        Config("wt2", wt2, "PRESETS['wt2']"),
    ]


def precision_flags():
    """The current TF32 settings, to restore at the end."""
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):
        return torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.rnn.fp32_precision
    return torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32


def restore_precision(flags) -> None:
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):
        torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.rnn.fp32_precision = flags
    else:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags


def set_precision(precision: str) -> None:
    """FP32 ("ieee") or TF32 for cuBLAS matmuls and cuDNN RNNs (torch's default: matmuls FP32, cuDNN
    RNNs TF32). Uses the ``fp32_precision`` API where torch has it: mixing it with the older
    ``allow_tf32`` flags is an error in recent torch."""
    value = {"fp32": "ieee", "tf32": "tf32"}[precision]
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):
        torch.backends.cuda.matmul.fp32_precision = value
        torch.backends.cudnn.rnn.fp32_precision = value
    else:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = value == "tf32"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_steps(model, data, config, n_steps: int, generator, awd: bool):
    """``n_steps`` training steps over ``data`` (batchified), cycling through it; the tokens seen."""
    c = config
    opt = torch.optim.SGD(model.parameters(), lr=c.lr, weight_decay=c.weight_decay)
    model.train()
    hidden, tokens, done = model.init_hidden(c.batch_size), 0, 0
    while done < n_steps:
        for inputs, targets, seq_len in bptt_batches(data, c.bptt, True, generator):
            for group in opt.param_groups:
                group["lr"] = c.lr * seq_len / c.bptt
            out = model(inputs, detach_hidden(hidden))
            hidden = out.hidden
            loss = F.cross_entropy(out.logits.flatten(0, 1), targets.flatten())
            if awd:
                loss = loss + activation_regularization(out.dropped_outputs[-1], c.alpha) \
                    + temporal_activation_regularization(out.raw_outputs[-1], c.beta)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), c.clip)
            opt.step()
            tokens += targets.numel()
            done += 1
            if done == n_steps:
                break
    return tokens


def runs_cudnn_rnn(model, data, config, generator, awd: bool) -> bool:
    """Whether one profiled training step calls cuDNN's fused RNN kernel."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train_steps(model, data, config, 1, generator, awd)
    return any("_cudnn_rnn" in event.key for event in prof.key_averages())


def measure(cfg: Config, model_kind: str, precision: str, corpus, device, args) -> dict:
    preset = cfg.preset
    if args.quick:  # a tiny model and short windows: proves the code runs, measures nothing
        preset = preset.with_model(emb_size=16, hidden_size=32).with_train(bptt=10)
    c = preset.train
    set_precision(precision)
    torch.manual_seed(c.seed)
    config = preset.model_config(len(corpus.vocab))
    if model_kind == "AWD-LSTM":
        model = AWDLSTM(config)
    else:
        model = PlainLSTMLM(config.vocab_size, config.emb_size, config.hidden_size, config.n_layers)
    model = model.to(device)
    awd = model_kind == "AWD-LSTM"
    data = batchify(corpus.train, c.batch_size).to(device)
    generator = torch.Generator().manual_seed(c.seed)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train_steps(model, data, c, args.warmup, generator, awd)
        sync(device)
        start = time.perf_counter()
        tokens = train_steps(model, data, c, args.steps, generator, awd)
        sync(device)
        seconds = time.perf_counter() - start
    warned = any(COMPACTION_WARNING in str(w.message) for w in caught)
    valid = corpus.valid[: args.valid_tokens] if args.valid_tokens else corpus.valid
    valid_ppl = perplexity(evaluate(model, valid, c.bptt, c.eval_batch_size))
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    fused = runs_cudnn_rnn(model, data, c, generator, awd) if device.type == "cuda" else False
    tok_s = tokens / seconds
    epoch_tokens = (data.size(0) - 1) * c.batch_size
    s_epoch = epoch_tokens / tok_s
    return {"config": cfg.name, "note": cfg.note, "model": model_kind, "precision": precision,
            "batch": c.batch_size, "tokens_per_s": tok_s, "s_per_epoch": s_epoch,
            "recipe_hours": projected_hours(s_epoch, c.epochs, preset.finetune_epochs),
            "peak_gib": peak, "valid_ppl": valid_ppl, "cudnn_rnn": fused, "compaction_warning": warned,
            "official_s_per_epoch": OFFICIAL_EPOCH_SECONDS.get((preset.dataset, c.batch_size)),
            "steps": args.steps, "warmup": args.warmup, "timed_tokens": tokens}


def load(name: str, args):
    if args.synthetic:  # the real vocabulary size (the softmax's cost), made-up text
        size = {"ptb": 10_000, "wikitext-2": 33_278}[name]
        n_train = 5_000 if args.quick else 200_000
        return synthetic_corpus(vocab_size=size, n_train=n_train, n_eval=n_train // 10)
    return load_corpus(name, args.data_root, download=False)


def table(rows: list[dict]) -> str:
    plain = {(r["config"], r["precision"]): r["tokens_per_s"] for r in rows if r["model"] != "AWD-LSTM"}
    lines = [f"{'config':8} {'model':8} {'prec':4} {'batch':>5} {'tok/s':>9} {'s/epoch':>8} "
             f"{'recipe h':>8} {'AWD/plain':>9} {'peak GiB':>8} {'valid ppl':>9} {'cuDNN RNN':>9} "
             f"{'compacts':>8} {'official s/epoch':>16}"]
    for r in rows:
        ratio = r["tokens_per_s"] / plain[r["config"], r["precision"]] \
            if r["model"] == "AWD-LSTM" and (r["config"], r["precision"]) in plain else None
        official = r["official_s_per_epoch"] if r["model"] == "AWD-LSTM" else None
        peak = r["peak_gib"]
        lines.append(
            f"{r['config']:8} {r['model']:8} {r['precision']:4} {r['batch']:5d} {r['tokens_per_s']:9,.0f} "
            f"{r['s_per_epoch']:8.1f} {r['recipe_hours']:8.1f} "
            f"{'' if ratio is None else f'{ratio:.3f}':>9} "
            f"{'' if peak is None else f'{peak:.2f}':>8} {r['valid_ppl']:9.1f} "
            f"{'yes' if r['cudnn_rnn'] else 'no':>9} {'yes' if r['compaction_warning'] else 'no':>8} "
            f"{'' if official is None else f'{official:g} (GP100)':>16}")
    return "\n".join(lines)


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return f"{name}, torch {torch.__version__}, CUDA {torch.version.cuda}, " \
               f"cuDNN {torch.backends.cudnn.version()}"
    return f"CPU ({platform.processor() or platform.machine()}), torch {torch.__version__}, " \
           f"{torch.get_num_threads()} threads"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:1, cpu")
    p.add_argument("--steps", type=int, default=100, help="timed steps per row (default 100)")
    p.add_argument("--warmup", type=int, default=20, help="untimed steps first (default 20)")
    p.add_argument("--valid-tokens", type=int, default=0,
                   help="score only the first N validation tokens (default 0: the whole split)")
    p.add_argument("--quick", action="store_true", help="2 timed steps of a tiny model (emb 16, "
                   "hidden 32, BPTT 10) on 500 validation tokens: proves the code runs")
    p.add_argument("--synthetic", action="store_true", help="made-up text with the real vocabulary "
                   "sizes instead of PTB and WikiText-2 (speed only; perplexities mean nothing)")
    p.add_argument("--only", nargs="+", choices=[c.name for c in configs()], help="run these only")
    p.add_argument("--data-root", help="folder holding ptb/ and wikitext-2/ (default: $AWDLIB_DATA)")
    p.add_argument("--json", help="also write the rows to this file")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.warmup, args.valid_tokens = 2, 1, args.valid_tokens or 500
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: this torch sees no CUDA GPU; give --device cpu --quick to try the code")
    hardware = describe(device)
    print(f"{hardware}; {args.warmup} warm-up + {args.steps} timed steps per row"
          + ("; QUICK MODE: a tiny model, nothing here is a measurement" if args.quick else "")
          + ("; synthetic text" if args.synthetic else ""), flush=True)
    corpora, rows, flags = {}, [], precision_flags()
    for cfg in configs():
        if args.only and cfg.name not in args.only:
            continue
        corpus = corpora.setdefault(cfg.preset.dataset, load(cfg.preset.dataset, args))
        for precision in cfg.precisions if device.type == "cuda" else ("fp32",):
            for kind in ("AWD-LSTM", "nn.LSTM"):
                row = measure(cfg, kind, precision, corpus, device, args)
                rows.append(row)
                print(f"  {cfg.name} {kind} {precision}: {row['tokens_per_s']:,.0f} tok/s, valid ppl "
                      f"{row['valid_ppl']:.1f}", flush=True)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
    restore_precision(flags)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"hardware": hardware, "quick": args.quick,
                                               "synthetic": args.synthetic, "rows": rows}, indent=1))
    print()
    print(f"{hardware}\n" + ("QUICK MODE (tiny model, 2 steps): not a measurement\n" if args.quick else "")
          + "s/epoch and recipe h are projections from the timed steps (training only); official "
          "s/epoch: the official code on a Quadro GP100 (its README)")
    print(table(rows))
    return 0 if all(math.isfinite(r["valid_ppl"]) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
