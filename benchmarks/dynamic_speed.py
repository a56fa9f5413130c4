"""How much slower is dynamic evaluation than plain evaluation at batch 1? (issue #20)

Dynamic evaluation (``awdlib.dynamic_evaluate``) runs, per segment of ``segment_len`` tokens, the
forward pass plain evaluation runs, plus a backward pass through the segment and one update of every
weight (two fused ``torch._foreach`` passes over the parameters: the decay toward the trained
weights, then the RMS-normalised gradient step). This benchmark times, in one process and alternately
(A, B, C, ... A, B, C, ...) so that load from other programs hits all alike:

- plain ``awdlib.evaluate`` at batch 1 with its default window of 70 tokens (what ``evaluate`` and
  the command line use),
- plain ``awdlib.evaluate`` at batch 1 in windows of ``segment_len`` (the same chunking as dynamic
  evaluation: the difference to the next rows is the backward pass and the update alone),
- ``awdlib.dynamic_evaluate`` at each ``--segment-lens`` (default 5, the paper's, and 20),

on the first ``--tokens`` validation tokens of the demo preset's PTB, with the demo model that ships
with the notebooks (``notebooks/weights``, the "+ NT-ASGD" run after fine-tuning) or, with
``--synthetic``, a randomly initialised model of the same size. The gradient statistics (``MS_g``)
come from ``--stat-batches`` training batches of 100 x segment length; their own speed is printed too.

Every segment allocates fresh gradient buffers (the tied 10,000 x 100 matrix's three: the decoder's
product, the embedding's dense gradient, their sum); under the C library's default allocator their
pages fault in one by one, so run it also with PyTorch's ``THP_MEM_ALLOC_ENABLE=1`` (2 MB pages,
what ``make`` exports; set before Python starts), as ``step_speed.py --thp`` does.

    PYTHONPATH=. python benchmarks/dynamic_speed.py --threads 1
    THP_MEM_ALLOC_ENABLE=1 PYTHONPATH=. python benchmarks/dynamic_speed.py --threads 1
    PYTHONPATH=. python benchmarks/dynamic_speed.py --threads 1 --device cuda --tokens 20000
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch

import awdlib
from awdlib.dynamic import AUTHORS_SETTINGS

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = REPO / "notebooks" / "weights" / "ladder-demo-NT-ASGD-seed141.safetensors"


def demo_model(synthetic: bool, vocab_size: int) -> tuple[awdlib.AWDLSTM, str]:
    if synthetic:
        torch.manual_seed(0)
        preset = awdlib.PRESETS["demo"]
        return awdlib.AWDLSTM(preset.model_config(vocab_size)).eval(), "random demo-sized model"
    from awdlib.shipped import load_weights

    return load_weights(WEIGHTS)[0], f"shipped {WEIGHTS.name}"


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(run, device: str) -> float:
    synchronize(device)
    tic = time.perf_counter()
    run()
    synchronize(device)
    return time.perf_counter() - tic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=5000, help="validation tokens scored per run")
    parser.add_argument("--segment-lens", type=int, nargs="+", default=[5, 20])
    parser.add_argument("--stat-batches", type=int, default=50,
                        help="training batches (100 x segment length) for the gradient statistics")
    parser.add_argument("--repeats", type=int, default=3, help="alternating rounds; the median")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--synthetic", action="store_true",
                        help="a random demo-sized model instead of the shipped weights")
    parser.add_argument("--data-root", help="default: $AWDLIB_DATA (it never downloads)")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: this torch ({torch.__version__}) sees no CUDA device")
    torch.set_num_threads(args.threads)
    corpus = awdlib.PRESETS["demo"].corpus(root=args.data_root, download=False)
    model, source = demo_model(args.synthetic, len(corpus.vocab))
    model.to(args.device)
    ids = corpus.valid[: args.tokens + 1]
    T = len(ids) - 1
    pages = "2 MB pages" if os.environ.get("THP_MEM_ALLOC_ENABLE") == "1" else "default allocator"
    print(f"{source}: {model.num_parameters():,} parameters; {T:,} tokens of demo PTB valid, batch 1; "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.device}, "
          f"{platform.processor() or platform.machine()}, {pages}")

    stats, stat_rates = {}, {}
    for L in args.segment_lens:
        seconds = timed(lambda: stats.__setitem__(L, awdlib.gradient_statistics(
            model, corpus.train, segment_len=L, max_batches=args.stat_batches)), args.device)
        stat_rates[L] = args.stat_batches * 100 * L / seconds
    runs = {"plain evaluate, windows of 70": lambda: awdlib.evaluate(model, ids, 70, 1)}
    for L in args.segment_lens:
        runs[f"plain evaluate, windows of {L}"] = lambda L=L: awdlib.evaluate(model, ids, L, 1)
    for L in args.segment_lens:
        lr, decay = (AUTHORS_SETTINGS[k] * L / 5 for k in ("lr", "decay"))
        runs[f"dynamic_evaluate, segments of {L}"] = lambda L=L, lr=lr, decay=decay: \
            awdlib.dynamic_evaluate(model, ids, lr, decay, L, stats[L])
    L = args.segment_lens[0]  # warm-up
    awdlib.evaluate(model, ids[:201], 70, 1)
    awdlib.dynamic_evaluate(model, ids[:201], AUTHORS_SETTINGS["lr"], 0.0, L, stats[L])
    times = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            times[name].append(timed(run, args.device))

    base = T / statistics.median(times["plain evaluate, windows of 70"])
    print(f"\n| run | tokens/s (median of {args.repeats}) | x plain (windows of 70) | spread |")
    print("| --- | ---: | ---: | ---: |")
    for name, seconds in times.items():
        rate = T / statistics.median(seconds)
        spread = (max(seconds) - min(seconds)) / statistics.median(seconds)
        print(f"| {name} | {rate:,.0f} | {rate / base:.2f} | {spread:.0%} |")
    for L, rate in stat_rates.items():
        print(f"gradient statistics, batch 100 x {L}: {rate:,.0f} training tokens/s "
              f"({args.stat_batches} batches, once)")


if __name__ == "__main__":
    main()
