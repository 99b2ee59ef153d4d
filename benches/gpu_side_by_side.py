#!/usr/bin/env python3
"""Side by side on a GPU: PyTorch (transformers, CUDA, f32) and this library on a GPU backend.

Makes the same codebert-base-shaped random checkpoint as side_by_side.py, times
PyTorch on CUDA and this library's `--backend` (wgpu, through Vulkan, by default; or
cuda) on the same GPU, inputs and token lengths in one run, checks that their logits
agree, and writes a Markdown report (default: BENCHMARKS-gpu.md).

    python3 benches/gpu_side_by_side.py --tokenizer ../shared/roberta-base-tokenizer \
        --corpus ../shared/c-corpus/nginx.jsonl

By default the library's side is `cargo run --example bench --features BACKEND`; `--bench
PATH` runs an already built `examples/bench` binary instead (for a GPU machine without
a Rust toolchain). Needs torch with CUDA and transformers; not part of the test run.
"""

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import torch
import transformers
from transformers import AutoTokenizer, RobertaForSequenceClassification

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import LENGTHS, ROOT, bench_ours, bench_torch, flops_per_pass, make_checkpoint  # noqa: E402



def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizer", required=True, help="directory with RoBERTa's vocab.json and merges.txt")
    parser.add_argument("--corpus", required=True, help="CodeXGLUE-layout jsonl of C functions")
    parser.add_argument("--functions", type=int, default=32, help="corpus functions timed for throughput")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--backend", default="wgpu", help="this library's GPU backend")
    parser.add_argument("--bench", help="a built examples/bench binary (default: cargo run --example bench)")
    parser.add_argument("--workdir", default=str(ROOT / "target" / "bench"))
    parser.add_argument("--out", default=str(ROOT / "BENCHMARKS-gpu.md"))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("no CUDA GPU visible to torch")
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)

    model_dir = make_checkpoint(workdir, args.tokenizer)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = RobertaForSequenceClassification.from_pretrained(str(model_dir)).eval().cuda()
    codes = [json.loads(line)["func"] for line in open(args.corpus)][: args.functions]

    print("timing PyTorch (CUDA) ...", file=sys.stderr)
    pt = bench_torch(model, tokenizer, codes, args.repeats, device="cuda")
    print(f"timing insecure-code-detector ({args.backend}) ...", file=sys.stderr)
    ours = bench_ours(model_dir, args.corpus, args.functions, args.repeats, ["--backend", args.backend],
                      args.backend, bench=args.bench)

    logit_diff = max(abs(x - y) for ra, rb in zip(ours["probe_logits"], pt["probe_logits"]) for x, y in zip(ra, rb))
    probs = ours["throughput"]["insecure_probabilities"]
    prob_diff = max(abs(a - b) for a, b in zip(probs, pt["probabilities"]))
    verdicts = sum((a >= 0.5) == (b >= 0.5) for a, b in zip(probs, pt["probabilities"]))
    gpu = torch.cuda.get_device_name(0)
    command = (f"python benches/gpu_side_by_side.py --tokenizer {args.tokenizer} --corpus {args.corpus} "
               f"--functions {args.functions} --repeats {args.repeats} --backend {args.backend}"
               + (f" --bench {args.bench}" if args.bench else ""))
    ofps = ours["throughput"]["functions_per_second"]
    lines = [
        f"# GPU benchmarks: the `{args.backend}` backend",
        "",
        f"Produced by `benches/gpu_side_by_side.py` in one run on one {gpu}: PyTorch (transformers,",
        f"CUDA, f32) and this library's `{args.backend}` backend (f32) on the same GPU and inputs, with a",
        "codebert-base-shaped classifier (random weights, the real RoBERTa vocabulary). Reproduce with:",
        "",
        "```sh",
        command,
        "```",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} logical CPUs, {platform.platform()}; GPU: {gpu}.",
        f"Versions: torch {torch.__version__}, transformers {transformers.__version__}; this library's `examples/bench`",
        f"(the test build's profile), backend `{ours['backend']}`.",
        "",
        "## Agreement",
        "",
        f"- max |logit difference| on the probe functions, ours vs PyTorch: {logit_diff:.2e}",
        f"- over the {len(codes)} corpus functions (batched): max |insecure probability difference| {prob_diff:.2e}, "
        f"verdicts (at 0.5) equal on {verdicts} of {len(codes)}",
        "",
        f"## Batch-1 latency (median of {args.repeats} runs, seconds, host clock around a drained GPU)",
        "",
        "| tokens | PyTorch (CUDA) | ours | ours / PyTorch | PyTorch GFLOP/s | ours GFLOP/s (a whole pass's FLOPs over its time) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for n in LENGTHS:
        o = ours["latency_seconds"][str(n)]
        p = pt["latency"][n]
        lines.append(f"| {n} | {p:.4f} | {o:.4f} | {o / p:.2f}x | {flops_per_pass(n) / p / 1e9:.0f} | "
                     f"{flops_per_pass(n) / o / 1e9:.0f} |")
    lines += [
        "",
        "Ratios are time over time: below 1x means this library is faster. GFLOP/s are a whole pass's "
        "FLOPs over each runtime's time; this library's last layer carries only `<s>` (the one token the "
        "classification head reads) past attention, so it performs a few percent fewer.",
        "",
        f"## Throughput over the first {len(codes)} nginx functions (truncated at 512 tokens)",
        "",
        "| runtime | usage | functions/s | ours relative |",
        "| --- | --- | --- | --- |",
        f"| PyTorch (CUDA) | model card (each function padded to 512) | {pt['model_card_fps']:.2f} | "
        f"{ofps / pt['model_card_fps']:.2f}x |",
        f"| PyTorch (CUDA) | length-sorted batches of 8 | {pt['sorted_batches_fps']:.2f} | "
        f"{ofps / pt['sorted_batches_fps']:.2f}x |",
        f"| ours ({args.backend}) | `predict_batch`: length-sorted, up to 8 laid end to end, no padding | {ofps:.2f} | 1.00x |",
        "",
        "Relative: ours functions/s over the row's (above 1x means this library is faster).",
        f"Load from safetensors onto the GPU: {ours['load_seconds']:.2f} s.",
        "",
    ]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
