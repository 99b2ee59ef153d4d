"""The Ray path on a local Ray with 2 CPUs: predictions over the nginx corpus equal
single-process predict_batch bit for bit, every input row comes back exactly once with
its other columns, also when an actor dies halfway (Ray restarts it and retries its
batch), and the command writes what it read."""

import json
import os
import sys
from pathlib import Path

import pytest

import insecure_code_detector as icd
from insecure_code_detector import Detector

CHECKOUT = Path(os.environ.get("ICD_CHECKOUT") or Path(__file__).resolve().parents[3])
MODEL = CHECKOUT / "tests" / "fixtures" / "roberta-2-labels"
SHARED = Path(os.environ.get("ICD_SHARED_DIR") or CHECKOUT.parent / "shared")

try:
    import ray
    import ray.cloudpickle
    from insecure_code_detector.ray import DetectorActor, main, predict
except ImportError:
    if os.environ.get("CI"):
        raise
    pytest.skip("ray is not installed (pip install 'ray[data]'; scripts/test installs it)", allow_module_level=True)


@pytest.fixture(scope="module")
def local_ray():
    package_parent = str(Path(icd.__file__).resolve().parents[1])
    env = {"PYTHONPATH": os.pathsep.join([package_parent, os.environ.get("PYTHONPATH", "")])}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env})
    yield
    ray.shutdown()


def corpus():
    path = SHARED / "c-corpus" / "nginx.jsonl"
    if not path.is_file():
        pytest.skip(f"SKIPPED: {path} is absent; set ICD_SHARED_DIR")
    return [json.loads(line)["func"] for line in path.read_text().splitlines() if line.strip()]


class DiesOnce(DetectorActor):
    """Exits its process, once (a marker file says whether it has), on the batch holding
    row `row`: a worker that dies halfway through the corpus."""

    marker = None
    row = None

    def __call__(self, batch):
        if self.row in set(batch["idx"].tolist()) and not os.path.exists(self.marker):
            Path(self.marker).write_text("died")
            os._exit(1)
        return super().__call__(batch)


def test_ray_predictions_equal_predict_batch_and_every_row_comes_back_once(local_ray, tmp_path):
    codes = corpus()
    with Detector(MODEL) as detector:
        expected = detector.predict_batch(codes)
    rows = [{"idx": i, "func": code, "origin": f"nginx:{i}"} for i, code in enumerate(codes)]
    # The actor class is defined here, in a module the workers cannot import: by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    DiesOnce.marker = str(tmp_path / "died")
    DiesOnce.row = len(rows) // 2
    scored = predict(ray.data.from_items(rows), str(MODEL), concurrency=2, batch_size=25, threads=1,
                     actor=DiesOnce).take_all()
    assert (tmp_path / "died").read_text() == "died", "no actor died: the retry went untested"
    assert sorted(r["idx"] for r in scored) == list(range(len(rows)))
    for r in scored:
        want = expected[r["idx"]]
        assert r["origin"] == f"nginx:{r['idx']}" and r["func"] == codes[r["idx"]]
        # The same floats, bit for bit.
        assert list(r["logits"]) == want.logits
        assert float(r["insecure_probability"]) == want.insecure_probability
        assert (r["label"], r["label_name"], r["tokens"], bool(r["truncated"])) == (
            want.label, want.label_name, want.tokens, want.truncated)


def test_the_command_scores_jsonl_and_source_trees(local_ray, tmp_path):
    data = tmp_path / "test.jsonl"
    data.write_text("".join(json.dumps({"idx": i, "func": f"int f{i}(void) {{ return {i}; }}", "target": i % 2}) + "\n"
                            for i in range(10)))
    assert main(["--model", str(MODEL), str(data), "--output", str(tmp_path / "out"), "--format", "jsonl"]) == 0
    written = [json.loads(line) for f in sorted((tmp_path / "out").glob("*.json*")) for line in f.read_text().splitlines()]
    assert sorted(r["idx"] for r in written) == list(range(10))
    assert all({"target", "insecure_probability", "logits", "label_name"} <= set(r) for r in written)

    tree = tmp_path / "src"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.c").write_text("int a(void) { return 0; }\nint b(int x) { return x; }\n")
    (tree / "sub" / "c.cpp").write_text("struct S { int m() const { return 1; } };\n")
    (tree / "notes.txt").write_text("int not_code(void) { return 0; }\n")
    assert main(["--model", str(MODEL), str(tree), "--output", str(tmp_path / "tree-out")]) == 0
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "tree-out").to_pylist()
    assert sorted((Path(r["file"]).name, r["function"]) for r in table) == [("a.c", "a"), ("a.c", "b"), ("c.cpp", "m")]
    with Detector(MODEL) as detector:
        for r in table:
            assert r["insecure_probability"] == detector.predict(r["func"]).insecure_probability


def test_columns_the_predictions_would_overwrite_are_refused(local_ray):
    rows = [{"func": "int f(void) { return 0; }", "label": 1}]
    with pytest.raises(Exception, match="would overwrite"):
        predict(ray.data.from_items(rows), str(MODEL)).take_all()
    renamed = ray.data.from_items(rows).rename_columns({"label": "target"})
    assert predict(renamed, str(MODEL)).take_all()[0]["target"] == 1
