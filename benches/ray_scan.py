#!/usr/bin/env python3
"""The distribution-scale scan on Ray (`insecure_code_detector.ray.scan_trees`) against
one `icd scan` process, on the same machine and tree, in one run; and, on paper, what a
corpus of the size of Debian's C and C++ sources would cost.

The tree: the corpus's first N functions in files of 20 under `src/`, and `--copies - 1`
vendored copies of those files under `vendor/copyK/` (byte-identical, as vendored
libraries are). Timed end to end, the model's load included:
- `icd scan . --format jsonl --threshold 0`, a fresh process with an empty prediction
  cache (what a first scan costs);
- `scan_trees` on a local Ray with the machine's CPUs already started: one classifying
  actor per CPU with one library thread each (actor start and each actor's load
  included), each distinct text classified once.
Both must report the same functions with the same probabilities (within 1e-4: other
batches round f32 sums differently).

    cargo build --features ndarray,wgpu --all-targets
    target/debug/examples/random_checkpoint target/bench/codebert-base-random-rs
    pip install "ray[data]"
    python3 benches/ray_scan.py --corpus ../shared/c-corpus/nginx.jsonl \\
        --model target/bench/codebert-base-random-rs --update BENCHMARKS.md

The paper estimate takes the Ray path's measured model calls per second on this machine
as one node's, and a corpus size given by `--corpus-functions` (an input, not a
measurement: see the printed assumptions) at several shares of duplicate texts.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bindings" / "python"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import ray  # noqa: E402

from common import cpu_model, update_section  # noqa: E402
from insecure_code_detector import library_path  # noqa: E402
from insecure_code_detector.ray import scan_trees  # noqa: E402

HEADING = "## A distribution-scale scan on Ray against one process"


def make_tree(root: Path, codes, copies: int) -> None:
    for copy in range(copies):
        directory = root / ("src" if copy == 0 else f"vendor/copy{copy}")
        directory.mkdir(parents=True)
        for i in range(0, len(codes), 20):
            (directory / f"part{i // 20:03d}.c").write_text("\n\n".join(codes[i:i + 20]) + "\n")


def icd_scan(icd: str, model: str, tree: Path, cache: Path):
    env = dict(os.environ, ICD_CACHE_DIR=str(cache))
    started = time.perf_counter()
    done = subprocess.run([icd, "--model", model, "scan", ".", "--format", "jsonl", "--threshold", "0"], cwd=tree,
                          env=env, capture_output=True)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1):
        sys.exit(f"icd failed ({done.returncode}): {done.stderr.decode(errors='replace')}")
    return seconds, [json.loads(line) for line in done.stdout.decode().splitlines()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", required=True, help="jsonl with a `func` field a line (nginx.jsonl)")
    parser.add_argument("--model", default=str(ROOT / "target" / "bench" / "codebert-base-random-rs"))
    parser.add_argument("--icd", default=str(ROOT / "target" / "debug" / "icd"))
    parser.add_argument("--functions", type=int, default=120, help="the corpus's first N functions")
    parser.add_argument("--copies", type=int, default=3, help="the tree's copies of them (1: no vendored copies)")
    parser.add_argument("--corpus-functions", type=float, default=30e6,
                        help="functions of the corpus estimated on paper (default: the Debian assumption printed)")
    parser.add_argument("--update", help="write the section into this markdown file")
    args = parser.parse_args()

    codes = [json.loads(line)["func"] for line in Path(args.corpus).read_text().splitlines() if line.strip()]
    codes = codes[: args.functions]
    model = str(Path(args.model).resolve())
    icd = str(Path(args.icd).resolve())
    cpus = os.cpu_count()
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        tree = work / "tree"
        make_tree(tree, codes, args.copies)
        one_s, one = icd_scan(icd, model, tree, work / "cache")
        package = str(ROOT / "bindings" / "python")
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": package, "ICD_LIBRARY": str(library_path())}})
        started = time.perf_counter()
        summary = scan_trees([tree], model, work / "out", concurrency=cpus, num_cpus=1, threads=1,
                             files_per_task=4)
        ray_s = time.perf_counter() - started
        import pyarrow.parquet as pq

        rows = pq.read_table(work / "out").to_pylist()
        ray.shutdown()
        # The same functions, the same probabilities.
        by_place = {(str(Path(r["file"]).relative_to(tree)), r["start_line"]): r["insecure_probability"] for r in rows}
        theirs = {(r["file"].removeprefix("./"), r["start_line"]): r["insecure_probability"] for r in one}
        if sorted(by_place) != sorted(theirs):
            sys.exit("the Ray scan and icd scan found different functions")
        difference = max(abs(by_place[k] - theirs[k]) for k in theirs)
        if difference > 1e-4:
            sys.exit(f"probabilities differ by {difference}")

    functions = summary["functions"]
    one_fps = functions / one_s
    ray_fps = functions / ray_s
    calls_per_s = summary["model_calls"] / ray_s
    print(f"icd scan: {one_s:.2f} s; Ray: {ray_s:.2f} s; {summary}")

    cpu = cpu_model()
    version = subprocess.run([icd, "--version"], capture_output=True, text=True).stdout
    kernels = next((line.split(":", 1)[1].strip() for line in version.splitlines()
                    if line.startswith("cpu backends run:")), "unknown")
    f32_kernel = next((part.strip() for part in kernels.split(",") if part.strip().startswith("f32")), kernels)
    rows_paper = []
    for duplicate_share in (0.0, 0.25, 0.5):
        distinct = args.corpus_functions * (1 - duplicate_share)
        hours = [distinct / (calls_per_s * nodes) / 3600 for nodes in (1, 16, 256)]
        rows_paper.append(f"| {duplicate_share:.0%} | {distinct / 1e6:.1f} M | "
                          + " | ".join(f"{h:,.1f}" for h in hours) + " |")
    section = "\n".join([
        HEADING,
        "",
        f"A tree of the first {len(codes)} nginx functions in files of 20, and {args.copies - 1} vendored copies of",
        f"those files ({functions} function occurrences, {summary['distinct_functions']} distinct texts), scanned",
        "by one `icd scan` process (an empty prediction cache) and by `scan_trees` on a local Ray with one",
        "actor per CPU and one library thread per actor (the actors' start and model loads included, Ray's",
        f"own start not), end to end, on the codebert-base-shaped checkpoint with random weights, on {cpu}",
        f"({cpus} logical CPUs; `icd --version`: {f32_kernel}), with the test build's profile, in one run:",
        "",
        "```sh",
        "cargo build --features ndarray,wgpu --all-targets",
        "target/debug/examples/random_checkpoint target/bench/codebert-base-random-rs",
        "python3 benches/ray_scan.py --corpus ../shared/c-corpus/nginx.jsonl \\",
        f"    --functions {args.functions} --copies {args.copies} --model target/bench/codebert-base-random-rs "
        "--update BENCHMARKS.md",
        "```",
        "",
        "| way | seconds | functions/s | model calls |",
        "| --- | --- | --- | --- |",
        f"| one `icd scan` process, {cpus} threads | {one_s:.2f} | {one_fps:.2f} | {functions} |",
        f"| Ray `scan_trees`, {cpus} actors of 1 thread | {ray_s:.2f} | {ray_fps:.2f} ({ray_fps / one_fps:.2f}x) | "
        f"{summary['model_calls']} |",
        "",
        f"Both found the same {functions} functions; their probabilities differ by at most {difference:.1e}. The",
        "Ray path's lead here is the duplicates it classifies once; on a tree without copies it pays Ray's",
        "actor start and one model load per actor (see \"Ray against one process\").",
        "",
        f"On paper, for a corpus of {args.corpus_functions / 1e6:.0f} million C and C++ functions (an assumption",
        "of the order of Debian's sources: some 600 million lines of C and C++ at about 20 lines a",
        "function; pass `--corpus-functions` for another), at this run's rate of",
        f"{calls_per_s:.2f} model calls per second per node like this one, the hours of classification:",
        "",
        "| duplicate texts | model calls | 1 node | 16 nodes | 256 nodes |",
        "| --- | --- | --- | --- | --- |",
        *rows_paper,
        "",
        f"Of the Ray run, the read step (listing, reading, parsing, keying) took {summary['read_seconds']:.2f} s and the",
        f"classify step {summary['classify_seconds']:.2f} s. The share of duplicate texts in a distribution is not",
        "measured here, nor a GPU actor's rate.",
        "",
    ])
    print()
    print(section)
    if args.update:
        update_section(args.update, HEADING, section)


if __name__ == "__main__":
    main()
