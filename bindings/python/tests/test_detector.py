"""The Python package against transformers' reference outputs and the C API's contract.

Needs the built shared library (``cargo build``; ICD_LIBRARY to point elsewhere)."""

import os
import re
import json
import shutil
import threading
import warnings
from pathlib import Path

import pytest

import insecure_code_detector as icd
from insecure_code_detector import Detector

# The checkout whose fixtures the tests read: ICD_CHECKOUT when the tests run from a copy
# outside it (against an installed wheel), else the one this file is in.
CHECKOUT = Path(os.environ.get("ICD_CHECKOUT") or Path(__file__).resolve().parents[3])
FIXTURES = CHECKOUT / "tests" / "fixtures"
CHECKPOINTS = ["roberta-2-labels", "roberta-1-label-old-config", "roberta-5-labels"]
TOLERANCE = 1e-4


def reference(checkpoint):
    return json.loads((FIXTURES / checkpoint / "reference.json").read_text())


def max_diff(a, b):
    assert len(a) == len(b)
    return max((abs(x - y) for x, y in zip(a, b)), default=0.0)


@pytest.mark.parametrize("checkpoint", CHECKPOINTS)
@pytest.mark.parametrize("mode", ["raw", "collapse_whitespace"])
def test_logits_match_transformers(checkpoint, mode):
    ref = reference(checkpoint)
    with Detector(FIXTURES / checkpoint, preprocessing=mode) as detector:
        texts = [entry["text"] for entry in ref["inputs"]]
        batch = detector.predict_batch(texts)
        for entry, from_batch in zip(ref["inputs"], batch):
            expected = entry[mode]
            single = detector.predict(entry["text"])
            assert max_diff(single.logits, expected["logits"]) <= TOLERANCE, entry["text"][:40]
            assert max_diff(from_batch.logits, expected["logits"]) <= TOLERANCE, entry["text"][:40]
            assert single.tokens == len(expected["input_ids"])
            assert single.truncated == expected["truncated"]
            assert single.label_name == detector.labels[single.label]
            assert 0.0 <= single.insecure_probability <= 1.0


@pytest.mark.parametrize("checkpoint", CHECKPOINTS)
@pytest.mark.parametrize("mode", ["raw", "collapse_whitespace"])
def test_explanations_match_transformers(checkpoint, mode):
    """Token scores, each token's line and the line sums, as transformers and the
    fixture script's own offsets give them; a batch equals single calls."""
    ref = reference(checkpoint)
    with Detector(FIXTURES / checkpoint, preprocessing=mode) as detector:
        texts = [entry["text"] for entry in ref["inputs"]]
        batch = detector.explain_batch(texts)
        for entry, from_batch in zip(ref["inputs"], batch):
            expected = entry[mode]
            e = detector.explain(entry["text"])
            assert e == from_batch
            assert e.prediction == detector.predict(entry["text"])
            assert [t.id for t in e.tokens] == expected["input_ids"]
            assert max_diff(e.token_scores, expected["token_scores"]) <= 1e-5, entry["text"][:40]
            assert [t.line for t in e.tokens] == expected["token_lines"]
            assert [l.line for l in e.line_scores] == [l for l, _ in expected["line_scores"]]
            assert max_diff([l.score for l in e.line_scores], [s for _, s in expected["line_scores"]]) <= 1e-5
            top = e.top_lines(2)
            assert [l.score for l in top] == sorted((l.score for l in e.line_scores), reverse=True)[:2]
        assert detector.explain_batch([]) == []


def test_prediction_fields_and_metadata():
    with Detector(FIXTURES / "roberta-5-labels", backend="auto", batch_size=2) as detector:
        assert detector.labels == ["safe", "buffer_overflow", "use_after_free", "integer_overflow", "null_dereference"]
        assert detector.max_tokens == 512
        assert detector.backend in icd.backends()
        # A packed CPU kernel on the CPU backends of a CPU with AVX2 and FMA, else tensors.
        assert re.fullmatch(r"kernel [a-z0-9]+-[a-z0-9]+ \([A-Z0-9+-]+\)|tensors f(16|32|64)|tensors bf16",
                            detector.execution), detector.execution
        # Only the GPU backends compile kernels to warm up: 7 widths x 2 input counts.
        assert detector.warm_up() == (0 if detector.backend in ("flex", "ndarray") else 14)
        p = detector.predict(b"int main(void) { return 0; }")
        assert isinstance(p, icd.Prediction)
        assert len(p.logits) == 5
        assert p.logits[p.label] == max(p.logits)
    assert icd.version()
    assert "flex" in icd.backends() or "ndarray" in icd.backends()


@pytest.mark.skipif(
    "wgpu" not in os.environ.get("ICD_TEST_BACKENDS", "").split(",") or "wgpu" not in icd.backends(),
    reason="wgpu runs where the library has it and ICD_TEST_BACKENDS names it (scripts/test does where a "
           "Vulkan driver is; the wheel's library is built without it)",
)
def test_wgpu_warms_up_its_call_shapes_and_predicts_as_the_cpu():
    codes = [b"int f(int *a) { " + b"a[0]++; " * k + b"return 0; }" for k in range(12)]
    with Detector(FIXTURES / "roberta-2-labels", backend="wgpu", max_tokens=40, batch_size=2) as gpu, \
            Detector(FIXTURES / "roberta-2-labels", max_tokens=40) as cpu:
        # Widths 16, 32 and 40 tokens, 1 or 2 inputs per call.
        assert gpu.warm_up() == 3 * 2
        for a, b in zip(gpu.predict_batch(codes), cpu.predict_batch(codes)):
            assert a.tokens == b.tokens
            assert max(abs(x - y) for x, y in zip(a.logits, b.logits)) <= 1e-4, (a.logits, b.logits)


# tf32 on a CPU backend, which has no TF32 products, is exactly f32.
@pytest.mark.parametrize("precision, tolerance", [("bf16", 1e-2), ("int8", 2e-2), ("tf32", 0.0)])
def test_reduced_precision_stays_close_to_f32(precision, tolerance):
    code = b"void f(char *s) { char b[8]; strcpy(b, s); }"
    with Detector(FIXTURES / "roberta-2-labels") as exact, Detector(FIXTURES / "roberta-2-labels", precision=precision) as reduced:
        assert abs(reduced.predict(code).insecure_probability - exact.predict(code).insecure_probability) <= tolerance


def test_errors_become_exceptions_with_the_library_message(tmp_path):
    with pytest.raises(icd.CheckpointNotFoundError, match="/nonexistent/checkpoint"):
        Detector("/nonexistent/checkpoint")
    with pytest.raises(icd.InvalidArgumentError, match="tpu"):
        Detector(FIXTURES / "roberta-2-labels", backend="tpu")
    with pytest.raises(icd.InvalidArgumentError, match="max_tokens"):
        Detector(FIXTURES / "roberta-2-labels", max_tokens=100000)
    with pytest.raises(icd.InvalidArgumentError, match="preprocessing"):
        Detector(FIXTURES / "roberta-2-labels", preprocessing="lowercase")
    with pytest.raises(icd.InvalidArgumentError, match="precision"):
        Detector(FIXTURES / "roberta-2-labels", precision="int4")

    broken = tmp_path / "broken"
    shutil.copytree(FIXTURES / "roberta-2-labels", broken)
    (broken / "config.json").write_text("{ not json")
    with pytest.raises(icd.ConfigError, match="config.json"):
        Detector(broken)
    (broken / "config.json").write_text((FIXTURES / "roberta-2-labels" / "config.json").read_text())
    (broken / "model.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(icd.WeightsError, match="model.safetensors"):
        Detector(broken)

    with Detector(FIXTURES / "roberta-2-labels") as detector:
        with pytest.raises(icd.InvalidUtf8Error, match=r"codes\[1\]"):
            detector.predict_batch([b"int x;", b"\xff\xfe"])
        with pytest.raises(icd.InvalidUtf8Error):
            detector.predict("\ud800")
        with pytest.raises(TypeError):
            detector.predict(42)
        # The detector stays usable after errors.
        assert detector.predict("int x;").tokens > 2
    with pytest.raises(icd.InvalidArgumentError, match="closed"):
        detector.predict("int x;")


def test_close_is_idempotent_and_finalizer_frees():
    detector = Detector(FIXTURES / "roberta-2-labels")
    assert not detector.closed
    detector.close()
    detector.close()
    assert detector.closed
    another = Detector(FIXTURES / "roberta-2-labels")
    finalizer = another._finalizer
    del another
    assert not finalizer.alive


def test_eight_threads_of_200_predictions_give_the_serial_results():
    ref = reference("roberta-2-labels")
    texts = [entry["text"] for entry in ref["inputs"]]
    with Detector(FIXTURES / "roberta-2-labels") as detector:
        serial = [detector.predict(t) for t in texts]
        results = {}
        errors = []

        def work(thread):
            try:
                out = []
                for round_ in range(200):
                    i = (thread * 7 + round_) % len(texts)
                    out.append((i, detector.predict(texts[i])))
                results[thread] = out
            except Exception as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert len(results) == 8
        for out in results.values():
            for i, prediction in out:
                assert prediction == serial[i]


def test_predict_windows_matches_transformers_windows():
    """The window with the highest insecure probability among transformers' windows of
    the fixture's long input; a function that fits is its own single window."""
    ref = reference("roberta-2-labels")
    long_inputs = [e for e in ref["inputs"] if "windows" in e["raw"]]
    assert long_inputs, "the fixtures have an input longer than a window"
    with Detector(FIXTURES / "roberta-2-labels") as detector:
        for entry in long_inputs:
            windows = entry["raw"]["windows"]
            w = detector.predict_windows(entry["text"], stride=windows["stride"])
            assert w.windows == len(windows["windows"])
            assert not w.prediction.truncated

            def probability(window):
                a, b = window["eager_logits"]
                return 1.0 / (1.0 + pow(2.718281828459045, a - b))

            best = max(range(len(windows["windows"])), key=lambda i: (probability(windows["windows"][i]), -i))
            assert max_diff(w.prediction.logits, windows["windows"][best]["eager_logits"]) <= TOLERANCE
            start, end = w.byte_range
            assert 0 <= start < end <= len(entry["text"].encode())
        short = "int f(int a) { return a; }"
        single = detector.predict_windows(short)
        assert single.windows == 1 and single.byte_range == (0, len(short))
        assert single.prediction == detector.predict(short)
        with pytest.raises(icd.InvalidArgumentError, match="stride"):
            detector.predict_windows(short, stride=100000)


def _icd_binary():
    for target in [Path(p) for p in [os.environ.get("CARGO_TARGET_DIR", "")] if p] + [CHECKOUT / "target"]:
        for profile in ("debug", "release"):
            if (target / profile / "icd").is_file():
                return target / profile / "icd"
    return None


def test_find_functions_equals_icd_functions_on_the_test_trees():
    import subprocess

    binary = _icd_binary()
    if binary is None:
        pytest.skip("no icd binary under target/ (cargo build)")
    trees = FIXTURES / "scan-trees"
    files = sorted(p for p in trees.iterdir() if p.suffix in (".c", ".cpp"))
    assert files
    for path in files:
        done = subprocess.run([str(binary), "functions", "--no-config", "--format", "jsonl", str(path)],
                              capture_output=True, check=True)
        expected = [json.loads(line) for line in done.stdout.decode().splitlines()]
        language = "cpp" if path.suffix == ".cpp" else "c"
        found = icd.find_functions(path.read_bytes(), language)
        assert [(f.name, f.start_line, f.end_line) for f in found] == [
            (e["function"], e["start_line"], e["end_line"]) for e in expected
        ], path.name
        assert all(e["language"] == language for e in expected)
        source = path.read_bytes()
        for f in found:
            assert source[f.byte_range[0] : f.byte_range[1]].decode() == f.code


def test_find_functions_reports_suppressions_fingerprints_and_errors():
    source = "// icd: ignore\nint a(void) { return 0; }\nint a(void) { return 0; }\n"
    found = icd.find_functions(source)
    assert [f.suppressed for f in found] == [True, False]
    # Two equal definitions: one hash, told apart by their place.
    assert found[0].fingerprint.split(":")[0] == found[1].fingerprint.split(":")[0]
    assert [f.fingerprint.split(":")[1] for f in found] == ["1", "2"]
    assert icd.find_functions("") == []
    cpp = icd.find_functions("struct S { int get() const { return 1; } };", "cpp")
    assert [f.name for f in cpp] == ["get"]
    with pytest.raises(icd.InvalidArgumentError, match="language"):
        icd.find_functions(source, "rust")
    with pytest.raises(icd.InvalidUtf8Error, match="source"):
        icd.find_functions(b"int f(void) { return '\xff'; }")


def test_find_functions_reads_a_lone_cr_as_a_line_end_as_the_library_does(tmp_path):
    # A compiler ends the `//` comment at the CR: `hidden` is code, on line 2.
    source = "int decoy(void) { return 0; } // note\rint hidden(void) { return 1; }\n"
    found = icd.find_functions(source)
    assert [(f.name, f.start_line) for f in found] == [("decoy", 1), ("hidden", 2)]
    assert found[1].code == "int hidden(void) { return 1; }"
    # The code and fingerprint agree with a scan of the same text as a file.
    (tmp_path / "f.c").write_bytes(source.encode())
    tree = icd.find_functions_under(tmp_path)
    assert [(f.code, f.fingerprint) for f in tree.functions] == [(f.code, f.fingerprint) for f in found]


def test_an_installed_package_loads_its_own_library():
    """Run against an installed wheel (ICD_EXPECT_BUNDLED_LIBRARY=1, as scripts/test does
    from outside the checkout): the library loaded is the one inside the package."""
    if os.environ.get("ICD_EXPECT_BUNDLED_LIBRARY") != "1":
        pytest.skip("not an installed-wheel run (scripts/test runs one)")
    assert "ICD_LIBRARY" not in os.environ
    package = Path(icd.__file__).resolve().parent
    assert icd.library_path().resolve().parent == package
    assert CHECKOUT not in package.parents
    assert (package / "py.typed").is_file()


def _huggingface_hub():
    try:
        import huggingface_hub  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("huggingface_hub is not installed (scripts/test installs it)")
        pytest.skip("huggingface_hub is not installed")


def test_from_pretrained_resolves_a_hub_id_offline_from_the_cache(tmp_path, monkeypatch):
    _huggingface_hub()
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--someone--tiny-roberta"
    snapshot = repo / "snapshots" / commit
    shutil.copytree(FIXTURES / "roberta-2-labels", snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "hub"
    code = "int get(int *a, int i) { return a[i]; }"
    with Detector.from_pretrained("someone/tiny-roberta", cache_dir=cache) as from_hub, \
            Detector(FIXTURES / "roberta-2-labels") as local:
        assert from_hub.predict(code) == local.predict(code)
    # A directory is used as it is.
    with Detector.from_pretrained(FIXTURES / "roberta-2-labels", precision="int8") as d:
        assert d.labels == local.labels
    with pytest.raises(icd.CheckpointNotFoundError, match="HF_HUB_OFFLINE"):
        Detector.from_pretrained("someone/absent-model", cache_dir=cache)
    # A local path that is not there is never taken for a hub id.
    for missing in [str(tmp_path / "absent"), "./models/absent", "models/deeper/absent"]:
        with pytest.raises(icd.FileAccessError, match="no checkpoint directory"):
            Detector.from_pretrained(missing, cache_dir=cache)


def _icd_jsonl(binary, args, cwd):
    import subprocess

    done = subprocess.run([str(binary), *args], capture_output=True, cwd=cwd,
                          env={**os.environ, "ICD_CACHE_DIR": str(Path(cwd) / ".icd-cache")})
    assert done.returncode in (0, 1), done.stderr.decode()
    return [json.loads(line) for line in done.stdout.decode().splitlines()], done.stderr.decode()


def _git(root, *args):
    import subprocess

    subprocess.run(["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                   check=True, capture_output=True)


def test_scan_equals_icd_scan_on_the_test_trees_and_a_git_tree(tmp_path):
    """Detector.scan: the functions icd scan classifies, with its predictions; in a git
    work tree, tracked files whatever .gitignore says and untracked ones unless it
    leaves them out, as icd does."""
    binary = _icd_binary()
    if binary is None:
        pytest.skip("no icd binary under target/ (cargo build)")
    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    (repo / "src" / "kept.c").write_text("int kept(int a) { return a; }\n")
    (repo / "src" / "tracked_but_ignored.c").write_text("int tracked(int a) { return a + 1; }\n")
    (repo / ".hidden.c").write_text("int hidden(void) { return 2; }\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "tree")
    (repo / ".gitignore").write_text("*ignored*.c\n")
    (repo / "src" / "untracked_ignored.c").write_text("int untracked_ignored(void) { return 3; }\n")
    (repo / "src" / "untracked.cpp").write_text("struct S { int m() const { return 4; } };\n")
    trees = [FIXTURES / "scan-trees", repo]
    with Detector(FIXTURES / "roberta-2-labels") as detector:
        for tree in trees:
            expected, _ = _icd_jsonl(binary, ["--model", str(FIXTURES / "roberta-2-labels"), "scan", str(tree),
                                              "--threshold", "0", "--format", "jsonl", "--no-config", "--no-cache"],
                                     cwd=tmp_path)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", icd.NotScannedWarning)
                found = list(detector.scan([tree]))
            got = [{"file": f.file, "function": f.name, "start_line": f.start_line, "end_line": f.end_line,
                    "fingerprint": f.function.fingerprint, "suppressed": f.function.suppressed,
                    "insecure_probability": f.prediction.insecure_probability, "logits": f.prediction.logits,
                    "tokens": f.prediction.tokens}
                   for f in found]
            want = [{k: e[k] for k in got[0]} for e in expected] if got else expected
            assert len(got) == len(expected) and got == want, tree
    names = {f.name for f in icd.find_functions_under([repo]).functions}
    assert names == {"kept", "tracked", "hidden", "m"}


def test_find_functions_under_names_what_it_did_not_cover(tmp_path):
    (tmp_path / "ok.c").write_text("int ok(void) { return 0; }\n")
    (tmp_path / "blob.c").write_bytes(b"int f(void) { return 0; }\0\x01")
    (tmp_path / "big.c").write_text("int big(void) { return 0; }\n" + "/* padding */\n" * 100)
    os.symlink(tmp_path / "ok.c", tmp_path / "link.c")
    found = icd.find_functions_under([tmp_path], max_file_size=500)
    assert [(Path(f.file).name, f.name, f.language) for f in found.functions] == [("ok.c", "ok", "c")]
    messages = {Path(g.file).name: g.message for g in found.gaps}
    assert "a binary file" in messages["blob.c"]
    assert "past its limit of 500 bytes" in messages["big.c"]
    assert "symbolic link" in messages["link.c"]
    with Detector(FIXTURES / "roberta-2-labels") as detector:
        with pytest.warns(icd.NotScannedWarning, match="binary file"):
            findings = list(detector.scan([tmp_path], max_file_size=500, window=True))
        assert [f.name for f in findings] == ["ok"]
        assert findings[0].prediction == detector.predict(findings[0].function.code)
    with pytest.raises(icd.FileAccessError, match="does-not-exist"):
        icd.find_functions_under(tmp_path / "does-not-exist")
    # One path, not a sequence of characters.
    assert [f.name for f in icd.find_functions_under(str(tmp_path), max_file_size=500).functions] == ["ok"]


def test_a_listing_read_in_parts_finds_what_find_functions_under_finds(tmp_path):
    (tmp_path / "sub").mkdir()
    for i in range(5):
        (tmp_path / f"f{i}.c").write_text(f"int f{i}(void) {{ return {i}; }}\n#if X\nint g{i}(\n#endif\n")
    (tmp_path / "sub" / "m.cpp").write_text("struct S { int m() const { return 1; } };\n")
    (tmp_path / "blob.c").write_bytes(b"int f(void) { return 0; }\0")
    (tmp_path / "notes.txt").write_text("int not_code(void) { return 0; }\n")
    os.symlink(tmp_path / "f0.c", tmp_path / "link.c")
    named = tmp_path / "named.txt"
    named.write_text("int named(void) { return 0; }\n")
    listing = icd.list_sources([tmp_path, named])
    names = [Path(os.fsdecode(s.path)).name for s in listing.sources]
    assert sorted(names) == ["blob.c", "f0.c", "f1.c", "f2.c", "f3.c", "f4.c", "m.cpp", "named.txt"]
    assert {Path(os.fsdecode(s.path)).name: (s.language, s.named) for s in listing.sources}["m.cpp"] == ("cpp", False)
    assert [s.named for s in listing.sources if s.path == os.fsencode(named)] == [True]
    assert [Path(g.file).name for g in listing.gaps] == ["link.c"]
    whole = icd.find_functions_under([tmp_path, named])
    parts = [icd.find_functions_in_sources(listing.sources[i:i + 3]) for i in range(0, len(listing.sources), 3)]
    assert [f for p in parts for f in p.functions] == whole.functions
    gaps = sorted([g for p in parts for g in p.gaps] + listing.gaps, key=lambda g: g.file)
    assert gaps == whole.gaps and any("binary" in g.message for g in gaps)
    # A named file that cannot be read raises, as find_functions_under does; a walked
    # one is a gap.
    named.unlink()
    with pytest.raises(icd.FileAccessError, match="named.txt"):
        icd.find_functions_in_sources([s for s in listing.sources if s.named])
    (tmp_path / "f1.c").unlink()
    gone = icd.find_functions_in_sources([s for s in listing.sources if s.path.endswith(b"f1.c")])
    assert gone.functions == [] and "f1.c" in gone.gaps[0].message
    with pytest.raises(icd.InvalidArgumentError, match="sources\\[0\\]"):
        icd.find_functions_in_sources(["f0.c"])
    # A file under two of the paths given is listed and read once.
    again = icd.list_sources([tmp_path, tmp_path, tmp_path / "sub"])
    assert [x.path for x in again.sources] == [x.path for x in icd.list_sources([tmp_path]).sources]
    assert icd.find_functions_under([tmp_path, tmp_path / "sub"]).functions == icd.find_functions_under(
        [tmp_path]).functions
    # Each function in the language its source was parsed in, a path given twice too.
    (tmp_path / "both.h").write_text("int both(void) { return 0; }\n")
    both = icd.find_functions_in_sources([icd.Source(os.fsencode(tmp_path / "both.h"), language, False)
                                          for language in ("c", "cpp")])
    assert [(f.name, f.language) for f in both.functions] == [("both", "c"), ("both", "cpp")]
    (tmp_path / "both.h").unlink()
    # A path holding a NUL byte is refused by name.
    with pytest.raises(icd.InvalidArgumentError, match=r"paths\[0\]` holds a NUL byte"):
        icd.list_sources([b"a\0b"])
    # A listed file replaced by a link since is not followed: the walk would not have.
    secret = tmp_path / "sub" / "secret.h"
    secret.write_text("int secret(void) { return 42; }\n")
    (tmp_path / "f2.c").unlink()
    os.symlink(secret, tmp_path / "f2.c")
    linked = icd.find_functions_in_sources([s for s in listing.sources if s.path.endswith(b"f2.c")])
    assert linked.functions == [] and "symbolic link (not followed)" in linked.gaps[0].message


def test_detectors_sharing_a_prediction_cache_classify_each_text_once(tmp_path):
    texts = [entry["text"] for entry in reference("roberta-2-labels")["inputs"]]
    with Detector(FIXTURES / "roberta-2-labels") as plain:
        want = plain.predict_batch(texts)
        assert plain.model_calls == len(texts)
    cache = tmp_path / "cache"
    with Detector(FIXTURES / "roberta-2-labels", prediction_cache=cache) as first:
        assert first.predict_batch(texts[:3]) == want[:3]
        assert first.model_calls == 3
    with Detector(FIXTURES / "roberta-2-labels", prediction_cache=cache) as second:
        got = second.predict_batch(texts)
        assert second.model_calls == len(texts) - 3
        assert second.predict(texts[0]) == want[0] and second.model_calls == len(texts) - 3
    # The same floats, bit for bit, from the cache as from the model.
    assert got == want
    # A text a batch repeats is classified once.
    with Detector(FIXTURES / "roberta-2-labels", prediction_cache=tmp_path / "other") as repeated:
        assert repeated.predict_batch([texts[0]] * 3) == [want[0]] * 3
        assert repeated.model_calls == 1
    # Other settings are other results: nothing is taken from the cache for them.
    with Detector(FIXTURES / "roberta-2-labels", prediction_cache=cache, preprocessing="collapse_whitespace") as other:
        other.predict_batch(texts)
        assert other.model_calls == len(texts)
    (tmp_path / "file").write_text("")
    with pytest.raises(icd.DetectorError, match="file"):
        Detector(FIXTURES / "roberta-2-labels", prediction_cache=tmp_path / "file")


def checkpoint_sha256(directory):
    """The digest a calibration file names its checkpoint by: SHA-256 over each file the
    detector reads (config, weights, tokenizer files), as its name, a newline and the
    SHA-256 of its contents."""
    import hashlib
    names = ["config.json", "model.safetensors" if (directory / "model.safetensors").exists() else "pytorch_model.bin"]
    names += ["tokenizer.json"] if (directory / "tokenizer.json").exists() else ["vocab.json", "merges.txt"]
    names += ["tokenizer_config.json"] if (directory / "tokenizer_config.json").exists() else []
    total = hashlib.sha256()
    for name in names:
        total.update(name.encode() + b"\n")
        total.update(hashlib.sha256((directory / name).read_bytes()).digest())
    return total.hexdigest()


def test_a_calibration_file_calibrates_probabilities_and_sets_the_threshold(tmp_path):
    checkpoint = FIXTURES / "roberta-2-labels"
    platt = json.loads((FIXTURES / "calibration.json").read_text())
    calibration = {
        "format": "insecure-code-detector calibration",
        "version": 1,
        "written_by": "test",
        "calibration": {"method": "platt", "a": platt["platt"]["a"], "b": platt["platt"]["b"]},
        "threshold": 0.3141,
        "target": None,
        "checkpoint": {"sha256": checkpoint_sha256(checkpoint), "labels": ["LABEL_0", "LABEL_1"]},
        "fitted_on": {"data": "test", "rows": 1, "positives": 1},
        "metrics": {},
    }
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(calibration))
    texts = [entry["text"] for entry in reference("roberta-2-labels")["inputs"]]
    want = platt["roberta-2-labels"]["probabilities"]
    with Detector(checkpoint, calibration=path) as detector:
        assert detector.threshold == pytest.approx(0.3141)
        got = [p.insecure_probability for p in detector.predict_batch(texts)]
        raw_logits = [p.logits for p in detector.predict_batch(texts)]
    assert max_diff(got, want) < 1e-6
    with Detector(checkpoint) as plain:
        assert plain.threshold is None
        assert [p.logits for p in plain.predict_batch(texts)] == raw_logits, "logits stay raw"

    # Another checkpoint's file is refused, naming both digests.
    with pytest.raises(icd.ConfigError, match="not for this one, SHA-256"):
        Detector(FIXTURES / "roberta-1-label-old-config", calibration=path)
    calibration["version"] = 2
    path.write_text(json.dumps(calibration))
    with pytest.raises(icd.ConfigError, match="`version` is 2"):
        Detector(checkpoint, calibration=path)
