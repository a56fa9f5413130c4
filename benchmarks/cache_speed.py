"""How fast is ``awdlib.cache_pointer_nll`` against a per-token loop? (issue #9)

The official ``pointer.py`` scores the cache one token at a time in Python: for each step it takes the
window's last-layer outputs and a one-hot matrix of the words that followed them (window x vocab),
attends, spreads the attention over the vocabulary through the one-hot rows, mixes with the softmax
and takes the target's probability. ``official_loop`` below does exactly that per token (written from
that description); ``lean_loop`` is a per-token loop without the one-hot matrix (attention summed over
the keys whose next word is the target), the strongest loop we could write. The vectorised version is
``awdlib.cache_pointer_nll``.

Inputs are synthetic (no trained model is needed for speed): hiddens ``N(0, scale^2)``, targets drawn
from a Zipf distribution over the vocabulary (so that words repeat as in text), random softmax rows.
The vectorised version gets the target log-probabilities ``(T,)`` (the full ``T x V`` softmax of
WikiText-2's validation split would be 29 GB); the loops get full softmax rows for the tokens they
score, as ``pointer.py`` does. The loops score ``--loop-tokens`` steps that all have a full window,
where the paper's and the official short-history rules agree, and their NLL is compared there.

    python benchmarks/cache_speed.py --case ptb --threads 1
    python benchmarks/cache_speed.py --case wt2 --threads 1 --loop-tokens 100

Peak memory is the process's maximum resident set (``getrusage``) measured right after the
vectorised pass, which runs first, before anything the loops allocate; on a GPU,
``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import argparse
import platform
import resource
import statistics
import time

import torch
import torch.nn.functional as F

from awdlib import cache_pointer_nll

CASES = {  # PTB: official window; WikiText-2: the official window over its whole validation split
    "ptb": dict(tokens=82_430, vocab=10_000, window=500, theta=1.0, lambdah=0.1),
    "wt2": dict(tokens=217_646, vocab=33_278, window=3785, theta=0.662, lambdah=0.1279),
}


def rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux reports KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def official_loop(probs, hiddens, targets, start, window, theta, lambdah):
    """Per token, as pointer.py: one-hot history (window x vocab), attention, mix, -log p[target]."""
    lo = start - window
    one_hot = F.one_hot(targets[lo : start + len(probs)], probs.size(1)).to(probs.dtype)
    nll = []
    for k in range(len(probs)):
        t = start + k
        history, next_words = hiddens[t - window : t], one_hot[t - window - lo : t - lo]
        attention = torch.softmax(theta * torch.mv(history, hiddens[t]), dim=0).view(-1, 1)
        p_cache = (attention.expand_as(next_words) * next_words).sum(0)
        p = lambdah * p_cache + (1 - lambdah) * probs[k]
        nll.append(-torch.log(p[targets[t]]).item())
    return torch.tensor(nll, dtype=torch.float64)


def lean_loop(probs, hiddens, targets, start, window, theta, lambdah):
    """Per token, without the one-hot matrix: attention summed over keys followed by the target."""
    nll = []
    for k in range(len(probs)):
        t = start + k
        attention = torch.softmax(theta * torch.mv(hiddens[t - window : t], hiddens[t]), dim=0)
        p_cache = attention[targets[t - window : t] == targets[t]].sum()
        nll.append(-torch.log(lambdah * p_cache + (1 - lambdah) * probs[k, targets[t]]).item())
    return torch.tensor(nll, dtype=torch.float64)


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", choices=sorted(CASES), default="ptb")
    parser.add_argument("--tokens", type=int, help="split length (default: the case's)")
    parser.add_argument("--window", type=int, help="default: the case's official window")
    parser.add_argument("--hidden", type=int, default=400)
    parser.add_argument("--loop-tokens", type=int, default=2000, help="steps the loops score")
    parser.add_argument("--official-tokens", type=int,
                        help="steps the one-hot loop scores (default: --loop-tokens; it is slow)")
    parser.add_argument("--no-official-loop", action="store_true", help="skip the one-hot loop")
    parser.add_argument("--scale", type=float, default=0.3, help="std of the synthetic hiddens")
    parser.add_argument("--block-size", type=int, help="default: the library's choice")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per method; the median")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    case = dict(CASES[args.case])
    T, V, H = args.tokens or case["tokens"], case["vocab"], args.hidden
    window, theta, lambdah = args.window or case["window"], case["theta"], case["lambdah"]
    n = min(args.loop_tokens, T - window)

    g = torch.Generator().manual_seed(args.seed)
    hiddens = args.scale * torch.randn(T, H, generator=g)
    zipf = 1.0 / torch.arange(1, V + 1, dtype=torch.float64)
    targets = torch.multinomial(zipf / zipf.sum(), T, replacement=True, generator=g)
    target_log_probs = -torch.rand(T, generator=g) * 12  # the vectorised version needs only these
    start = T - n  # the loops score the last n steps: all have a full window
    loop_log_probs = torch.log_softmax(2 * torch.randn(n, V, generator=g), dim=1)
    target_log_probs[start:] = loop_log_probs.gather(1, targets[start:].unsqueeze(1)).squeeze(1)
    device = args.device
    hiddens, targets, target_log_probs = (x.to(device) for x in (hiddens, targets, target_log_probs))

    print(f"case {args.case}: {T:,} tokens, vocab {V:,}, hidden {H}, window {window}, theta {theta}, "
          f"lambdah {lambdah}; torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
          f"{device}, {platform.processor() or platform.machine()}")

    # vectorised, first: its memory peak is then the process's
    before = current_rss_mb()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    cache_pointer_nll(target_log_probs[:2000], hiddens[:2000], targets[:2000], window, theta,
                      lambdah, block_size=args.block_size)  # warm-up
    times = []
    for _ in range(args.repeats):
        synchronize(device)
        tic = time.perf_counter()
        nll = cache_pointer_nll(target_log_probs, hiddens, targets, window, theta, lambdah,
                                block_size=args.block_size)
        synchronize(device)
        times.append(time.perf_counter() - tic)
    vec_seconds = statistics.median(times)
    peak = (f"{torch.cuda.max_memory_allocated() / 2**20:,.0f} MB on the GPU"
            if device.startswith("cuda") else
            f"{rss_mb():,.0f} MB peak RSS ({before:,.0f} MB before: inputs and torch)")
    vec_rate = T / vec_seconds
    nll = nll.double().cpu()
    print(f"vectorised: mean NLL {nll.mean():.6f} over {T:,} tokens; memory: {peak}")
    print(f"\n| method | tokens scored | seconds (median of {args.repeats}) | tokens/s "
          f"| vectorised speed-up | max abs NLL diff |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    print(f"| vectorised (awdlib) | {T:,} | {vec_seconds:.2f} | {vec_rate:,.0f} | | |", flush=True)

    probs = loop_log_probs.exp().to(device)
    loops = [("lean per-token loop", lean_loop, n)]
    if not args.no_official_loop:
        loops.insert(0, ("official-style loop (one-hot)", official_loop,
                         min(n, args.official_tokens or n)))
    for name, loop, count in loops:
        loop(probs[:2], hiddens, targets, start, window, theta, lambdah)  # warm-up
        times = []
        for _ in range(args.repeats):
            synchronize(device)
            tic = time.perf_counter()
            loop_nll = loop(probs[:count], hiddens, targets, start, window, theta, lambdah)
            synchronize(device)
            times.append(time.perf_counter() - tic)
        rate = count / statistics.median(times)
        diff = (loop_nll - nll[start : start + count]).abs().max().item()
        print(f"| {name} | {count:,} | {statistics.median(times):.2f} | {rate:,.3g} | "
              f"{vec_rate / rate:,.0f}x | {diff:.1e} |", flush=True)

if __name__ == "__main__":
    main()
