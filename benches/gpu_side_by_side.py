#!/usr/bin/env python3
"""Side by side on a GPU: PyTorch (transformers, CUDA, f32) and this library on a GPU backend.

Makes the same codebert-base-shaped random checkpoint as side_by_side.py, times
PyTorch on CUDA and this library's `--backend` (wgpu, through Vulkan, by default; or
cuda) on the same GPU, inputs and token lengths in one run, in each of `--precisions`
(f32 by default; f32,tf32 shows what the cuda backend's TF32 products give), checks
that their logits agree, and writes a Markdown report (default: BENCHMARKS-gpu.md). As
in side_by_side.py the two runtimes' runs are interleaved round by round and each
figure is a median over rounds; the first corpus pass of each is reported apart, as this
library's GPU backends compile a kernel the first time they meet each new shape.
Then, over the corpus's first `--cold-functions` functions, whole processes from start
to last prediction (`cold_start.py`): `icd classify` cold, again on the caches the
first left, and cold with `--warm-up`, against PyTorch's cold process in f32 and with
bf16 autocast.

    python3 benches/gpu_side_by_side.py --tokenizer ../shared/roberta-base-tokenizer \
        --corpus ../shared/c-corpus/nginx.jsonl

By default the library's side is `cargo run --example bench --features BACKEND`; `--bench
PATH` runs an already built `examples/bench` binary instead (for a GPU machine without
a Rust toolchain); likewise `--icd PATH` for the cold processes (default: `cargo build
--bin icd --features BACKEND`). Needs torch with CUDA and transformers; not part of the
test run.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

import torch
import transformers
from transformers import AutoTokenizer, RobertaForSequenceClassification

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cold_start  # noqa: E402
from common import (LENGTHS, ROOT, OursServer, TorchRuns, bench_binary, flops_per_pass, interleave,  # noqa: E402
                    interleaved_latencies, make_checkpoint)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizer", required=True, help="directory with RoBERTa's vocab.json and merges.txt")
    parser.add_argument("--corpus", required=True, help="CodeXGLUE-layout jsonl of C functions")
    parser.add_argument("--functions", type=int, default=32, help="corpus functions timed for throughput")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--backend", default="wgpu", help="this library's GPU backend")
    parser.add_argument("--precisions", default="f32", help="this library's precisions to time, comma-separated")
    parser.add_argument("--bench", help="a built examples/bench binary (default: cargo run --example bench)")
    parser.add_argument("--cold-functions", type=int, default=400, help="corpus functions of the cold processes")
    parser.add_argument("--icd", help="a built icd binary for the cold processes (default: cargo build --bin icd)")
    parser.add_argument("--workdir", default=str(ROOT / "target" / "bench"))
    parser.add_argument("--out", default=str(ROOT / "BENCHMARKS-gpu.md"))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("no CUDA GPU visible to torch")
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    precisions = args.precisions.split(",")

    model_dir = make_checkpoint(workdir, args.tokenizer)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = RobertaForSequenceClassification.from_pretrained(str(model_dir)).eval().cuda()
    codes = [json.loads(line)["func"] for line in open(args.corpus)][: args.functions]

    bench = args.bench or bench_binary(args.backend)
    servers = {p: OursServer(bench, model_dir, args.corpus, args.functions, ["--backend", args.backend, "--precision", p])
               for p in precisions}
    torch_runs = TorchRuns(model, tokenizer, codes, device="cuda")
    def latency_jobs(n):
        jobs = {"PyTorch": lambda: torch_runs.latency(n)}
        jobs.update({p: (lambda s=server: s.latency(n)) for p, server in servers.items()})
        return jobs

    latency = {n: {name: statistics.median(times) for name, times in by_name.items()}
               for n, by_name in interleaved_latencies(latency_jobs, args.repeats).items()}
    print(f"timing throughput, {args.repeats} rounds ...", file=sys.stderr)
    jobs = {"PyTorch card": torch_runs.model_card_fps, "PyTorch sorted": torch_runs.sorted_batches_fps,
            "PyTorch sorted bf16": lambda: torch_runs.sorted_batches_fps(bf16=True)}
    jobs.update({p: server.throughput for p, server in servers.items()})
    first_pass = {name: job() for name, job in jobs.items()}
    throughput = {name: statistics.median(rates) for name, rates in interleave(jobs, args.repeats).items()}
    pt_probabilities, pt_logits = torch_runs.probabilities, torch_runs.probe_logits()
    reports = {p: server.finish() for p, server in servers.items()}

    print(f"timing cold processes over {args.cold_functions} functions ...", file=sys.stderr)
    icd = args.icd or cold_start_icd(args.backend)
    subset = cold_start.corpus_subset(args.corpus, args.cold_functions, workdir)
    cold = {p: cold_start.ours(icd, model_dir, subset, ["--backend", args.backend, "--precision", p])
            for p in precisions}
    torch_cold = {"f32": cold_start.torch_process(model_dir, subset, "cuda"),
                  "bf16 autocast": cold_start.torch_process(model_dir, subset, "cuda", bf16=True)}

    gpu = torch.cuda.get_device_name(0)
    command = (f"python benches/gpu_side_by_side.py --tokenizer {args.tokenizer} --corpus {args.corpus} "
               f"--functions {args.functions} --repeats {args.repeats} --backend {args.backend} "
               f"--precisions {args.precisions} --cold-functions {args.cold_functions}"
               + (f" --bench {args.bench}" if args.bench else "") + (f" --icd {args.icd}" if args.icd else ""))
    names = ", ".join(f"`{p}`" for p in precisions)
    lines = [
        f"# GPU benchmarks: the `{args.backend}` backend",
        "",
        f"Produced by `benches/gpu_side_by_side.py` in one run on one {gpu}: PyTorch (transformers,",
        f"CUDA, f32) and this library's `{args.backend}` backend (precision {names}) on the same GPU and inputs,",
        "with a codebert-base-shaped classifier (random weights, the real RoBERTa vocabulary). Reproduce with:",
        "",
        "```sh",
        command,
        "```",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} logical CPUs, {platform.platform()}; GPU: {gpu}.",
        f"Versions: torch {torch.__version__}, transformers {transformers.__version__}; this library's `examples/bench`",
        f"(the test build's profile), backend `{reports[precisions[0]]['backend']}`.",
        "",
        "## Agreement",
        "",
    ]
    for p in precisions:
        logit_diff = max(abs(x - y) for ra, rb in zip(reports[p]["probe_logits"], pt_logits) for x, y in zip(ra, rb))
        probs = servers[p].probabilities
        prob_diff = max(abs(a - b) for a, b in zip(probs, pt_probabilities))
        verdicts = sum((a >= 0.5) == (b >= 0.5) for a, b in zip(probs, pt_probabilities))
        lines.append(f"- `{p}`: max |logit difference| on the probe functions, ours vs PyTorch: {logit_diff:.2e}; over "
                     f"the {len(codes)} corpus functions (batched): max |insecure probability difference| "
                     f"{prob_diff:.2e}, verdicts (at 0.5) equal on {verdicts} of {len(codes)}")
    lines += [
        "",
        f"## Batch-1 latency (median of {args.repeats} interleaved rounds after a warm-up, seconds, host clock "
        "around a drained GPU)",
        "",
        "| tokens | PyTorch (CUDA) | " + " | ".join(f"ours ({p})" for p in precisions) + " | "
        + " | ".join(f"{p} / PyTorch" for p in precisions) + " | PyTorch GFLOP/s | "
        + " | ".join(f"{p} GFLOP/s" for p in precisions) + " |",
        "| --- " * (3 + 3 * len(precisions)) + "|",
    ]
    for n in LENGTHS:
        pt = latency[n]["PyTorch"]
        ours = [latency[n][p] for p in precisions]
        lines.append(f"| {n} | {pt:.4f} | " + " | ".join(f"{o:.4f}" for o in ours) + " | "
                     + " | ".join(f"{o / pt:.2f}x" for o in ours) + f" | {flops_per_pass(n) / pt / 1e9:.0f} | "
                     + " | ".join(f"{flops_per_pass(n) / o / 1e9:.0f}" for o in ours) + " |")
    lines += [
        "",
        "Ratios are time over time: below 1x means this library is faster. GFLOP/s are a whole pass's "
        "FLOPs over each runtime's time; this library's last layer carries only `<s>` (the one token the "
        "classification head reads) past attention, so it performs a few percent fewer.",
        "",
        f"## Throughput over the first {len(codes)} nginx functions (truncated at 512 tokens; median of "
        f"{args.repeats} interleaved passes after a first one)",
        "",
        "| runtime | usage | functions/s | " + " | ".join(f"ours ({p}) relative" for p in precisions)
        + " | first pass, functions/s |",
        "| --- " * (4 + len(precisions)) + "|",
    ]
    rows = [("PyTorch (CUDA)", "model card (each function padded to 512)", "PyTorch card"),
            ("PyTorch (CUDA)", "length-sorted batches of 8", "PyTorch sorted"),
            ("PyTorch (CUDA, bf16 autocast)", "length-sorted batches of 8", "PyTorch sorted bf16")]
    rows += [(f"ours ({args.backend}, {p})", "`predict_batch`: length-sorted, up to 8 per call, padded to one of "
              "the bounded call shapes", p) for p in precisions]
    for runtime, usage, key in rows:
        lines.append(f"| {runtime} | {usage} | {throughput[key]:.2f} | "
                     + " | ".join(f"{throughput[p] / throughput[key]:.2f}x" for p in precisions)
                     + f" | {first_pass[key]:.2f} |")
    lines += [
        "",
        "Relative: ours functions/s over the row's (above 1x means this library is faster).",
        "The first pass is each runtime's first over the corpus in this process, after the batch-1 runs: "
        "this library's GPU backends compile a kernel the first time they meet each new input shape (and "
        "keep it for the process's life), so a process's first pass over inputs of new lengths costs "
        "more than the passes after it.",
        "",
        "Load from safetensors onto the GPU: "
        + "; ".join(f"`{p}` {reports[p]['load_seconds']:.2f} s" for p in precisions) + ".",
        "",
        f"## Cold processes over the first {args.cold_functions} nginx functions (seconds from process start "
        "to the last prediction)",
        "",
        "| process | seconds | functions/s | PyTorch f32 cold / this |",
        "| --- | --- | --- | --- |",
    ]
    for name, seconds in torch_cold.items():
        lines.append(f"| PyTorch (CUDA, {name}), length-sorted batches of 8 | {seconds:.2f} | "
                     f"{args.cold_functions / seconds:.1f} | {torch_cold['f32'] / seconds:.2f}x |")
    for p in precisions:
        for name, seconds in cold[p].items():
            lines.append(f"| ours ({args.backend}, {p}), `icd classify`, {name} | {seconds:.2f} | "
                         f"{args.cold_functions / seconds:.1f} | {torch_cold['f32'] / seconds:.2f}x |")
    lines += [
        "",
        "Each process loads the checkpoint, tokenizes, classifies and exits, with every cache it may fill "
        "(`ICD_CACHE_DIR`, the drivers' shader and kernel caches) fresh. Ours: `cold` compiles each call "
        "shape as it first comes; `warm caches` is a second process on what the first left (on CUDA "
        "the compiled kernels in `ICD_CACHE_DIR`, and the driver's cache); `cold --warm-up` compiles "
        "every call shape before the first function. Above 1x: this library's process is the faster.",
        "",
    ]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def cold_start_icd(backend):
    """Builds `icd` with the backend's feature and returns the executable's path."""
    subprocess.run(["cargo", "build", "-q", "--features", backend, "--bin", "icd"], cwd=ROOT, check=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return str(target / "debug" / "icd")


if __name__ == "__main__":
    main()
