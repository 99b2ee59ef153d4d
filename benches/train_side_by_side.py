#!/usr/bin/env python3
"""Fine-tuning against PyTorch on one machine in one run: a full-model training step of
the codebert-base-shaped checkpoint (random weights, the real RoBERTa vocabulary),
batches of 8 inputs of 256 tokens, this library (`examples/train_step`) and transformers
with torch.optim.AdamW in turns, round by round; the peak resident memory of each at
8 x 512 tokens; and this library's head-only mode (`--train-layers 0`) over corpus
functions. Writes its section of BENCHMARKS.md.

    python benches/train_side_by_side.py --tokenizer ../shared/roberta-base-tokenizer \\
        --corpus ../shared/c-corpus/nginx.jsonl --threads 2 --rounds 3 --head-functions 1000
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

HEADING = "## Fine-tuning against PyTorch"


def torch_steps(model_dir, tokens, batch_size, steps, threads):
    """transformers' training steps (dropout from the config, AdamW, clipping at 1.0),
    each step's seconds and the process's peak memory: run in a process of its own."""
    import torch
    from transformers import AutoTokenizer, RobertaForSequenceClassification, get_linear_schedule_with_warmup

    torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = RobertaForSequenceClassification.from_pretrained(model_dir)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5, betas=(0.9, 0.999), eps=1e-8)
    scheduler = get_linear_schedule_with_warmup(optimizer, 0, steps)
    batch = tokenizer([common.length_text(tokens)] * batch_size, return_tensors="pt")
    labels = torch.tensor([i % 2 for i in range(batch_size)])
    seconds = []
    for _ in range(steps):
        started = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(**batch).logits, labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        seconds.append(time.perf_counter() - started)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"step_seconds": seconds, "peak_rss_bytes": peak, "torch": torch.__version__}


def run_torch(model_dir, tokens, batch_size, steps, threads):
    command = [sys.executable, __file__, "--torch-worker", json.dumps([str(model_dir), tokens, batch_size, steps, threads])]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"the PyTorch worker failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_ours(binary, model_dir, options, threads):
    env = {"RAYON_NUM_THREADS": str(threads)}
    return common.run_bench([binary, str(model_dir)] + options, env)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizer")
    parser.add_argument("--corpus")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4, help="steps per run; the first is a warm-up")
    parser.add_argument("--head-functions", type=int, default=1000)
    parser.add_argument("--features", default="ndarray,wgpu")
    parser.add_argument("--workdir", default=str(common.ROOT / "target" / "bench"))
    parser.add_argument("--output", default=str(common.ROOT / "BENCHMARKS.md"))
    parser.add_argument("--torch-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torch_worker:
        print(json.dumps(torch_steps(*json.loads(args.torch_worker))))
        return
    if not (args.tokenizer and args.corpus):
        parser.error("--tokenizer and --corpus are required")

    model_dir = common.make_checkpoint(Path(args.workdir), args.tokenizer)
    subprocess.run(["cargo", "build", "-q", "--features", args.features, "--example", "train_step"],
                   cwd=common.ROOT, check=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR", common.ROOT / "target"))
    binary = str(target / "debug" / "examples" / "train_step")

    step_options = ["--tokens", "256", "--batch-size", "8", "--steps", str(args.steps)]
    jobs = {
        "ours": lambda: run_ours(binary, model_dir, step_options, args.threads),
        "PyTorch": lambda: run_torch(model_dir, 256, 8, args.steps, args.threads),
    }
    print(f"timing {args.rounds} rounds of {args.steps} training steps each ...", file=sys.stderr)
    runs = common.interleave(jobs, args.rounds)
    # The first step of each run warms up (allocations, thread pools); the rest count.
    steps = {name: [s for run in results for s in run["step_seconds"][1:]] for name, results in runs.items()}
    median = {name: statistics.median(s) for name, s in steps.items()}
    # Pairs of medians of one round: the machine's drift falls on both alike.
    per_round = [statistics.median(o["step_seconds"][1:]) / statistics.median(t["step_seconds"][1:])
                 for o, t in zip(runs["ours"], runs["PyTorch"])]

    print("peak memory at 8 x 512 tokens ...", file=sys.stderr)
    memory_options = ["--tokens", "512", "--batch-size", "8", "--steps", "1"]
    ours_memory = run_ours(binary, model_dir, memory_options, args.threads)["peak_rss_bytes"]
    torch_memory = run_torch(model_dir, 512, 8, 1, args.threads)["peak_rss_bytes"]

    print(f"head-only over {args.head_functions} functions ...", file=sys.stderr)
    head = run_ours(binary, model_dir, ["--train-layers", "0", "--corpus", args.corpus, "--functions",
                                        str(args.head_functions), "--batch-size", "32"], args.threads)
    weights = (Path(model_dir) / "model.safetensors").stat().st_size
    mib = lambda b: b / 2**20  # noqa: E731

    command = " ".join(["python benches/train_side_by_side.py", "--tokenizer ../shared/roberta-base-tokenizer",
                        "--corpus ../shared/c-corpus/nginx.jsonl", f"--threads {args.threads}",
                        f"--rounds {args.rounds}", f"--steps {args.steps}", f"--head-functions {args.head_functions}"])
    section = f"""{HEADING}

Produced by `benches/train_side_by_side.py` in one run on one machine ({common.cpu_model()},
{os.cpu_count()} logical CPUs, {args.threads} threads each; this library on its `{runs['ours'][0]['backend']}`
backend with burn's automatic differentiation, the test build's profile; torch {runs['PyTorch'][0]['torch']}):

```sh
{command}
```

The codebert-base-shaped checkpoint with random weights, the recipe's defaults (dropout
from the config, AdamW, clipping at 1.0). A step is a forward and backward pass over 8
inputs of 256 tokens, the clipping and the update; each run's first step is a warm-up
and left out; {args.rounds} rounds of {args.steps} steps, the two runtimes in turns.

| | seconds per step (median) | steps |
| --- | --- | --- |
| PyTorch (transformers, torch.optim.AdamW) | {median['PyTorch']:.2f} | {len(steps['PyTorch'])} |
| this library | {median['ours']:.2f} | {len(steps['ours'])} |

Ours over PyTorch, time over time, round by round: {', '.join(f'{r:.2f}x' for r in per_round)}
(median {statistics.median(per_round):.2f}x; below 1x this library is faster). Against the
target of a full-model step at PyTorch's speed or better on the CPU: {"met" if statistics.median(per_round) <= 1.0 else "not met"}.

Peak resident memory of the whole process for one full fine-tuning step at 8 x 512 tokens:
this library {mib(ours_memory):.0f} MiB, PyTorch {mib(torch_memory):.0f} MiB (weights file {mib(weights):.0f} MiB).

The head alone (`--train-layers 0`) over {head['examples']} nginx functions, one epoch in
batches of 32: {head['seconds']:.1f} s, nearly all of it the frozen encoder's one pass over
the functions (truncated at 512 tokens) on the packed CPU kernels; peak memory
{mib(head['peak_rss_bytes']):.0f} MiB.
"""
    common.update_section(args.output, HEADING, section)
    print(section)


if __name__ == "__main__":
    main()
