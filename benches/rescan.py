#!/usr/bin/env python3
"""What the prediction cache gives a rescan: `icd scan` of a tree twice, with one cache.

The corpus (CodeXGLUE-style jsonl) is written out as a source tree, one function a file;
`icd scan` runs on it with an empty cache (the first scan: every function classified),
then again on the unchanged tree (the second: every result from the cache), each a fresh
process timed from start to exit. The two reports must be identical byte for byte, and the
second must say that it did not load the model.

    cargo build --features ndarray,wgpu --all-targets
    target/debug/examples/random_checkpoint target/bench/codebert-base-random-rs
    python3 benches/rescan.py --corpus ../shared/c-corpus/nginx.jsonl \\
        --model target/bench/codebert-base-random-rs --update BENCHMARKS.md

`--update FILE` replaces the section this script wrote last time in FILE (or appends it
after the sections that benches/side_by_side.py keeps).
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import update_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
HEADING = "## A rescan with the prediction cache"


def scan(icd, model, tree, cache, extra):
    """One `icd scan` in a fresh process: (seconds, report bytes, stderr text)."""
    env = dict(os.environ, ICD_CACHE_DIR=str(cache))
    env.pop("ICD_CACHE_MAX_ENTRIES", None)
    command = [str(Path(icd).resolve()), "--model", str(Path(model).resolve()), "scan", ".",
               "--format", "jsonl", *extra]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1):
        sys.exit(f"icd failed ({done.returncode}): {done.stderr.decode(errors='replace')}")
    return seconds, done.stdout, done.stderr.decode(errors="replace")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", required=True, help="jsonl with a `func` field a line (nginx.jsonl)")
    parser.add_argument("--model", default=str(ROOT / "target" / "bench" / "codebert-base-random-rs"))
    parser.add_argument("--icd", default=str(ROOT / "target" / "debug" / "icd"))
    parser.add_argument("--functions", type=int, default=600, help="the corpus's first N functions")
    parser.add_argument("--update", help="write the section into this markdown file")
    parser.add_argument("icd_options", nargs="*", help="after --: more `icd scan` options (--precision int8)")
    args = parser.parse_args()

    rows = [json.loads(line) for line in Path(args.corpus).read_text().splitlines() if line.strip()]
    rows = rows[: args.functions]
    with tempfile.TemporaryDirectory() as work:
        tree = Path(work) / "tree"
        tree.mkdir()
        for i, row in enumerate(rows):
            (tree / f"f{i:04}.c").write_text(row["func"] + "\n")
        cache = Path(work) / "cache"
        first_s, first, first_err = scan(args.icd, args.model, tree, cache, args.icd_options)
        second_s, second, second_err = scan(args.icd, args.model, tree, cache, args.icd_options)

    found = len(first.splitlines())
    identical = first == second
    not_loaded = "the model was not loaded" in second_err
    cached_line = next((line for line in second_err.splitlines() if "prediction cache" in line), "")
    print(f"first scan: {first_s:.2f} s ({found} functions, {found / first_s:.2f} functions/s)")
    print(f"second scan: {second_s:.2f} s; {cached_line.removeprefix('icd: ')}")
    print(f"speed-up: {first_s / second_s:.1f}x; reports identical: {identical}; model not loaded: {not_loaded}")
    if not identical or not not_loaded:
        sys.exit("the second scan did not come whole from the cache")

    command = " ".join(["python3 benches/rescan.py --corpus ../shared/c-corpus/nginx.jsonl",
                        f"--functions {args.functions}", "--model target/bench/codebert-base-random-rs",
                        "--update BENCHMARKS.md"] + (["--", *args.icd_options] if args.icd_options else []))
    section = "\n".join([
        HEADING,
        "",
        f"`icd scan` of the first {len(rows)} nginx functions written out as a tree of files, one",
        "function a file, twice with one cache directory: first with the cache empty, then on the",
        "unchanged tree. Each is a fresh process, timed from start to exit, on the codebert-base-shaped",
        f"checkpoint with random weights (`examples/random_checkpoint`), on this machine ({platform.machine()},",
        f"{os.cpu_count()} logical CPUs), with `icd` from the test build's profile:",
        "",
        "```sh",
        "cargo build --features ndarray,wgpu --all-targets",
        "target/debug/examples/random_checkpoint target/bench/codebert-base-random-rs",
        command,
        "```",
        "",
        "| scan | seconds | functions/s |",
        "| --- | --- | --- |",
        f"| first (cache empty: {found} functions classified) | {first_s:.2f} | {found / first_s:.2f} |",
        f"| second (unchanged tree: every result from the cache) | {second_s:.2f} | {found / second_s:.0f} |",
        "",
        f"The second scan took {second_s / first_s:.4f} of the first's time ({first_s / second_s:.0f}x faster),",
        "did not load the model, and wrote the same report byte for byte. What it spends is finding the",
        "functions (tree-sitter), hashing each function's text and looking the keys up; the weight file's",
        "digest is remembered by its path, size, times and inode, not computed again.",
        "",
    ])
    print()
    print(section)
    if args.update:
        update_section(args.update, HEADING, section)

if __name__ == "__main__":
    main()
