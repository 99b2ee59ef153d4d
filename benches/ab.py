#!/usr/bin/env python3
"""A/B: two builds of this library's `examples/bench`, timed in turns in one run.

Both builds load the same model as `--serve` processes, then answer the same requests
round by round, in an order rotated from round to round (as in side_by_side.py), so
that a slow spell of a shared machine falls on both alike. Each round's time of B over
A's is one paired ratio; the report gives their median and quartiles, below 1 where B
is faster.

    cp target/debug/examples/bench /tmp/bench-before    # then change the code
    cargo build --features ndarray,wgpu --example bench
    /tmp/bench/bin/python benches/ab.py /tmp/bench-before target/debug/examples/bench \\
        --corpus ../shared/c-corpus/nginx.jsonl --lengths 128,512 --throughput --rounds 10

Options after `--` go to both builds (`-- --precision int8`); `--b-option` adds one to
B alone, so that one build can be timed against itself with and without an option
(`--b-option=--explain`: what attribution costs). The model is the one side_by_side.py
makes (--model to name another).
"""

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, OursServer, interleave  # noqa: E402


def report(name, a, b):
    """One line: each build's median seconds and the paired ratios' median and quartiles."""
    ratios = sorted(y / x for x, y in zip(a, b))
    q1, q3 = ratios[len(ratios) // 4], ratios[3 * len(ratios) // 4]
    print(f"{name}: A {statistics.median(a):.4f} s, B {statistics.median(b):.4f} s; "
          f"B/A paired median {statistics.median(ratios):.3f} (quartiles {q1:.3f} to {q3:.3f})",
          flush=True)


def corpus_seconds(server):
    """Seconds of one pass over the corpus, so that its ratio reads as the latencies' do."""
    functions_per_second = server.throughput()
    return len(server.probabilities) / functions_per_second


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="examples/bench options for both builds follow --")
    parser.add_argument("a", help="the baseline build of examples/bench")
    parser.add_argument("b", help="the build compared with it")
    parser.add_argument("--model", default=str(ROOT / "target" / "bench" / "codebert-base-random"))
    parser.add_argument("--corpus", required=True, help="nginx.jsonl")
    parser.add_argument("--functions", type=int, default=32)
    parser.add_argument("--lengths", default="128,512", help="batch-1 token counts, comma-separated")
    parser.add_argument("--throughput", action="store_true", help="also time passes over the corpus")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--b-option", action="append", default=[], help="an examples/bench option for B alone")
    # What follows `--` goes to both builds, untouched by this parser.
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    options = argv[split + 1:]
    if not Path(args.model, "config.json").exists():
        sys.exit(f"{args.model} has no checkpoint: run benches/side_by_side.py once, or pass --model")

    servers = {name: OursServer(binary, args.model, args.corpus, args.functions, options + extra)
               for name, binary, extra in (("A", args.a, []), ("B", args.b, args.b_option))}
    requests = [(f"{n} tokens", lambda s, n=int(n): s.latency(n)) for n in args.lengths.split(",") if n]
    if args.throughput:
        requests.append(("corpus", corpus_seconds))
    for name, request in requests:
        for server in servers.values():
            request(server)  # warm-up, not counted
        times = interleave({k: (lambda s=s: request(s)) for k, s in servers.items()}, args.rounds)
        report(name, times["A"], times["B"])
    for server in servers.values():
        server.finish()


if __name__ == "__main__":
    main()
