"""The benchmarks' shared pieces: the codebert-base-shaped random checkpoint, the probe
texts and token lengths, the encoder's operation count, PyTorch's timings and this
library's, and how a bench writes its section of BENCHMARKS.md."""

import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

try:
    import torch
    from transformers import RobertaConfig, RobertaForSequenceClassification
except ImportError:
    # Only the PyTorch side needs them (side_by_side.py); ab.py, which times two builds
    # of this library on an existing checkpoint, runs without them.
    torch = RobertaConfig = RobertaForSequenceClassification = None

ROOT = Path(__file__).resolve().parents[1]
LENGTHS = [64, 128, 256, 512]
PROBES = [
    "int main(void) { return 0; }",
    "void copy(char *dst, const char *src, size_t n)\n{\n    memcpy(dst, src, n);\n}\n",
]


def cpu_model():
    """The CPU's model name, as /proc/cpuinfo gives it, for the figures' captions."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def flops_per_pass(tokens, hidden=768, layers=12, intermediate=3072, heads=12, last_layer="whole"):
    """Multiply-adds x2 of the encoder's matrix products (embeddings and head are negligible).

    last_layer says how much of the last layer is computed:
    - "whole", as transformers and ONNX Runtime compute it;
    - "first_token": every token's query, key and value projected, but only `<s>`, the one token
      the classification head reads, attended from, projected and fed forward (this library on
      burn's tensors, and its bf16 and int8 modes);
    - "folded": this library's f32 CPU kernel, where the keys and values fold into `<s>`'s query
      (`attention::first_token_context`), so that no other token is projected at all.
    """
    s, h, i = tokens, hidden, intermediate

    def layer(queries):
        # The QKV projection on every token, then the rest on `queries` of them.
        return (3 * 2 * s * h * h + 2 * 2 * queries * s * h
                + 2 * queries * h * h + 2 * 2 * queries * h * i)

    if last_layer == "whole":
        return layers * layer(s)
    if last_layer == "first_token":
        return (layers - 1) * layer(s) + layer(1)
    assert last_layer == "folded", last_layer
    # `<s>`'s query, its folded keys (W_k q per head) and the heads' values (mean row · W_v);
    # per head, the scores and the probability-weighted mean over every token; then `<s>` alone.
    folded = 3 * 2 * h * h + 2 * 2 * heads * s * h + 2 * h * h + 2 * 2 * h * i
    return (layers - 1) * layer(s) + folded


def make_checkpoint(workdir, tokenizer_dir):
    model_dir = workdir / "codebert-base-random"
    if (model_dir / "model.safetensors").is_file():
        return model_dir
    model_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    config = RobertaConfig(vocab_size=50265, max_position_embeddings=514, type_vocab_size=1,
                           layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0, eos_token_id=2, num_labels=2)
    config.architectures = ["RobertaForSequenceClassification"]
    model = RobertaForSequenceClassification(config).eval()
    model.save_pretrained(model_dir, safe_serialization=True)
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(Path(tokenizer_dir) / name, model_dir / name)
    (model_dir / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 512, "tokenizer_class": "RobertaTokenizer"}))
    return model_dir


def length_text(n):
    """" x" is one token in RoBERTa's vocabulary: n - 2 of them make n tokens."""
    return " x" * (n - 2)


def timed(fn):
    """Wall time of one call of `fn`."""
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def load_seconds(bench, model_dir, options, env=None):
    """This library's load time (`DetectorBuilder::build`, as `examples/bench` times it) in
    a fresh process; `options` are bench's own (--precision, --backend)."""
    return run_bench([bench, str(model_dir), "--lengths", "8", "--repeats", "1"] + options, env)["load_seconds"]


def onnx_export(model, tokenizer, workdir):
    """`model` exported to ONNX (opset 17, batch and sequence dynamic) as
    `workdir/model.onnx`, once: the file ONNX Runtime's runs read."""
    path = Path(workdir) / "model.onnx"
    if not path.is_file():
        enc = tokenizer(["int x;", "int y = 0;"], padding=True, return_tensors="pt")
        torch.onnx.export(model, (enc["input_ids"], enc["attention_mask"]), str(path),
                          input_names=["input_ids", "attention_mask"], output_names=["logits"],
                          dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"}},
                          opset_version=17, dynamo=False)
    return path


def median_time(fn, repeats):
    """Median wall time of `fn` after a warm-up."""
    fn()
    return statistics.median(timed(fn) for _ in range(repeats))


def sorted_batches(tokenizer, codes):
    """The corpus in length-sorted batches of 8: (indices, texts) pairs."""
    order = sorted(range(len(codes)), key=lambda i: len(tokenizer(codes[i], truncation=True)["input_ids"]))
    return [(order[s:s + 8], [codes[i] for i in order[s:s + 8]]) for s in range(0, len(order), 8)]


class TorchRuns:
    """transformers on PyTorch on `device`, one timed run per call. Tokenizing and copies
    to the device are counted in the corpus passes (as tokenizing is in ours), not in
    batch-1 runs, whose inputs are made ahead; a GPU is drained around each run."""

    def __init__(self, model, tokenizer, codes, device="cpu"):
        self.model, self.tokenizer, self.codes, self.device = model, tokenizer, codes, device
        self.synchronize = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        self.inputs = {n: self.on_device(tokenizer(length_text(n), return_tensors="pt")) for n in LENGTHS}
        assert all(enc["input_ids"].shape[1] == n for n, enc in self.inputs.items())
        self.batches = sorted_batches(tokenizer, codes)

    def on_device(self, enc):
        return {k: v.to(self.device) for k, v in enc.items()}

    def latency(self, n):
        """Seconds of one batch-1 run of `n` tokens."""
        with torch.inference_mode():
            self.synchronize()
            t = time.perf_counter()
            self.model(**self.inputs[n])
            self.synchronize()
            return time.perf_counter() - t

    def sorted_batches_fps(self, bf16=False):
        """Length-sorted batches of 8, each padded to its longest; keeps the probabilities
        (those of f32, not of bf16 autocast)."""
        probs = [None] * len(self.codes)
        autocast = torch.autocast("cuda" if self.device == "cuda" else "cpu", dtype=torch.bfloat16, enabled=bf16)
        with torch.inference_mode(), autocast:
            self.synchronize()
            t = time.perf_counter()
            for idx, texts in self.batches:
                enc = self.on_device(self.tokenizer(texts, truncation=True, padding=True, return_tensors="pt"))
                for i, v in zip(idx, torch.softmax(self.model(**enc).logits, -1)[:, 1].tolist()):
                    probs[i] = v
            fps = len(self.codes) / (time.perf_counter() - t)
        if not bf16:
            self.probabilities = probs
        return fps

    def model_card_fps(self):
        """The model card's usage: one function at a time, padded to 512."""
        with torch.inference_mode():
            self.synchronize()
            t = time.perf_counter()
            for code in self.codes:
                enc = self.on_device(self.tokenizer(code, truncation=True, padding="max_length", return_tensors="pt"))
                self.model(**enc).logits.cpu()
            return len(self.codes) / (time.perf_counter() - t)

    def probe_logits(self):
        with torch.inference_mode():
            return [self.model(**self.on_device(self.tokenizer(p, return_tensors="pt"))).logits[0].tolist()
                    for p in PROBES]


def bench_binary(features):
    """Builds `examples/bench` with `features` and returns the executable's path."""
    subprocess.run(["cargo", "build", "-q", "--features", features, "--example", "bench"], cwd=ROOT, check=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return str(target / "debug" / "examples" / "bench")


class OursServer:
    """One `examples/bench --serve` process: the library loaded once, then timed one run
    at a time on request, so that its runs can be interleaved with other runtimes'."""

    def __init__(self, bench, model_dir, corpus, functions, options, env=None):
        command = [bench, str(model_dir), "--corpus", str(corpus), "--functions", str(functions), "--serve"]
        command += options
        for p in PROBES:
            command += ["--probe", p]
        self.command = " ".join(command)
        self.process = subprocess.Popen(command, cwd=ROOT, env=dict(os.environ, **(env or {})),
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        # Its first line says it has loaded: the next server's load does not overlap this one's.
        self._reply("loading")

    def _reply(self, request):
        reply = self.process.stdout.readline()
        if not reply:
            sys.exit(f"{self.command} stopped ({self.process.wait()}) on {request!r}")
        return json.loads(reply)

    def _ask(self, request):
        self.process.stdin.write(request + "\n")
        self.process.stdin.flush()
        return self._reply(request)

    def latency(self, tokens):
        """Seconds of one batch-1 run of `tokens` tokens."""
        return self._ask(f"latency {tokens}")["seconds"]

    def throughput(self):
        """One pass over the corpus: functions/s; its probabilities and logits are kept in
        `probabilities` and `logits`."""
        reply = self._ask("throughput")
        self.probabilities = reply["insecure_probabilities"]
        self.logits = reply["logits"]
        return reply["functions_per_second"]

    def finish(self):
        """Ends the process and returns its report (load time, peak memory, probes' logits, peak rates)."""
        out, _ = self.process.communicate()
        if self.process.returncode != 0:
            sys.exit(f"{self.command} failed ({self.process.returncode})")
        return json.loads(out)


def interleave(jobs, rounds):
    """Runs each of `jobs` (name -> callable) once per round, the order rotated from round
    to round; returns name -> the results in round order."""
    names = list(jobs)
    results = {name: [] for name in names}
    for r in range(rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            results[name].append(jobs[name]())
            # Lets the runtime just timed park its worker threads, which spin for a
            # while after a run, before the next one starts.
            time.sleep(0.05)
    return results


def interleaved_latencies(jobs_at, rounds):
    """Batch-1 latencies at each of LENGTHS: `jobs_at(n)` (name -> one timed run of n
    tokens) run once each as a warm-up, then interleaved for `rounds` rounds; returns
    n -> name -> the seconds in round order."""
    latency = {}
    for n in LENGTHS:
        print(f"timing batch-1 latency at {n} tokens, {rounds} rounds ...", file=sys.stderr)
        jobs = jobs_at(n)
        for job in jobs.values():
            job()
        latency[n] = interleave(jobs, rounds)
    return latency


def run_bench(command, env=None):
    """The JSON report of one `examples/bench` run; exits with its stderr if it fails."""
    result = subprocess.run(command, cwd=ROOT, env=dict(os.environ, **(env or {})), capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return json.loads(result.stdout)


def update_section(path, heading, section):
    """Replaces the section under `heading` in the markdown file `path` with `section`
    (appending it where there is none)."""
    path = Path(path)
    text = path.read_text()
    pattern = re.compile(re.escape(heading) + r".*?(?=\n## |\Z)", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section.rstrip("\n"), text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text if text.endswith("\n") else text + "\n")
