#!/usr/bin/env python3
"""Every runtime over real C functions, on this CPU: transformers on PyTorch, ONNX
Runtime (f32, and int8 quantized dynamically), OpenVINO (f32, bf16 where the CPU has a
bf16 dot product, int8 through NNCF: weights and activations) and CTranslate2 (f32 and
int8, its encoder only: the classification head runs in numpy), beside this library in
f32, bf16 and int8. Each runs the same functions in length-sorted batches of 8 with the
same thread count, round by round in turns; the table gives each one's seconds for the
corpus and the largest difference of its logits from transformers' f32 over every
function. Writes the section of BENCHMARKS.md for this CPU's class (AVX-512 or AVX2
only), keeping the other classes' sections.

    python3 -m venv /tmp/bench && /tmp/bench/bin/pip install -r benches/requirements.txt
    /tmp/bench/bin/python benches/anchors.py --tokenizer ../shared/roberta-base-tokenizer \\
        --corpus ../shared/c-corpus/nginx.jsonl --functions 40 --threads 2 --rounds 3

Not part of the test run: it needs the packages of benches/requirements.txt, about 3 GB
of disk in --workdir, and about 20 minutes on two cores.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

# The functions after the timed ones that OpenVINO's int8 calibration reads.
CALIBRATION_FUNCTIONS = 64


def cpu_flags():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_class(flags):
    """The heading's CPU class: the widest vector instructions the kernels can use,
    and for AVX-512 the vendor, which decides whether bf16 runs its own kernel
    (`CpuFeatures::fast_bf16_dot`)."""
    if "avx512f" in flags:
        vendors = {"AuthenticAMD": "AMD", "GenuineIntel": "Intel"}
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("vendor_id"):
                vendor = line.split(":", 1)[1].strip()
                return f"AVX-512, {vendors.get(vendor, vendor)}"
        return "AVX-512"
    return "AVX2 only (no AVX-512)"


def commit():
    """The commit measured (with `+` where the tree differs from it)."""
    run = lambda *a: subprocess.run(["git", *a], cwd=common.ROOT, capture_output=True, text=True).stdout.strip()
    return run("rev-parse", "--short", "HEAD") + ("+" if run("status", "--porcelain", "--untracked-files=no") else "")


def heading(flags):
    return f"## Every runtime over real C functions: {cpu_class(flags)}"


class Batches:
    """The corpus in length-sorted batches of 8, as every runtime here takes it, and the
    logits each run gives back in corpus order."""

    def __init__(self, tokenizer, codes):
        self.tokenizer, self.codes = tokenizer, codes
        self.batches = common.sorted_batches(tokenizer, codes)

    def encode(self, texts, kind):
        return self.tokenizer(texts, truncation=True, max_length=512, padding=True, return_tensors=kind)

    def timed_pass(self, run, kind="np"):
        """Seconds of one pass (tokenizing included) and the logits, `run` taking one
        batch's encoding and returning its `[batch, 2]` logits."""
        logits = [None] * len(self.codes)
        started = time.perf_counter()
        for indices, texts in self.batches:
            for i, row in zip(indices, np.asarray(run(self.encode(texts, kind)))):
                logits[i] = row
        return time.perf_counter() - started, np.stack(logits)


class Torch:
    name, settings = "PyTorch f32 (transformers)", "eager, `torch.inference_mode`"

    def __init__(self, model, batches):
        import torch
        self.torch, self.model, self.batches = torch, model, batches

    def run(self):
        with self.torch.inference_mode():
            return self.batches.timed_pass(lambda enc: self.model(**enc).logits.numpy(), "pt")


class Onnx:
    """ONNX Runtime on the model exported to ONNX; int8 through `quantize_dynamic`
    (int8 weights, activations quantized per call; attention fused to QAttention where
    its graph optimizer finds the pattern)."""

    def __init__(self, model, tokenizer, batches, threads, workdir, int8):
        import onnxruntime as ort
        path = common.onnx_export(model, tokenizer, workdir)
        if int8:
            from onnxruntime.quantization import QuantType, quantize_dynamic
            quantized = workdir / "model.int8.onnx"
            if not quantized.is_file():
                quantize_dynamic(str(path), str(quantized), weight_type=QuantType.QInt8)
            path = quantized
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.batches = batches
        self.name = f"ONNX Runtime {ort.__version__} {'int8' if int8 else 'f32'}"
        self.settings = ("`quantize_dynamic`, QInt8 weights" if int8 else "exported with opset 17") + \
            f", {threads} intra-op threads"

    def run(self):
        return self.batches.timed_pass(lambda enc: self.session.run(None, {
            "input_ids": enc["input_ids"].astype(np.int64),
            "attention_mask": enc["attention_mask"].astype(np.int64)})[0])


class OpenVino:
    """OpenVINO's CPU plugin on the model converted from PyTorch (`openvino.convert_model`),
    at an inference precision (f32, bf16); int8 is NNCF's post-training quantization of
    weights and activations, calibrated on corpus functions that are not timed."""

    def __init__(self, converted, batches, threads, precision, calibration=None):
        import openvino as ov
        model = converted
        if precision == "int8":
            import nncf

            def feed(text):
                enc = batches.encode([text], "np")
                return {"input_ids": enc["input_ids"].astype(np.int64),
                        "attention_mask": enc["attention_mask"].astype(np.int64)}
            model = nncf.quantize(converted, nncf.Dataset(calibration, feed), model_type=nncf.ModelType.TRANSFORMER,
                                  subset_size=len(calibration))
        hint = "bf16" if precision == "bf16" else "f32"
        self.compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": threads,
                                                               "INFERENCE_PRECISION_HINT": hint,
                                                               "PERFORMANCE_HINT": "LATENCY"})
        self.request = self.compiled.create_infer_request()
        self.batches = batches
        self.name = f"OpenVINO {ov.get_version().split('-')[0]} {precision}"
        self.settings = (f"NNCF {nncf.__version__} `quantize`, transformer preset, {len(calibration)} calibration functions"
                         + ", `INFERENCE_PRECISION_HINT` f32"
                         if precision == "int8" else f"`INFERENCE_PRECISION_HINT` {hint}") + \
            f", {threads} threads, latency hint"

    @staticmethod
    def convert(model, tokenizer):
        import openvino as ov
        enc = tokenizer(["int x;", "int y = 0;"], padding=True, return_tensors="pt")
        return ov.convert_model(model, example_input={"input_ids": enc["input_ids"],
                                                      "attention_mask": enc["attention_mask"]})

    def run(self):
        def infer(enc):
            result = self.request.infer({"input_ids": enc["input_ids"].astype(np.int64),
                                         "attention_mask": enc["attention_mask"].astype(np.int64)})
            return next(iter(result.values()))
        return self.batches.timed_pass(infer)


class CTranslate2:
    """CTranslate2's encoder (its converter builds RoBERTa's encoder, not the head), the
    head (`<s>` -> dense -> tanh -> out_proj) in numpy."""

    def __init__(self, model_dir, model, workdir, batches, threads, compute_type):
        import ctranslate2
        converted = workdir / "ctranslate2"
        if not (converted / "model.bin").is_file():
            # The converter reads `position_embedding_type`, which transformers 5 no
            # longer sets on RoBERTa's config: RoBERTa's embeddings are absolute.
            import transformers
            if not hasattr(transformers.RobertaConfig, "position_embedding_type"):
                transformers.RobertaConfig.position_embedding_type = "absolute"
            ctranslate2.converters.TransformersConverter(str(model_dir)).convert(str(converted), force=True)
        self.encoder = ctranslate2.Encoder(str(converted), device="cpu", compute_type=compute_type,
                                           intra_threads=threads, inter_threads=1)
        head = model.classifier
        self.dense_w, self.dense_b = head.dense.weight.detach().numpy().T, head.dense.bias.detach().numpy()
        self.out_w, self.out_b = head.out_proj.weight.detach().numpy().T, head.out_proj.bias.detach().numpy()
        self.batches = batches
        self.name = f"CTranslate2 {ctranslate2.__version__} {'int8' if compute_type == 'int8' else 'f32'}"
        self.settings = f"compute type {compute_type}, {threads} intra threads; head in numpy"

    def run(self):
        def infer(enc):
            ids = [row[:length].tolist() for row, length in zip(enc["input_ids"], enc["attention_mask"].sum(1))]
            hidden = np.asarray(self.encoder.forward_batch(ids).last_hidden_state)
            first = np.tanh(hidden[:, 0, :] @ self.dense_w + self.dense_b)
            return first @ self.out_w + self.out_b
        return self.batches.timed_pass(infer)


class Ours:
    """This library through `examples/bench --serve` (`predict_batch`: length-sorted, up
    to 8 inputs laid end to end, no padding)."""

    def __init__(self, bench, model_dir, corpus, functions, precision, threads):
        self.server = common.OursServer(bench, model_dir, corpus, functions, ["--precision", precision],
                                        {"RAYON_NUM_THREADS": str(threads)})
        self.precision = precision

    def run(self):
        rate = self.server.throughput()
        return len(self.server.logits) / rate, np.asarray(self.server.logits)

    def describe(self):
        report = self.server.finish()
        self.name = f"this library {self.precision}"
        self.settings = f"{report['execution']}, {report['threads']} threads"


def measure(args, model_dir, model, tokenizer, codes, calibration, bench):
    """Each runtime's seconds per round and its logits; the reference logits."""
    import torch
    torch.set_num_threads(args.threads)
    workdir = Path(args.workdir)
    batches = Batches(tokenizer, codes)
    flags = cpu_flags()
    converted = OpenVino.convert(model, tokenizer)
    runtimes = [Torch(model, batches),
                Onnx(model, tokenizer, batches, args.threads, workdir, int8=False),
                Onnx(model, tokenizer, batches, args.threads, workdir, int8=True),
                OpenVino(converted, batches, args.threads, "f32")]
    if "avx512_bf16" in flags or "amx_bf16" in flags:
        runtimes.append(OpenVino(converted, batches, args.threads, "bf16"))
    runtimes += [OpenVino(converted, batches, args.threads, "int8", calibration),
                 CTranslate2(model_dir, model, workdir, batches, args.threads, "float32"),
                 CTranslate2(model_dir, model, workdir, batches, args.threads, "int8")]
    runtimes += [Ours(bench, model_dir, args.corpus, len(codes), p, args.threads) for p in ("f32", "bf16", "int8")]
    jobs = {}
    for index, runtime in enumerate(runtimes):
        runtime.run()  # warm-up
        jobs[index] = runtime.run
    print(f"timing {len(runtimes)} runtimes over {len(codes)} functions, {args.rounds} rounds ...", file=sys.stderr)
    results = common.interleave(jobs, args.rounds)
    for runtime in runtimes:
        if isinstance(runtime, Ours):
            runtime.describe()
    return runtimes, results


def section(args, runtimes, results, codes, tokens):
    flags = cpu_flags()
    reference = results[0][-1][1]
    rows = []
    for index, runtime in enumerate(runtimes):
        seconds = [s for s, _ in results[index]]
        error = max(float(np.abs(logits - reference).max()) for _, logits in results[index])
        rows.append((runtime, statistics.median(seconds), min(seconds), max(seconds), error))
    f32_ours = next(r for r in rows if r[0].name == "this library f32")[1]
    command = (f"python benches/anchors.py --tokenizer {args.tokenizer} --corpus {args.corpus} "
               f"--functions {args.functions} --threads {args.threads} --rounds {args.rounds}")
    lines = [
        heading(flags),
        "",
        f"Measured on {common.cpu_model()} ({os.cpu_count()} logical CPUs; {', '.join(sorted(f for f in flags if f.startswith(('avx512f', 'avx512_bf16', 'avx512_vnni', 'amx'))) or ['AVX2 and FMA'])})"
        f" by `benches/anchors.py` at {commit()}, {args.threads} threads each: the codebert-base-shaped checkpoint with random"
        f" weights over the first {len(codes)} nginx functions ({tokens} tokens, cut at 512), in length-sorted"
        f" batches of 8, tokenizing included; median of {args.rounds} rounds (lowest to highest), the runtimes"
        " in turns. Logit error: the largest absolute difference from transformers' f32 logits over every"
        " function (the same random weights: differences between the runtimes, not accuracy).",
        "",
        "```sh",
        command,
        "```",
        "",
        "| runtime | seconds | against this library's f32 | logit error | settings |",
        "| --- | --- | --- | --- | --- |",
    ]
    for runtime, median, low, high, error in rows:
        lines.append(f"| {runtime.name} | {median:.2f} ({low:.2f}-{high:.2f}) | {median / f32_ours:.2f}x | "
                     f"{error:.2e} | {runtime.settings} |")
    lines += ["", "Against this library's f32: the row's time over this library's f32 time (above 1x, slower).", ""]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizer", required=True, help="directory with RoBERTa's vocab.json and merges.txt")
    parser.add_argument("--corpus", required=True, help="CodeXGLUE-layout jsonl of C functions")
    parser.add_argument("--functions", type=int, default=40, help="corpus functions timed")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--features", default="ndarray,wgpu", help="cargo features of the build to time")
    parser.add_argument("--workdir", default=str(common.ROOT / "target" / "bench"))
    parser.add_argument("--out", default=str(common.ROOT / "BENCHMARKS.md"))
    args = parser.parse_args()
    from transformers import AutoTokenizer, RobertaForSequenceClassification
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    model_dir = common.make_checkpoint(workdir, args.tokenizer)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = RobertaForSequenceClassification.from_pretrained(str(model_dir)).eval()
    every = [json.loads(line)["func"] for line in open(args.corpus)]
    codes = every[: args.functions]
    calibration = every[args.functions: args.functions + CALIBRATION_FUNCTIONS]
    if len(calibration) < CALIBRATION_FUNCTIONS:
        sys.exit(f"{args.corpus}: OpenVINO's int8 calibration needs {CALIBRATION_FUNCTIONS} functions "
                 f"after the {args.functions} timed, and it has {len(calibration)}")
    flags = cpu_flags()
    if not ("avx2" in flags and "fma" in flags):
        sys.exit("this library's int8 and packed kernels need AVX2 and FMA, which this CPU lacks")
    bench = common.bench_binary(args.features)
    runtimes, results = measure(args, model_dir, model, tokenizer, codes, calibration, bench)
    tokens = sum(len(tokenizer(c, truncation=True, max_length=512)["input_ids"]) for c in codes)
    text = section(args, runtimes, results, codes, tokens)
    common.update_section(args.out, heading(cpu_flags()), text)
    print(text)


if __name__ == "__main__":
    main()
