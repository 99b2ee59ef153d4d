"""Fine-tuning through the package (``train``): each step and the trained model's logits
against what transformers and torch.optim.AdamW recorded for the same recipes
(tests/fixtures/training/reference.json, from make_fixtures.py); a run its callback
stops, or whose callback raises, writes nothing; bad arguments are named."""

import json
import os
import signal
import sys
from pathlib import Path

import pytest

import insecure_code_detector as icd
from insecure_code_detector import Detector

CHECKOUT = Path(os.environ.get("ICD_CHECKOUT") or Path(__file__).resolve().parents[3])
FIXTURES = CHECKOUT / "tests" / "fixtures"
MODEL = FIXTURES / "roberta-2-labels"
REFERENCE = json.loads((FIXTURES / "training" / "reference.json").read_text())


def rows(name):
    lines = (FIXTURES / "training" / name).read_text().splitlines()
    return [(row["func"], row["target"]) for row in map(json.loads, lines)]


def recipe(spec):
    """The reference's recipe as train()'s keywords: dropout 0, examples in file order."""
    kwargs = {
        "epochs": spec["epochs"],
        "batch_size": spec["batch_size"],
        "gradient_accumulation": spec["gradient_accumulation"],
        "learning_rate": spec["lr"],
        "weight_decay": spec["weight_decay"],
        "max_grad_norm": spec["max_grad_norm"],
        "dropout": 0.0,
        "shuffle": False,
    }
    if "warmup_ratio" in spec:
        kwargs["warmup_ratio"] = spec["warmup_ratio"]
    else:
        kwargs["warmup_steps"] = spec["warmup_steps"]
    for key in ("train_layers", "class_weight"):
        if key in spec:
            kwargs[key] = spec[key]
    return kwargs


@pytest.mark.parametrize("name", sorted(REFERENCE["recipes"]))
def test_every_step_and_the_trained_logits_match_pytorch(tmp_path, name):
    expected = REFERENCE["recipes"][name]
    steps = []
    out = icd.train(MODEL, rows("train.jsonl"), tmp_path / "out", on_step=steps.append, **recipe(expected["recipe"]))
    assert out == tmp_path / "out"
    want = expected["steps"]
    assert [s.step for s in steps] == [w["step"] for w in want]
    for ours, theirs in zip(steps, want):
        assert ours.total_steps == len(want)
        assert ours.epoch == theirs["epoch"]
        assert abs(ours.loss - theirs["loss"]) <= 1e-4, (ours, theirs)
        assert abs(ours.grad_norm - theirs["grad_norm"]) <= 1e-4 * theirs["grad_norm"], (ours, theirs)
        assert abs(ours.lr - theirs["lr"]) <= 1e-12, (ours, theirs)
    heldout = [code for code, _ in rows("heldout.jsonl")]
    with Detector(out) as detector:
        logits = [p.logits for p in detector.predict_batch(heldout)]
    for i, (ours, theirs) in enumerate(zip(logits, expected["heldout_logits"])):
        assert max(abs(a - b) for a, b in zip(ours, theirs)) <= 1e-4, (i, ours, theirs)
    written = json.loads((out / "training.json").read_text())
    assert written["recipe"]["learning_rate"] == expected["recipe"]["lr"]


def test_a_run_its_callback_stops_writes_nothing(tmp_path):
    out = tmp_path / "out"
    seen = []

    def stop_at_two(step):
        seen.append(step.step)
        return step.step < 2

    with pytest.raises(icd.StoppedError, match="after step 2"):
        icd.train(MODEL, rows("train.jsonl"), out, on_step=stop_at_two, epochs=2, batch_size=4)
    assert seen == [1, 2]
    assert not out.exists()

    def raises(step):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        icd.train(MODEL, rows("train.jsonl"), out, on_step=raises, epochs=1, batch_size=4)
    assert not out.exists()

    # A real Ctrl-C: the signal is recorded, the next step stops the run, and
    # KeyboardInterrupt is raised once the library has returned.
    seen.clear()

    before = signal.getsignal(signal.SIGINT)
    escaped = []

    def interrupt_at_one(step):
        seen.append(step.step)
        if step.step == 1:
            # Python's handler would raise here, inside on_step; the recording one does not.
            assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
            try:
                os.kill(os.getpid(), signal.SIGINT)
            except KeyboardInterrupt:
                escaped.append(step.step)

    with pytest.raises(KeyboardInterrupt):
        icd.train(MODEL, rows("train.jsonl"), out, on_step=interrupt_at_one, epochs=2, batch_size=4)
    assert escaped == [], "the signal was raised in on_step, not recorded"
    assert seen == [1]
    assert not out.exists()
    assert signal.getsignal(signal.SIGINT) is before
    assert list(tmp_path.iterdir()) == []


def test_a_stop_on_the_last_step_ends_the_run_normally(tmp_path):
    data = rows("train.jsonl")
    steps = []

    def stop_always(step):
        steps.append(step)
        return step.step < step.total_steps

    out = icd.train(MODEL, data, tmp_path / "out", on_step=stop_always, epochs=1, batch_size=len(data))
    assert [s.step for s in steps] == [1]
    assert (out / "model.safetensors").is_file()

    # An exception on the last step is raised even so, the checkpoint written.
    def raises_at_the_end(step):
        if step.step == step.total_steps:
            raise RuntimeError("late")

    with pytest.raises(RuntimeError, match="late") as late:
        icd.train(MODEL, data, tmp_path / "late", on_step=raises_at_the_end, epochs=1, batch_size=len(data))
    assert (tmp_path / "late" / "model.safetensors").is_file()
    if sys.version_info >= (3, 11):
        assert any("is written" in note for note in late.value.__notes__)
    # An empty validation list is no validation.
    record = json.loads((out / "training.json").read_text())
    icd.train(MODEL, data, tmp_path / "again", validation=[], epochs=1, batch_size=len(data))
    again = json.loads((tmp_path / "again" / "training.json").read_text())
    assert again["epochs"][0]["validation_accuracy"] is None
    assert again["data"] == record["data"]


def test_what_cannot_train_is_refused_by_name(tmp_path):
    out = tmp_path / "out"
    data = rows("train.jsonl")
    with pytest.raises(icd.InvalidArgumentError, match="unknown field `lr`"):
        icd.train(MODEL, data, out, lr=1e-3)
    with pytest.raises(icd.InvalidArgumentError, match="learning_rate"):
        icd.train(MODEL, data, out, learning_rate=2.0)
    with pytest.raises(icd.InvalidArgumentError, match="warmup_ratio"):
        icd.train(MODEL, data, out, warmup_steps=1, warmup_ratio=0.1)
    with pytest.raises(icd.InvalidArgumentError, match="`learning_rate` is nan"):
        icd.train(MODEL, data, out, learning_rate=float("nan"))
    with pytest.raises(icd.InvalidArgumentError, match="`seed`"):
        icd.train(MODEL, data, out, seed=object())
    with pytest.raises(icd.InvalidArgumentError, match="`warmup_ratio` is inf"):
        icd.train(MODEL, data, out, warmup_ratio=float("inf"))
    with pytest.raises(icd.InvalidArgumentError, match="`warmup_steps`"):
        icd.train(MODEL, data, out, warmup_steps=object())
    with pytest.raises(icd.InvalidArgumentError, match=r"row 2: label 7"):
        icd.train(MODEL, [data[0], (data[1][0], 7)], out)
    with pytest.raises(icd.InvalidArgumentError, match=r"`train\[1\]`"):
        icd.train(MODEL, [data[0], (data[1][0], "1")], out)
    with pytest.raises(icd.InvalidArgumentError, match=r"`validation\[0\]`"):
        icd.train(MODEL, data, out, validation=["not a pair"])
    with pytest.raises(icd.InvalidArgumentError, match="at least two labels"):
        icd.train(MODEL, [(code, 0) for code, _ in data], out)
    with pytest.raises(icd.FileAccessError):
        icd.train(tmp_path / "no-such-model", data, out)
    assert not out.exists()
    (out / "kept").mkdir(parents=True)
    with pytest.raises(icd.InvalidArgumentError, match="not empty"):
        icd.train(MODEL, data, out, epochs=1)
    assert [p.name for p in out.iterdir()] == ["kept"]
