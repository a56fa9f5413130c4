"""How long does one weight-drop mask take to draw? Three Bernoulli(1 - p) samplers, one paper-size W_hh.

At the paper's size the three weight-dropped ``W_hh`` hold 11.2 million weights and each needs a fresh
mask at every training step. This times, for one ``W_hh`` of 4 x 1150 by 1150, in one process:
``F.dropout`` (PyTorch's CPU ``bernoulli_`` draws a 64-bit float per entry), ``rand_like(W) >= p``, and
``awdlib.dropconnect_mask`` (four 16-bit uniform integers out of each random 64-bit number), and prints
each sampler's drop rate and its median time per mask relative to ``F.dropout``.

    python benchmarks/mask_sampling.py [--p 0.5] [--repeats 20] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import awdlib


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--p", type=float, default=0.5, help="drop rate (default 0.5, the paper's)")
    parser.add_argument("--repeats", type=int, default=20, help="masks drawn per sampler")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    weights = torch.ones(4 * 1150, 1150)
    samplers = {"F.dropout (bernoulli_)": lambda: F.dropout(weights, args.p, training=True),
                "rand_like(W) >= p": lambda: (torch.rand_like(weights) >= args.p).float(),
                "awdlib.dropconnect_mask": lambda: awdlib.dropconnect_mask(weights, args.p)}
    times, rates = {name: [] for name in samplers}, {}
    for _ in range(args.repeats):  # interleaved, so that other load hits every sampler alike
        for name, draw in samplers.items():
            start = time.perf_counter()
            mask = draw()
            times[name].append(time.perf_counter() - start)
            rates[name] = (mask == 0).float().mean().item()
    baseline = statistics.median(times["F.dropout (bernoulli_)"])
    print(f"one W_hh mask of {weights.numel():,} weights, p = {args.p}, {torch.get_num_threads()} "
          f"thread(s), median of {args.repeats}")
    for name in samplers:
        median = statistics.median(times[name])
        print(f"{name:>24}: dropped {rates[name]:.2%}, {median * 1e3:6.1f} ms per mask, "
              f"{baseline / median:4.1f}x F.dropout's speed")


if __name__ == "__main__":
    main()
