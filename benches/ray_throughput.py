#!/usr/bin/env python3
"""The Ray path against single-process `predict_batch` on the same machine, in one run.

Each round times, in an order that alternates from round to round, both ways of
classifying the corpus's first N functions, end to end (the model's load included):
- one process: `Detector(model).predict_batch(functions)` on all cores;
- Ray: a local Ray with the machine's CPUs, `predict()` with one actor per CPU and one
  library thread per actor (actor start and each actor's load included).
The report gives each one's median over rounds, in functions/s, and the largest
difference between the two's logits (batches of other sizes round the f32 sums
differently, by a few units of the last place; it must stay within the 1e-4 of the
fidelity promise).

    cargo build --features ndarray,wgpu --all-targets
    target/debug/examples/random_checkpoint target/bench/codebert-base-random-rs
    pip install "ray[data]"
    python3 benches/ray_throughput.py --corpus ../shared/c-corpus/nginx.jsonl \\
        --model target/bench/codebert-base-random-rs --functions 96 --rounds 3
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bindings" / "python"))

import ray  # noqa: E402

from insecure_code_detector import Detector, library_path  # noqa: E402
from insecure_code_detector.ray import predict  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--model", default=str(ROOT / "target" / "bench" / "codebert-base-random-rs"))
    parser.add_argument("--functions", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8, help="rows per Ray batch")
    args = parser.parse_args()

    codes = [json.loads(line)["func"] for line in Path(args.corpus).read_text().splitlines() if line.strip()]
    codes = codes[: args.functions]
    cpus = os.cpu_count()
    package = str(ROOT / "bindings" / "python")
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": package, "ICD_LIBRARY": str(library_path())}})
    rows = [{"idx": i, "func": c} for i, c in enumerate(codes)]

    def single():
        with Detector(args.model) as detector:
            return [p.logits for p in detector.predict_batch(codes)]

    def on_ray():
        scored = predict(ray.data.from_items(rows), args.model, concurrency=cpus, num_cpus=1, threads=1,
                         batch_size=args.batch_size).take_all()
        return [list(r["logits"]) for r in sorted(scored, key=lambda r: r["idx"])]

    times = {"single": [], "ray": []}
    results = {}
    for round_ in range(args.rounds):
        order = ["single", "ray"] if round_ % 2 == 0 else ["ray", "single"]
        for name in order:
            started = time.perf_counter()
            results[name] = (single if name == "single" else on_ray)()
            times[name].append(time.perf_counter() - started)
            print(f"round {round_ + 1}: {name} {times[name][-1]:.2f} s", flush=True)
    ray.shutdown()
    difference = max(abs(a - b) for x, y in zip(results["single"], results["ray"]) for a, b in zip(x, y))
    single_fps = len(codes) / statistics.median(times["single"])
    ray_fps = len(codes) / statistics.median(times["ray"])
    print(f"\n{len(codes)} functions, {cpus} CPUs, {args.rounds} rounds; "
          f"max |logit difference| between the two: {difference:.2e}")
    print("| way | functions/s (median, load included) | relative to one process |")
    print("| --- | --- | --- |")
    print(f"| one process, `predict_batch` on {cpus} threads | {single_fps:.2f} | 1.00x |")
    print(f"| Ray, {cpus} actors of 1 CPU and 1 thread, batches of {args.batch_size} | {ray_fps:.2f} | "
          f"{ray_fps / single_fps:.2f}x |")
    if difference > 1e-4:
        sys.exit("the Ray path's logits are further than 1e-4 from predict_batch's")


if __name__ == "__main__":
    main()
