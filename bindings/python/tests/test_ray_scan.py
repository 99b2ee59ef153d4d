"""The distribution-scale scan (insecure_code_detector.ray.scan_trees) on a local
multi-node Ray cluster: a head and two worker nodes on this machine
(ray.cluster_utils.Cluster), over a source tree with vendored copies of the nginx
functions. Every occurrence comes back exactly once with the logits one process gives,
bit for bit; each distinct text is classified once; the driver's memory stays flat as
the tree grows tenfold; a run survives losing a worker node; a killed driver's run is
continued over its output, classifying only what was missing; a finished run is not run
again; and a shared prediction cache makes a second run classify nothing."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import insecure_code_detector as icd
from insecure_code_detector import Detector

CHECKOUT = Path(os.environ.get("ICD_CHECKOUT") or Path(__file__).resolve().parents[3])
MODEL = CHECKOUT / "tests" / "fixtures" / "roberta-2-labels"
SHARED = Path(os.environ.get("ICD_SHARED_DIR") or CHECKOUT.parent / "shared")
PACKAGE_PARENT = str(Path(icd.__file__).resolve().parents[1])

try:
    import pyarrow.parquet as pq
    import ray
    from ray.cluster_utils import Cluster

    from insecure_code_detector.ray import ScanError, scan_trees
except ImportError:
    if os.environ.get("CI"):
        raise
    pytest.skip("ray is not installed (pip install 'ray[data]'; scripts/test installs it)", allow_module_level=True)

# How much more the driver may hold at its peak when the tree is ten times larger: the
# larger tree's code is 23 MiB, which a driver holding it (as rows, in Python) would
# hold several times over.
DRIVER_GROWTH_BOUND_MIB = 16


def nginx_functions():
    path = SHARED / "c-corpus" / "nginx.jsonl"
    if not path.is_file():
        pytest.skip(f"SKIPPED: {path} is absent; set ICD_SHARED_DIR")
    return [json.loads(line)["func"] for line in path.read_text().splitlines() if line.strip()]


def make_tree(root: Path, copies: int) -> Path:
    """The nginx functions in 12 files of 50, under ``src/``, and ``copies - 1``
    vendored copies of those files under ``vendor/copyN/`` (byte-identical, as vendored
    libraries are), plus a file of its own in each copy (one distinct function), and a
    binary file (a gap)."""
    functions = nginx_functions()
    for copy in range(copies):
        directory = root / ("src" if copy == 0 else f"vendor/copy{copy}")
        directory.mkdir(parents=True)
        for i in range(0, len(functions), 50):
            (directory / f"part{i // 50:02d}.c").write_text("\n\n".join(functions[i:i + 50]) + "\n")
        (directory / "own.c").write_text(f"int own_{copy}(int x)\n{{\n    return x + {copy};\n}}\n")
    (root / "src" / "blob.c").write_bytes(b"int f(void) { return 0; }\0")
    return root


@pytest.fixture(scope="module")
def cluster():
    """A head (no CPUs: it runs no work) and two worker nodes of one CPU each."""
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    env = {"PYTHONPATH": os.pathsep.join([PACKAGE_PARENT, os.environ.get("PYTHONPATH", "")])}
    ray.init(address=cluster.address, log_to_driver=False, runtime_env={"env_vars": env})
    yield cluster, workers
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_tree(tmp_path_factory.mktemp("tree"), copies=3)


@pytest.fixture(scope="module")
def expected(tree):
    """What one process finds and gives: each occurrence's prediction by its place."""
    found = icd.find_functions_under([tree])
    with Detector(MODEL) as detector:
        predictions = detector.predict_batch([f.code for f in found.functions])
    by_place = {(f.file, f.start_line, f.end_line, f.name): p for f, p in zip(found.functions, predictions)}
    assert len(by_place) == len(found.functions)
    return found, by_place


def rows_of(output: Path):
    return pq.read_table(output).to_pylist()


def check_output(output: Path, expected):
    """Every occurrence exactly once, with its file, lines, name and the single
    process's prediction, bit for bit."""
    found, by_place = expected
    rows = rows_of(output)
    places = [(r["file"], r["start_line"], r["end_line"], r["function"]) for r in rows]
    assert sorted(places) == sorted(by_place), "not every occurrence exactly once"
    for r, place in zip(rows, places):
        want = by_place[place]
        assert list(r["logits"]) == want.logits, place
        assert r["insecure_probability"] == want.insecure_probability
        assert (r["label"], r["label_name"], r["tokens"], r["truncated"]) == (
            want.label, want.label_name, want.tokens, want.truncated)
    gaps = [json.loads(line) for line in (output / "_gaps.jsonl").read_text().splitlines()]
    assert sorted((g["file"], g["message"]) for g in gaps) == sorted((g.file, g.message) for g in found.gaps)
    assert any("binary" in g["message"] for g in gaps)
    return rows


def distinct_texts(expected):
    return len({f.code for f in expected[0].functions})


def test_every_occurrence_once_with_one_processs_logits_and_each_text_classified_once(cluster, tree, expected,
                                                                                      tmp_path):
    summary = scan_trees([tree], str(MODEL), tmp_path / "out", files_per_task=5, buckets=6, concurrency=2, threads=1)
    rows = check_output(tmp_path / "out", expected)
    found = expected[0]
    distinct = distinct_texts(expected)
    # Three copies of 600 functions (some repeated within nginx) and three of their own.
    assert distinct < len(found.functions) / 2
    assert summary["functions"] == len(rows) == len(found.functions)
    assert summary["distinct_functions"] == summary["model_calls"] == distinct
    assert summary["model_calls_saved"] == len(found.functions) - distinct
    assert summary["files"] == 3 * 13 + 1 and summary["gaps"] == len(found.gaps)
    # Each key is one text, and all of a text's occurrences share it.
    assert len({r["key"] for r in rows}) == distinct
    assert len({(r["key"], r["func"]) for r in rows}) == distinct
    assert not (tmp_path / "out" / "_work").exists()


def run_driver(args, timeout=300):
    """The command, as a separate driver process joining the cluster: its summary."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([PACKAGE_PARENT, os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-m", "insecure_code_detector.ray", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_drivers_memory_stays_flat_as_the_tree_grows_tenfold(cluster, tmp_path):
    small = make_tree(tmp_path / "small", copies=3)
    large = make_tree(tmp_path / "large", copies=30)
    code_mib = sum(p.stat().st_size for p in large.rglob("*.c")) / (1 << 20)
    assert code_mib > 20
    common = ["--model", str(MODEL), "--address", cluster[0].address, "--files-per-task", "20", "--concurrency", "2",
              "--threads", "1"]
    first = run_driver([str(small), "--output", str(tmp_path / "small-out"), *common])
    second = run_driver([str(large), "--output", str(tmp_path / "large-out"), *common])
    assert second["functions"] == 10 * first["functions"]
    growth = second["driver_peak_rss_mib"] - first["driver_peak_rss_mib"]
    print(f"driver peak RSS: {first['driver_peak_rss_mib']} MiB over {first['functions']} functions, "
          f"{second['driver_peak_rss_mib']} MiB over {second['functions']} ({code_mib:.1f} MiB of code)")
    assert growth < DRIVER_GROWTH_BOUND_MIB, (first, second)


def test_a_run_survives_losing_a_worker_node(cluster, tree, expected, tmp_path):
    head_cluster, workers = cluster
    output = tmp_path / "out"
    result = {}

    def run():
        try:
            result["summary"] = scan_trees([tree], str(MODEL), output, files_per_task=2, buckets=12, concurrency=2,
                                           threads=1)
        except BaseException as e:  # reported below
            result["error"] = e

    thread = threading.Thread(target=run)
    thread.start()
    # Once the classify step has committed a bucket, a worker node goes.
    deadline = time.monotonic() + 240
    while not list(output.glob("part-*.parquet")) and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.05)
    committed = len(list(output.glob("part-*.parquet")))
    head_cluster.remove_node(workers.pop(0))
    # A node joins in its place (as an autoscaler's would): the restarted actor needs its
    # CPU, and the tests after this one a second worker.
    workers.append(head_cluster.add_node(num_cpus=1))
    thread.join(timeout=600)
    assert not thread.is_alive(), "the run did not finish after the node was lost"
    assert "error" not in result, result.get("error")
    assert 0 < committed < 12, f"{committed} buckets were committed when the node went: the loss went untested"
    check_output(output, expected)
    assert result["summary"]["functions"] == len(expected[0].functions)


SLOW_DRIVER = """
import sys, time
import ray
from insecure_code_detector.ray import BucketClassifier, scan_trees

class Slow(BucketClassifier):
    def __call__(self, batch):
        time.sleep(0.5)
        return super().__call__(batch)

ray.init(address=sys.argv[1])
scan_trees([sys.argv[2]], sys.argv[3], sys.argv[4], files_per_task=5, buckets=12, concurrency=1, threads=1,
           actor=Slow)
"""


def test_a_killed_drivers_run_continues_over_its_output_and_a_finished_one_is_not_run_again(cluster, tree, expected,
                                                                                            tmp_path):
    address = cluster[0].address
    output = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([PACKAGE_PARENT, os.environ.get("PYTHONPATH", "")]))
    driver = subprocess.Popen([sys.executable, "-c", SLOW_DRIVER, address, str(tree), str(MODEL), str(output)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 240
    while len(list(output.glob("part-*.parquet"))) < 2 and time.monotonic() < deadline and driver.poll() is None:
        time.sleep(0.05)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    # The job's workers go with their driver; what they committed stays.
    time.sleep(5)
    committed = sorted(p.name for p in output.glob("part-*.parquet"))
    assert 2 <= len(committed) < 12, f"{len(committed)} of 12 buckets committed: the kill went untested"
    assert not (output / "_summary.json").exists()

    args = [str(tree), "--model", str(MODEL), "--output", str(output), "--address", address, "--files-per-task", "5",
            "--buckets", "12", "--threads", "1"]
    resumed = run_driver(args)
    check_output(output, expected)
    assert resumed["buckets_already_done"] == len(committed)
    # Only what was missing was classified: the distinct texts of the other buckets.
    rows = rows_of(output)
    done_before = {r["key"] for name in committed for r in pq.read_table(output / name).to_pylist()}
    assert resumed["model_calls"] == distinct_texts(expected) - len(done_before) > 0
    assert resumed["functions"] == len(expected[0].functions) == len(rows)

    # Finished: the same summary, nothing written.
    before = {p.name: p.stat().st_mtime_ns for p in output.iterdir()}
    assert run_driver(args) == resumed
    assert {p.name: p.stat().st_mtime_ns for p in output.iterdir()} == before
    # Other settings are another run, refused by name.
    refused = subprocess.run([sys.executable, "-m", "insecure_code_detector.ray", *args, "--precision", "int8"],
                             env=env, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "differs in options" in refused.stderr, refused.stderr[-2000:]
    with pytest.raises(ScanError, match="not empty and holds no scan"):
        scan_trees([tree], str(MODEL), tree)


def test_runs_sharing_a_prediction_cache_classify_only_what_is_new(cluster, tree, expected, tmp_path):
    cache = tmp_path / "cache"
    first = scan_trees([tree], str(MODEL), tmp_path / "first", buckets=3, threads=1, prediction_cache=str(cache))
    assert first["model_calls"] == distinct_texts(expected)
    # The next night: one new file, the rest unchanged.
    (tree / "src" / "new.c").write_text("int added_tonight(int x)\n{\n    return x * 2;\n}\n")
    try:
        second = scan_trees([tree], str(MODEL), tmp_path / "second", buckets=3, threads=1, prediction_cache=str(cache))
    finally:
        (tree / "src" / "new.c").unlink()
    assert second["model_calls"] == 1
    assert second["functions"] == first["functions"] + 1
    new = [r for r in rows_of(tmp_path / "second") if r["function"] == "added_tonight"]
    with Detector(MODEL) as detector:
        assert list(new[0]["logits"]) == detector.predict(new[0]["func"]).logits


def test_a_bucket_without_texts_has_the_columns_of_the_others(cluster, tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a.c").write_text("int a(void) { return 0; }\nint b(int x) { return x; }\n")
    (tree / "copy.c").write_text("int a(void) { return 0; }\n")
    for output_format in ("parquet", "jsonl"):
        output = tmp_path / output_format
        summary = scan_trees([tree], str(MODEL), output, buckets=8, threads=1, output_format=output_format)
        assert (summary["functions"], summary["distinct_functions"], summary["model_calls"]) == (3, 2, 2)
        assert len(list(output.glob(f"part-*.{output_format}"))) == 8
    rows = rows_of(tmp_path / "parquet")
    assert sorted((Path(r["file"]).name, r["function"]) for r in rows) == [("a.c", "a"), ("a.c", "b"), ("copy.c", "a")]
    schemas = {str(pq.read_schema(f)) for f in (tmp_path / "parquet").glob("part-*.parquet")}
    assert len(schemas) == 1
    written = [json.loads(line) for f in sorted((tmp_path / "jsonl").glob("part-*.jsonl"))
               for line in f.read_text().splitlines()]
    assert sorted((r["file"], r["start_line"], r["logits"]) for r in written) == sorted(
        (r["file"], r["start_line"], list(r["logits"])) for r in rows)


def test_what_would_corrupt_a_run_is_refused_before_anything_is_written(cluster, tmp_path):
    import fcntl

    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a.c").write_text("int a(void) { return 0; }\n")
    # Settings the workers would refuse.
    for options, needle in [({"precision": "fp16"}, "precision 'fp16'"), ({"backend": "tpu"}, "backend 'tpu'"),
                            ({"max_file_size": 1 << 40}, "max_file_size")]:
        output = tmp_path / "refused"
        with pytest.raises(Exception, match=needle):
            scan_trees([tree], str(MODEL), output, **options)
        assert not (output / "_run.json").exists()
    with pytest.raises(ScanError, match="no config.json"):
        scan_trees([tree], str(tree), tmp_path / "no-model")
    (tmp_path / "a-file").write_text("")
    with pytest.raises(ScanError, match="is not a directory"):
        scan_trees([tree], str(MODEL), tmp_path / "a-file")
    # A second driver while one holds the directory.
    output = tmp_path / "out"
    output.mkdir()
    with open(output / "_run.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(ScanError, match="being written by another run"):
            scan_trees([tree], str(MODEL), output)
    # A finished run whose file changed since is another run, not its stale summary.
    summary = scan_trees([tree], str(MODEL), output, threads=1)
    assert scan_trees([tree], str(MODEL), output, threads=1) == summary
    (tree / "a.c").write_text("int a(void) { return 1; }\n")
    with pytest.raises(ScanError, match="differs in listing_sha256"):
        scan_trees([tree], str(MODEL), output, threads=1)
    # What is written is readable by whoever the umask lets read it.
    umask = os.umask(0)
    os.umask(umask)
    for written in (output / "_summary.json", next(output.glob("part-*.parquet"))):
        assert written.stat().st_mode & 0o777 == 0o666 & ~umask, written
    # Settings that only the classify step reads may change while nothing is classified.
    (tree / "a.c").write_text("int a(void) { return 0; }\nint b(int x) { return x; }\n")
    fresh = tmp_path / "fresh"
    scan_trees([tree], str(MODEL), fresh, threads=1)
    for name in ["_summary.json", "_gaps.jsonl", *(p.name for p in fresh.glob("part-*"))]:
        (fresh / name).unlink()
    summary = scan_trees([tree], str(MODEL), fresh, threads=1, precision="int8")
    with Detector(MODEL, precision="int8") as detector:
        for r in rows_of(fresh):
            assert list(r["logits"]) == detector.predict(r["func"]).logits
    with pytest.raises(ScanError, match="differs in options"):
        scan_trees([tree], str(MODEL), fresh, threads=1, precision="f32")
    # A worker's error ends the command with its own message, naming the file.
    blob = tmp_path / "blob.c"
    blob.write_bytes(b"int f(void) { return 0; }\0")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([PACKAGE_PARENT, os.environ.get("PYTHONPATH", "")]))
    failed = subprocess.run([sys.executable, "-m", "insecure_code_detector.ray", str(blob), "--model", str(MODEL),
                             "--output", str(tmp_path / "failed"), "--address", cluster[0].address],
                            env=env, capture_output=True, text=True, timeout=300)
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error: ")]
    assert failed.returncode == 2 and len(errors) == 1, failed.stderr[-3000:]
    assert errors[0] == f"error: refusing {blob}: not scanned: a binary file (a NUL byte at offset 25)"
    # A cache path that cannot be a directory, an output path the Parquet writer cannot
    # take, a record that is not one: refused before the run.
    with pytest.raises(ScanError, match="prediction_cache .* cannot be a cache directory"):
        scan_trees([tree], str(MODEL), tmp_path / "cached", prediction_cache=str(tree / "a.c"))
    with pytest.raises(ScanError, match="is not UTF-8"):
        scan_trees([tree], str(MODEL), os.fsdecode(os.fsencode(str(tmp_path)) + b"/out\xff"))
    (tmp_path / "bad-record").mkdir()
    (tmp_path / "bad-record" / "_run.json").write_text("[]")
    with pytest.raises(ScanError, match="is not a run's record"):
        scan_trees([tree], str(MODEL), tmp_path / "bad-record")
    # A bad path in a source is named.
    with pytest.raises(icd.InvalidArgumentError, match=r"sources\[0\]\.path"):
        icd.find_functions_in_sources([icd.Source(path="a.c", language="c", named=False)])
