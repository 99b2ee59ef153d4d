#!/usr/bin/env python3
"""Cold processes: the seconds from a process's start to its last prediction over a
corpus, as a one-shot `icd` run in CI meets them, for this library and for PyTorch.

For this library, `icd classify --jsonl` over the corpus's first `--functions`
functions, twice on the same caches: the first process starts with empty ones (each
call shape is compiled as it first comes), the second with what the first left on
disk (on CUDA the compiled kernels, `backend::gpu_cache_dir`; and the driver's own
shader cache). A third process starts from empty caches with `--warm-up` (every shape
compiled before the first function). For PyTorch (where `--torch-device` is given
and torch is installed), one process that loads the same checkpoint and runs
length-sorted batches of 8, each padded to its longest, in f32 and with bf16
autocast where `--torch-bf16`. Every cache a run may fill is a fresh directory of
its own: `ICD_CACHE_DIR`, and the drivers' (`MESA_SHADER_CACHE_DIR`,
`__GL_SHADER_DISK_CACHE_PATH`, `CUDA_CACHE_PATH`), so that "cold" is cold.

    python3 benches/cold_start.py --icd target/debug/icd --model DIR \
        --corpus ../shared/c-corpus/nginx.jsonl --functions 400 --backend wgpu

`benches/gpu_side_by_side.py --cold-functions N` reports these beside its other
figures; run alone, this prints them. Not part of the test run.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# PyTorch's side, run in a process of its own so that its imports, its CUDA context
# and its kernel choices start cold as ours do.
TORCH_SCRIPT = r"""
import json, sys
import torch
from transformers import AutoTokenizer, RobertaForSequenceClassification
model_dir, corpus, device, bf16 = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
tokenizer = AutoTokenizer.from_pretrained(model_dir)
model = RobertaForSequenceClassification.from_pretrained(model_dir).eval().to(device)
codes = [json.loads(line)["func"] for line in open(corpus)]
order = sorted(range(len(codes)), key=lambda i: len(tokenizer(codes[i], truncation=True)["input_ids"]))
with torch.inference_mode(), torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=bf16):
    for start in range(0, len(order), 8):
        texts = [codes[i] for i in order[start:start + 8]]
        enc = tokenizer(texts, truncation=True, padding=True, return_tensors="pt").to(device)
        model(**enc).logits.float().cpu()
"""


def corpus_subset(corpus, functions, workdir):
    """The corpus's first `functions` lines, as a file of their own."""
    path = Path(workdir) / f"corpus-{functions}.jsonl"
    with open(corpus) as source:
        lines = [line for _, line in zip(range(functions), source)]
    if len(lines) < functions:
        sys.exit(f"{corpus} has {len(lines)} functions, fewer than {functions}")
    path.write_text("".join(lines))
    return path


def timed_process(command, env=None):
    """Wall-clock seconds of `command` from its start to its exit; it must succeed."""
    start = time.perf_counter()
    done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(map(str, command))} failed ({done.returncode}):\n{done.stderr}")
    return seconds


def cold_environment(caches):
    """The environment with every cache a run may fill in fresh directories under
    `caches`: this library's and the GPU drivers' shader and kernel caches."""
    paths = {name: str(Path(caches) / name) for name in
             ("ICD_CACHE_DIR", "MESA_SHADER_CACHE_DIR", "__GL_SHADER_DISK_CACHE_PATH", "CUDA_CACHE_PATH")}
    for path in paths.values():
        os.makedirs(path)
    return dict(os.environ, **paths)


def ours(icd, model_dir, subset, options):
    """Seconds of this library's cold process, of a second one on the first's caches,
    and of a cold one with --warm-up: {"cold", "warm caches", "cold --warm-up"}."""
    command = [str(icd), "--model", str(model_dir), *options, "classify", "--jsonl", str(subset)]
    times = {}
    with tempfile.TemporaryDirectory() as caches:
        env = cold_environment(caches)
        times["cold"] = timed_process(command, env)
        times["warm caches"] = timed_process(command, env)
    with tempfile.TemporaryDirectory() as caches:
        times["cold --warm-up"] = timed_process(command[:1] + ["--warm-up"] + command[1:], cold_environment(caches))
    return times


def torch_process(model_dir, subset, device, bf16=False):
    """Seconds of a PyTorch process over the subset (length-sorted batches of 8)."""
    with tempfile.TemporaryDirectory() as caches:
        return timed_process([sys.executable, "-c", TORCH_SCRIPT, str(model_dir), str(subset), device,
                              "1" if bf16 else "0"], cold_environment(caches))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--icd", required=True, help="a built icd binary")
    parser.add_argument("--model", required=True, help="checkpoint directory")
    parser.add_argument("--corpus", required=True, help="CodeXGLUE-layout jsonl of C functions")
    parser.add_argument("--functions", type=int, default=400)
    parser.add_argument("--backend", default="wgpu")
    parser.add_argument("--precision", default="f32")
    parser.add_argument("--torch-device", help="also time PyTorch on this device (cuda, cpu)")
    parser.add_argument("--torch-bf16", action="store_true", help="and PyTorch with bf16 autocast")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        subset = corpus_subset(args.corpus, args.functions, workdir)
        rows = {f"ours ({args.backend}, {args.precision}), {name}": seconds for name, seconds in
                ours(args.icd, args.model, subset, ["--backend", args.backend, "--precision", args.precision]).items()}
        if args.torch_device:
            rows[f"PyTorch ({args.torch_device}, f32)"] = torch_process(args.model, subset, args.torch_device)
            if args.torch_bf16:
                rows[f"PyTorch ({args.torch_device}, bf16 autocast)"] = torch_process(
                    args.model, subset, args.torch_device, bf16=True)
    print(f"| process ({args.functions} functions) | seconds, start to last prediction | functions/s |")
    print("| --- | --- | --- |")
    for name, seconds in rows.items():
        print(f"| {name} | {seconds:.2f} | {args.functions / seconds:.1f} |")


if __name__ == "__main__":
    main()
