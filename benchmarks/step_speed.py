"""How much do the AWD-LSTM's regularisers cost per training step? (issue #3)

Times one full training step -- forward, cross-entropy, backward, gradient clipping at 0.25, SGD step --
of ``awdlib.AWDLSTM`` in train mode with every dropout of the paper switched on (weight drop 0.5, locked
dropout 0.4/0.3/0.4, embedding dropout 0.1), against a plain stack of single-layer ``nn.LSTM``s of the
same sizes with the same tied embedding/decoder and no dropout at all. Both run in this process,
interleaved (A, B, A, B, ...), so that load from elsewhere hits both alike; the figures are medians.

    python benchmarks/step_speed.py --threads 2 --repeats 10 --sizes 100x200 400x1150

Prints training tokens per second (from the median round) for both and their ratio (AWD-LSTM / plain;
1.0 = no overhead), the same ratio for each model's fastest round (less sensitive to other load on the
machine), the spread of the rounds, and the median number of minor page faults per step (fresh memory
the C allocator had to map in; the AWD-LSTM's masks and dropped matrices are new tensors every step).

``--thp`` repeats the measurement in a second process with ``THP_MEM_ALLOC_ENABLE=1``, PyTorch's
switch for backing CPU tensors of 2 MB or more with transparent huge pages: far fewer page faults for
both models. The switch is read when torch allocates its first tensor, hence the separate process.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # awdlib from this checkout

from awdlib import AWDLSTM, AWDLSTMConfig  # noqa: E402
from benchmarks.reference import PlainLSTMLM  # noqa: E402


def make_step(model: nn.Module, batch_size: int, lr: float = 30.0, clip: float = 0.25):
    """A closure running one training step of ``model`` on the tokens it is given."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    model.train()

    def step(inputs: torch.Tensor, targets: torch.Tensor) -> None:
        optimizer.zero_grad()
        logits = model(inputs, model.init_hidden(batch_size)).logits
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()

    return step


def measure(emb: int, hidden: int, vocab: int, batch: int, bptt: int, repeats: int,
            steps_per_repeat: int, warmup: int) -> dict:
    """Median seconds per step for the AWD-LSTM and the plain stack, timed in alternation."""
    torch.manual_seed(0)
    awd = AWDLSTM(AWDLSTMConfig(vocab, emb, hidden))  # the paper's dropouts are the defaults
    plain = PlainLSTMLM(vocab, emb, hidden)
    steps = {"awd": make_step(awd, batch), "plain": make_step(plain, batch)}
    data = torch.randint(0, vocab, (bptt + 1, batch))
    inputs, targets = data[:-1], data[1:]
    for _ in range(warmup):
        for step in steps.values():
            step(inputs, targets)
    times = {name: [] for name in steps}
    faults = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            start = time.perf_counter()
            for _ in range(steps_per_repeat):
                step(inputs, targets)
            times[name].append((time.perf_counter() - start) / steps_per_repeat)
            faults[name].append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before)
                                / steps_per_repeat)
    tokens = batch * bptt
    result = {"size": f"{emb}x{hidden}", "params": awd.num_parameters()}
    for name, ts in times.items():
        result[f"{name}_tok_s"] = tokens / statistics.median(ts)
        result[f"{name}_best_tok_s"] = tokens / min(ts)
        result[f"{name}_spread"] = (max(ts) - min(ts)) / statistics.median(ts)
        result[f"{name}_faults"] = statistics.median(faults[name])
    result["ratio"] = result["awd_tok_s"] / result["plain_tok_s"]
    result["best_ratio"] = result["awd_best_tok_s"] / result["plain_best_tok_s"]
    return result


def parse_size(text: str) -> tuple[int, int]:
    emb, _, hidden = text.partition("x")
    return int(emb), int(hidden)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--repeats", type=int, default=10,
                        help="timed rounds per model, alternating (default 10)")
    parser.add_argument("--steps", type=int, default=1, help="training steps per timed round")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per model first")
    parser.add_argument("--sizes", nargs="+", default=["100x200", "400x1150"],
                        help="EMBxHIDDEN sizes of the 3-layer model (default 100x200 400x1150)")
    parser.add_argument("--vocab", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--bptt", type=int, default=70)
    parser.add_argument("--thp", action="store_true",
                        help="then measure again in a fresh process with THP_MEM_ALLOC_ENABLE=1")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    pages = "2 MB pages (THP_MEM_ALLOC_ENABLE=1)" if os.environ.get("THP_MEM_ALLOC_ENABLE") == "1" \
        else "default allocator"
    print(f"torch {torch.__version__}, {args.threads} thread(s), {pages}, vocab {args.vocab}, "
          f"batch {args.batch}, BPTT {args.bptt}, {args.repeats} alternating rounds x {args.steps} "
          f"step(s), medians")
    print(f"{'emb x hidden':>12} {'params':>11} {'AWD-LSTM tok/s':>15} {'plain tok/s':>12} "
          f"{'ratio':>6}  {'ratio of fastest rounds':>23}  {'page faults/step':>17}  "
          f"spread (max-min)/median")
    for size in args.sizes:
        emb, hidden = parse_size(size)
        r = measure(emb, hidden, args.vocab, args.batch, args.bptt, args.repeats, args.steps,
                    args.warmup)
        print(f"{r['size']:>12} {r['params']:>11,} {r['awd_tok_s']:>15,.0f} {r['plain_tok_s']:>12,.0f} "
              f"{r['ratio']:>6.3f}  {r['best_ratio']:>23.3f}  "
              f"{r['awd_faults']:>8,.0f}/{r['plain_faults']:<8,.0f}  awd {r['awd_spread']:.0%}, "
              f"plain {r['plain_spread']:.0%}",
              flush=True)
    if args.thp:
        rest = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--thp"]
        subprocess.run([sys.executable, __file__, *rest], check=True,
                       env={**os.environ, "THP_MEM_ALLOC_ENABLE": "1"})


if __name__ == "__main__":
    main()
