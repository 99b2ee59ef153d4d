"""The benchmarks' shared pieces: the codebert-base-shaped random checkpoint, the probe
texts and token lengths, and the encoder's operation count."""

import json
import shutil
from pathlib import Path

import torch
from transformers import RobertaConfig, RobertaForSequenceClassification

LENGTHS = [64, 128, 256, 512]
PROBES = [
    "int main(void) { return 0; }",
    "void copy(char *dst, const char *src, size_t n)\n{\n    memcpy(dst, src, n);\n}\n",
]


def flops_per_pass(tokens, hidden=768, layers=12, intermediate=3072):
    """Multiply-adds x2 of the encoder's matrix products (embeddings and head are negligible)."""
    s, h, i = tokens, hidden, intermediate
    per_layer = 4 * 2 * s * h * h + 2 * 2 * s * h * i + 2 * 2 * s * s * h
    return layers * per_layer


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
