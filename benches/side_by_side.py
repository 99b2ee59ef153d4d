#!/usr/bin/env python3
"""Side by side: PyTorch (transformers), ONNX Runtime and this library, in one run.

Makes one codebert-base-shaped RoBERTa classifier with random weights and the real
RoBERTa vocabulary, times all three on the same inputs with the same thread count,
checks that their logits agree, and writes BENCHMARKS.md. The runtimes' runs are
interleaved: each round runs every one of them once, in an order rotated from round to
round, so that a slow spell of a shared machine falls on all of them alike.

    python3 -m venv /tmp/bench && /tmp/bench/bin/pip install -r benches/requirements.txt
    /tmp/bench/bin/python benches/side_by_side.py \
        --tokenizer ../shared/roberta-base-tokenizer --corpus ../shared/c-corpus/nginx.jsonl

Not part of the test run: it needs torch, transformers and onnxruntime, about 2 GB of
disk in --workdir, and several minutes on two cores. `benches/anchors.py` times the
other runtimes (OpenVINO, CTranslate2, ONNX Runtime's int8) over the corpus beside
these, in a section of its own for each CPU class, which a run of this script keeps.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import transformers
from transformers import AutoTokenizer, RobertaForSequenceClassification

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (LENGTHS, cpu_model, PROBES, ROOT, OursServer, TorchRuns, bench_binary, flops_per_pass,  # noqa: E402
                    interleave, interleaved_latencies, length_text, load_seconds, make_checkpoint, onnx_export,
                    median_time, sorted_batches, timed)



# The opt-in reduced-precision modes timed beside f32.
REDUCED = ["bf16", "int8"]
# Where the sections of BENCHMARKS.md that other commands measure begin.
KEPT_MARKER = "<!-- measured by other commands (benches/ab.py, anchors.py, ...): kept when side_by_side.py rewrites this file -->"


class OnnxRuns:
    """ONNX Runtime on the same model exported to ONNX, one timed run per call."""

    def __init__(self, model, tokenizer, codes, threads, workdir):
        path = onnx_export(model, tokenizer, workdir)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.tokenizer, self.codes = tokenizer, codes
        self.inputs = {n: tokenizer(length_text(n), return_tensors="np") for n in LENGTHS}
        self.batches = sorted_batches(tokenizer, codes)

    def run(self, enc):
        return self.session.run(None, {"input_ids": enc["input_ids"].astype(np.int64),
                                       "attention_mask": enc["attention_mask"].astype(np.int64)})[0]

    def latency(self, n):
        return timed(lambda: self.run(self.inputs[n]))

    def sorted_batches_fps(self):
        t = time.perf_counter()
        for _, texts in self.batches:
            self.run(self.tokenizer(texts, truncation=True, padding=True, return_tensors="np"))
        return len(self.codes) / (time.perf_counter() - t)

    def probe_logits(self):
        return [self.run(self.tokenizer(p, return_tensors="np"))[0].tolist() for p in PROBES]


def torch_matmul_gflops(threads):
    """The best f32 matrix-product rate torch reaches here (2048x768 @ 768x3072)."""
    a, b = torch.randn(2048, 768), torch.randn(768, 3072)
    t = median_time(lambda: a @ b, 20)
    return 2 * 2048 * 768 * 3072 / t / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizer", required=True, help="directory with RoBERTa's vocab.json and merges.txt")
    parser.add_argument("--corpus", required=True, help="CodeXGLUE-layout jsonl of C functions")
    parser.add_argument("--functions", type=int, default=64, help="corpus functions timed for throughput")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--features", default="ndarray,wgpu", help="cargo features of the build to time")
    parser.add_argument("--workdir", default=str(ROOT / "target" / "bench"))
    parser.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    args = parser.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)

    model_dir = make_checkpoint(workdir, args.tokenizer)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = RobertaForSequenceClassification.from_pretrained(str(model_dir)).eval()
    codes = [json.loads(line)["func"] for line in open(args.corpus)][: args.functions]

    threads = {"RAYON_NUM_THREADS": str(args.threads)}
    bench = bench_binary(args.features)
    servers = {"f32": OursServer(bench, model_dir, args.corpus, args.functions, ["--precision", "f32", "--peak"], threads)}
    for mode in REDUCED:
        servers[mode] = OursServer(bench, model_dir, args.corpus, args.functions, ["--precision", mode], threads)
    torch_runs = TorchRuns(model, tokenizer, codes)
    onnx_runs = OnnxRuns(model, tokenizer, codes, args.threads, workdir)

    def latency_jobs(n):
        jobs = {"PyTorch": lambda: torch_runs.latency(n), "ONNX Runtime": lambda: onnx_runs.latency(n)}
        jobs.update({mode: (lambda s=server: s.latency(n)) for mode, server in servers.items()})
        return jobs

    latency = interleaved_latencies(latency_jobs, args.repeats)
    print(f"timing throughput, {args.repeats} rounds ...", file=sys.stderr)
    jobs = {"PyTorch card": torch_runs.model_card_fps, "PyTorch sorted": torch_runs.sorted_batches_fps,
            "ONNX Runtime sorted": onnx_runs.sorted_batches_fps}
    jobs.update({mode: server.throughput for mode, server in servers.items()})
    throughput = interleave(jobs, args.repeats)
    median = {name: {n: statistics.median(latency[n][name]) for n in LENGTHS} for name in latency[LENGTHS[0]]}
    fps_median = {name: statistics.median(rates) for name, rates in throughput.items()}

    pt = {"latency": median["PyTorch"], "sorted_batches_fps": fps_median["PyTorch sorted"],
          "model_card_fps": fps_median["PyTorch card"], "probabilities": torch_runs.probabilities,
          "probe_logits": torch_runs.probe_logits()}
    ox = {"latency": median["ONNX Runtime"], "sorted_batches_fps": fps_median["ONNX Runtime sorted"],
          "probe_logits": onnx_runs.probe_logits()}
    reports = {mode: server.finish() for mode, server in servers.items()}
    for mode, report in reports.items():
        report["latency_seconds"] = {str(n): median[mode][n] for n in LENGTHS}
        report["throughput"] = {"functions_per_second": fps_median[mode],
                                "insecure_probabilities": servers[mode].probabilities}
    ours = reports["f32"]
    reduced = {mode: reports[mode] for mode in REDUCED}
    # A load is one sample per process, and the servers' loads are the first of theirs:
    # the load row takes the median of fresh processes (f32) and of transformers' loads,
    # interleaved like the timings above.
    print(f"timing loads, {args.repeats} rounds ...", file=sys.stderr)
    loads = interleave({
        "ours": lambda: load_seconds(bench, model_dir, ["--precision", "f32"], threads),
        "transformers": lambda: timed(lambda: RobertaForSequenceClassification.from_pretrained(str(model_dir))),
    }, args.repeats)
    load_median = {name: statistics.median(times) for name, times in loads.items()}
    # How far the rounds spread: ours over ONNX Runtime, round by round.
    round_ratios = {n: [o / x for o, x in zip(latency[n]["f32"], latency[n]["ONNX Runtime"])] for n in LENGTHS}
    peak = torch_matmul_gflops(args.threads)

    def max_diff(a, b):
        return max(abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra, rb))

    agreement = {
        "ours_vs_torch": max_diff(ours["probe_logits"], pt["probe_logits"]),
        "onnx_vs_torch": max_diff(ox["probe_logits"], pt["probe_logits"]),
    }
    ours_probs = ours["throughput"]["insecure_probabilities"]
    corpus_prob_diff = max(abs(a - b) for a, b in zip(ours_probs, pt["probabilities"]))
    fidelity = {}
    for mode, run in reduced.items():
        probs = run["throughput"]["insecure_probabilities"]
        fidelity[mode] = (
            sum((a >= 0.5) == (b >= 0.5) for a, b in zip(probs, ours_probs)),
            max(abs(a - b) for a, b in zip(probs, ours_probs)),
        )

    weight_bytes = (model_dir / "model.safetensors").stat().st_size
    cpu_peak = ours["cpu_peak_gflops"]
    isa = {"avx512": "AVX-512", "avx2": "AVX2"}.get(cpu_peak.get("f32_isa"), cpu_peak.get("f32_isa"))
    int8_instruction = ("AVX512-VNNI `vpdpbusd`" if cpu_peak.get("int8_isa") == "avx512vnni"
                        else "AVX2 `vpmaddwd` + `vpaddd`")

    # FLOPs of a whole 512-token pass, of this library's in f32 (its last layer on `<s>` alone,
    # keys and values folded into its query where the f32 kernel runs), and ONNX Runtime's
    # rate on a whole pass.
    ours_last_layer = "folded" if cpu_peak.get("f32_isa") in ("avx512", "avx2") else "first_token"
    whole_512 = flops_per_pass(512)
    ours_512 = flops_per_pass(512, last_layer=ours_last_layer)
    ort_rate_512 = whole_512 / ox["latency"][512] / 1e9

    def rate_of(seconds, n, performed_by_ours=False):
        rate = flops_per_pass(n, last_layer=ours_last_layer if performed_by_ours else "whole") / seconds / 1e9
        return f"{rate:.0f} ({rate / cpu_peak['f32_fma']:.0%})"

    command = (f"python benches/side_by_side.py --tokenizer {args.tokenizer} --corpus {args.corpus} "
               f"--functions {args.functions} --threads {args.threads} --repeats {args.repeats} --features {args.features}")
    lines = [
        "# Benchmarks",
        "",
        "Produced by `benches/side_by_side.py` in one run: PyTorch (transformers), ONNX Runtime and",
        "this library on the same machine, inputs and thread count, with a codebert-base-shaped",
        "classifier (random weights, the real RoBERTa vocabulary). Reproduce with:",
        "",
        "```sh",
        command,
        "```",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} logical CPUs, {cpu_model()}, {platform.platform()}; "
        f"threads: {args.threads}.",
        f"Versions: torch {torch.__version__}, transformers {transformers.__version__}, onnxruntime {ort.__version__}; "
        f"this library built with `cargo run --example bench --features {args.features}` (the test build's profile:",
        "dependencies at opt-level 2).",
        "",
        "## Agreement",
        "",
        f"- max |logit difference| on the probe functions: ours vs PyTorch {agreement['ours_vs_torch']:.2e}, "
        f"ONNX Runtime vs PyTorch {agreement['onnx_vs_torch']:.2e}",
        f"- max |insecure probability difference| over the {len(codes)} corpus functions (batched): {corpus_prob_diff:.2e}",
        "",
        "## Batch-1 latency (median of %d interleaved rounds, seconds)" % args.repeats,
        "",
        "Each round runs every runtime once at each length, in an order rotated from round to round, so",
        "that the shared machine's slow spells fall on all of them alike.",
        "",
        "| tokens | PyTorch | ONNX Runtime | ours (f32) | "
        + " | ".join(f"ours ({m})" for m in REDUCED)
        + " | ours / PyTorch | ours / ORT | "
        + " | ".join(f"{m} / ORT" for m in REDUCED)
        + " | ORT GFLOP/s (of f32 peak) | ours GFLOP/s (of f32 peak) |",
        "| --- " * (8 + 2 * len(REDUCED)) + "|",
    ]
    for n in LENGTHS:
        o = ours["latency_seconds"][str(n)]
        r = [reduced[m]["latency_seconds"][str(n)] for m in REDUCED]
        lines.append(
            f"| {n} | {pt['latency'][n]:.4f} | {ox['latency'][n]:.4f} | {o:.4f} | "
            + "".join(f"{t:.4f} | " for t in r)
            + f"{o / pt['latency'][n]:.2f}x | {o / ox['latency'][n]:.2f}x | "
            + "".join(f"{t / ox['latency'][n]:.2f}x | " for t in r)
            + f"{rate_of(ox['latency'][n], n)} | {rate_of(o, n, performed_by_ours=True)} |"
        )
    ofps = ours["throughput"]["functions_per_second"]
    fps = {m: reduced[m]["throughput"]["functions_per_second"] for m in REDUCED}
    peak_line = (
        f"This CPU's measured peak on {cpu_peak['threads']} threads (`examples/bench --peak`: {isa} multiply-adds "
        f"with no memory traffic): f32 FMA {cpu_peak['f32_fma']:.0f} GFLOP/s"
        + (f", bf16 dot product {cpu_peak['bf16_dot']:.0f} GFLOP/s" if cpu_peak["bf16_dot"] else "")
        + (f", int8 kernel's {int8_instruction} {cpu_peak['int8_madd']:.0f} GOP/s." if cpu_peak.get("int8_madd") else ".")
    )
    lines += [
        "",
        "GFLOP/s count the FLOPs each runtime performs: ONNX Runtime a whole pass's, this library "
        f"{1 - ours_512 / whole_512:.1%} fewer at 512 tokens, "
        "as its last layer computes only `<s>`, the one token the classification head reads"
        + (": the keys and values fold into `<s>`'s query, so that no other token is projected "
           "(the same logits within rounding)." if ours_last_layer == "folded" else
           " past the projection of every token's query, key and value (with the same logits)."),
        "Ratios are time over time: below 1x means this library is faster. Ours (f32) over ONNX Runtime, "
        "round by round (lowest to highest): "
        + "; ".join(f"{n} tokens {min(r):.2f}x to {max(r):.2f}x" for n, r in round_ratios.items()) + ".",
        f"For reference, torch's own f32 product of 2048x768 by 768x3072 runs at {peak:.0f} GFLOP/s here.",
        peak_line,
        "",
        f"## Throughput over the first {len(codes)} nginx functions (truncated at 512 tokens; median of {args.repeats} interleaved rounds)",
        "",
        "| runtime | usage | functions/s | ours relative |",
        "| --- | --- | --- | --- |",
        f"| PyTorch | model card (each function padded to 512) | {pt['model_card_fps']:.2f} | {ofps / pt['model_card_fps']:.2f}x |",
        f"| PyTorch | length-sorted batches of 8 | {pt['sorted_batches_fps']:.2f} | {ofps / pt['sorted_batches_fps']:.2f}x |",
        f"| ONNX Runtime | length-sorted batches of 8 | {ox['sorted_batches_fps']:.2f} | {ofps / ox['sorted_batches_fps']:.2f}x |",
        f"| ours (f32) | `predict_batch`: length-sorted, up to 8 laid end to end, no padding | {ofps:.2f} | 1.00x |",
    ]
    lines += [f"| ours ({m}) | the same, `Precision::{m.capitalize()}` | {fps[m]:.2f} | {fps[m] / ofps:.2f}x |" for m in REDUCED]
    lines += [
        "",
        "Relative: ours (f32) functions/s over the row's (above 1x means this library is faster).",
        "",
        "## Load and memory",
        "",
        f"- load from safetensors, median of {args.repeats} interleaved rounds (ours in a fresh process each): "
        f"ours {load_median['ours']:.2f} s ({min(loads['ours']):.2f} to {max(loads['ours']):.2f}), "
        f"transformers {load_median['transformers']:.2f} s ({min(loads['transformers']):.2f} to {max(loads['transformers']):.2f})",
        f"- peak resident memory of the benchmark process (ours): {ours['peak_rss_bytes'] / 2**20:.0f} MiB; "
        f"weight file {weight_bytes / 2**20:.0f} MiB ({ours['peak_rss_bytes'] / weight_bytes:.2f}x); "
        + "; ".join(f"with {m}: {reduced[m]['peak_rss_bytes'] / 2**20:.0f} MiB, load {reduced[m]['load_seconds']:.2f} s"
                    for m in REDUCED),
        "",
        "## Reduced precision (opt-in)",
        "",
    ]
    for m in REDUCED:
        verdicts, prob_diff = fidelity[m]
        lines += [
            f"- {m}: verdicts (at 0.5) equal to f32 on {verdicts} of {len(codes)} corpus functions; "
            f"max |probability difference| {prob_diff:.2e}; throughput {fps[m]:.2f} functions/s against {ofps:.2f} "
            f"in f32 ({fps[m] / ofps:.2f}x), {fps[m] / pt['sorted_batches_fps']:.2f}x PyTorch's length-sorted batches, "
            f"{fps[m] / pt['model_card_fps']:.2f}x the model card's usage",
        ]
    lines += [
        f"- bf16 ran the projections on {reduced['bf16']['execution']} (`icd --version` says which kernel "
        "each precision runs and why), the rest in f32",
        f"- int8 ran the projections on this library's int8 kernel (`cpu::int8_gemm`, {int8_instruction}: int8 "
        "weights per column, activations quantized per token, exact 32-bit sums), the rest in f32",
        "",
        "## Against the targets",
        "",
        "| target | measured | met |",
        "| --- | --- | --- |",
    ]
    for n in (128, 256, 512):
        ratio = ours["latency_seconds"][str(n)] / ox["latency"][n]
        lines.append(f"| batch-1 latency at {n} tokens below ONNX Runtime's | {ratio:.2f}x ORT's time | {'yes' if ratio < 1 else 'no'} |")
    checks = [
        ("throughput >= 1.5x PyTorch's length-sorted batches", ofps / pt["sorted_batches_fps"], 1.5),
        ("throughput >= 3x the model card's usage", ofps / pt["model_card_fps"], 3.0),
    ] + [(f"{m} throughput >= 2x f32", fps[m] / ofps, 2.0) for m in REDUCED]
    for name, value, goal in checks:
        lines.append(f"| {name} | {value:.2f}x | {'yes' if value >= goal else 'no'} |")
    # The same latency and throughput targets for the opt-in modes, whose fidelity is
    # stated above, as separate rows: f32 is the default and the rows above.
    for m in REDUCED:
        for n in (128, 256, 512):
            ratio = reduced[m]["latency_seconds"][str(n)] / ox["latency"][n]
            lines.append(f"| ({m}, opt-in) batch-1 latency at {n} tokens below ONNX Runtime's (f32) | {ratio:.2f}x ORT's time | {'yes' if ratio < 1 else 'no'} |")
        for name, value, goal in [
            (f"({m}, opt-in) throughput >= 1.5x PyTorch's length-sorted batches", fps[m] / pt["sorted_batches_fps"], 1.5),
            (f"({m}, opt-in) throughput >= 3x the model card's usage", fps[m] / pt["model_card_fps"], 3.0),
        ]:
            lines.append(f"| {name} | {value:.2f}x | {'yes' if value >= goal else 'no'} |")
    rss_ratio = ours["peak_rss_bytes"] / weight_bytes
    # The throughput ceiling in f32: the corpus's FLOPs as this library performs them,
    # at the measured f32 peak.
    corpus_lengths = [len(tokenizer(c, truncation=True, max_length=512)["input_ids"]) for c in codes]
    corpus_flops = sum(flops_per_pass(n, last_layer=ours_last_layer) for n in corpus_lengths)
    ceiling_fps = len(codes) / (corpus_flops / (cpu_peak["f32_fma"] * 1e9))
    corpus_rate = corpus_flops / (len(codes) / ofps) / 1e9
    lines += [
        f"| load from safetensors under 1 s | {load_median['ours']:.2f} s | {'yes' if load_median['ours'] < 1 else 'no'} |",
        f"| peak resident memory <= 1.3x the weight file | {rss_ratio:.2f}x | {'yes' if rss_ratio <= 1.3 else 'no'} |",
        "",
        f"What bounds it: {peak_line} At 512 tokens ONNX Runtime runs at "
        f"{ort_rate_512 / cpu_peak['f32_fma']:.0%} of the f32 peak and this library at "
        f"{ours_512 / ours['latency_seconds']['512'] / 1e9 / cpu_peak['f32_fma']:.0%}, "
        f"so in f32 a runtime that performs a whole pass can be at most "
        f"{cpu_peak['f32_fma'] / ort_rate_512:.2f}x faster than ONNX Runtime there, "
        f"and this library, which performs {1 - ours_512 / whole_512:.1%} fewer FLOPs, at most "
        f"{cpu_peak['f32_fma'] / (ours_512 / ox['latency'][512] / 1e9):.2f}x. "
        + f"Our f32 time is the projections on this library's FMA kernel (`cpu::f32_gemm`, {isa}), attention on "
        "the same kernel, then LayerNorm, GELU and the softmax's exponentials; to see the split, "
        f"profile the library's side alone: `perf record -e cpu-clock target/debug/examples/bench {os.path.relpath(model_dir)} --lengths 512 --backend flex`, "
        "then `perf report --sort symbol`. The reduced-precision kernels speed up only the projections, by at most "
        "the ratio of their peak to the f32 FMA peak above, while attention, GELU and LayerNorm stay f32. "
        "Peak memory is that of the whole benchmark process, model calls of up to 512 tokens included.",
        "",
        f"What bounds throughput: over these {len(codes)} functions ({sum(corpus_lengths)} tokens, "
        f"{sum(n == 512 for n in corpus_lengths)} of them cut at 512) this library performs "
        f"{corpus_flops / 1e12:.2f} TFLOP in f32, which at the f32 peak above takes "
        f"{len(codes) / ceiling_fps:.1f} s: at most {ceiling_fps:.2f} functions/s, "
        f"{ceiling_fps / pt['sorted_batches_fps']:.2f}x PyTorch's length-sorted batches and "
        f"{ceiling_fps / pt['model_card_fps']:.2f}x the model card's usage. Ours (f32) runs at "
        f"{corpus_rate:.0f} GFLOP/s ({corpus_rate / cpu_peak['f32_fma']:.0%} of the peak) over the corpus; "
        f"1.5x PyTorch's batches would take {1.5 * pt['sorted_batches_fps'] / ceiling_fps:.0%} of the peak"
        + (", and 3x the model card's usage more than the peak: no f32 runtime reaches it here, the "
           "opt-in reduced-precision modes are the way to it."
           if 3 * pt["model_card_fps"] > ceiling_fps else
           f", and 3x the model card's usage {3 * pt['model_card_fps'] / ceiling_fps:.0%}."),
        "",
    ]
    # Sections measured by other commands (benches/ab.py) follow KEPT_MARKER and are
    # carried over from the file this run replaces.
    out = Path(args.out)
    kept = ""
    if out.exists() and KEPT_MARKER in out.read_text():
        kept = "\n" + out.read_text()[out.read_text().index(KEPT_MARKER):]
    out.write_text("\n".join(lines) + "\n" + kept)
    print("\n".join(lines))

if __name__ == "__main__":
    main()
