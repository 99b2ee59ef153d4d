"""Scanning a corpus on Ray: predictions for a Ray Dataset of functions, and a
distribution-scale scan of source trees that reads the files on the workers,
classifies each distinct function once and resumes where it stopped.

:func:`predict` maps a dataset's batches through a pool of Ray actors, each of which
opens the detector once (a ctypes handle cannot be pickled, so every actor loads the
library and the checkpoint itself) and classifies its batches with
``Detector.predict_batch``. Every column of the input is kept; the prediction's are
added. Ray retries the batches of an actor that dies, so each row comes back once::

    import ray
    from insecure_code_detector.ray import predict

    ray.init()                      # a local Ray; or RAY_ADDRESS=ray://head:10001
    functions = ray.data.read_json("test.jsonl")          # CodeXGLUE: idx, func, target
    predict(functions, "models/codebert-insecure", concurrency=2).write_parquet("out/")

:func:`scan_trees` scans source trees in three steps, each a Ray Data operator with
its progress bar, each of whose tasks commits its output with a rename:

1. **list** (the driver): the files ``icd scan`` would read (``.gitignore``, links,
   submodules as it reads them), written as parts of ``files_per_task`` files; the
   driver holds the paths while it lists them, never code;
2. **read** (tasks on the workers): each part's files are read and their functions
   found with the library; each function is keyed by the SHA-256 of its text as found
   (with the run's settings, equal texts get equal results) and written to the bucket
   its key falls in, so that every copy of a text lands in one bucket;
3. **classify** (actors): each bucket's distinct texts are classified once (through
   the shared prediction cache where ``prediction_cache`` is given) and each result is joined
   back to every occurrence, which keeps its file, lines and name; a bucket's rows are
   written as one file of the output as soon as it is done.

An output directory records its run (``_run.json``); scanning into it again continues
an interrupted run, redoing no committed part or bucket, and a finished run
(``_summary.json``) is not run again. The output holds ``part-NNNNN.parquet`` (or
``.jsonl``) files, one per bucket, ``_gaps.jsonl`` (what could not be covered) and
``_summary.json`` (files, functions, distinct functions, model calls, gaps,
throughput); names starting with ``_`` are skipped by Parquet readers, so
``pyarrow.parquet.read_table(output)`` reads the rows. From the command line::

    python -m insecure_code_detector.ray --model DIR src/ vendor/ --output out/

The trees, the checkpoint, the output directory and ``prediction_cache`` must be reachable by
every node at the same path (a shared file system); the prediction cache is one SQLite
file, which processes on one machine share, not a network file system.

Ray is not a dependency of the package: ``pip install "ray[data]"``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence

from . import Detector, Source, find_functions_in_sources, list_sources

# The columns predict() adds.
PREDICTION_COLUMNS = ["label", "label_name", "insecure_probability", "logits", "tokens", "truncated"]

# The columns of a function occurrence that scan_trees writes besides the predictions.
OCCURRENCE_COLUMNS = ["file", "language", "function", "start_line", "end_line", "fingerprint", "suppressed",
                      "key", "func"]

# The version of the output directory's layout, recorded in _run.json.
LAYOUT_VERSION = 2


def _occurrence_schema():
    import pyarrow as pa

    return pa.schema([("file", pa.string()), ("language", pa.string()), ("function", pa.string()),
                      ("start_line", pa.int64()), ("end_line", pa.int64()), ("fingerprint", pa.string()),
                      ("suppressed", pa.bool_()), ("key", pa.string()), ("func", pa.string())])


def _output_schema():
    """Every output file's columns and types, an empty bucket's included."""
    import pyarrow as pa

    prediction = [("label", pa.int64()), ("label_name", pa.string()), ("insecure_probability", pa.float32()),
                  ("logits", pa.list_(pa.float32())), ("tokens", pa.int64()), ("truncated", pa.bool_())]
    return pa.schema(list(_occurrence_schema()) + [pa.field(n, t) for n, t in prediction])


class DetectorActor:
    """One actor of the pool: opens the detector once, then classifies batches.

    ``threads``: the library's CPU threads in this actor (``RAYON_NUM_THREADS``); by
    default the CPUs Ray gave the actor.
    """

    def __init__(self, model: str, column: str, threads: Optional[int], options: Dict[str, Any]):
        if threads is None:
            threads = _assigned_cpus()
        if threads:
            # Read by the library's thread pool when it starts, which is after this.
            os.environ["RAYON_NUM_THREADS"] = str(threads)
        self.detector = Detector(model, **options)
        self.column = column

    def __call__(self, batch: Dict[str, Any]) -> Dict[str, Any]:
        clashes = sorted(set(batch) & set(PREDICTION_COLUMNS))
        if clashes:
            raise ValueError(f"the dataset already has columns {clashes}, which the predictions would "
                             "overwrite: rename them first (ds.rename_columns)")
        codes = list(batch[self.column])
        for i, code in enumerate(codes):
            if not isinstance(code, (str, bytes)):
                raise ValueError(f"column `{self.column}` holds {type(code).__name__} {code!r} at row {i} of a "
                                 "batch, not the code of a function")
        out = dict(batch)
        out.update(_prediction_columns(self.detector.predict_batch(codes), len(self.detector.labels)))
        return out


def _prediction_columns(predictions, num_labels: int) -> Dict[str, Any]:
    import numpy as np

    return {
        "label": np.array([p.label for p in predictions], dtype=np.int64),
        "label_name": np.array([p.label_name for p in predictions], dtype=object),
        "insecure_probability": np.array([p.insecure_probability for p in predictions], dtype=np.float32),
        "logits": np.array([p.logits for p in predictions], dtype=np.float32).reshape(len(predictions), num_labels),
        "tokens": np.array([p.tokens for p in predictions], dtype=np.int64),
        "truncated": np.array([p.truncated for p in predictions], dtype=bool),
    }


def _assigned_cpus() -> Optional[int]:
    try:
        import ray

        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
        return max(1, int(cpus)) if cpus else None
    except Exception:
        return None


def _detector_options(options: Dict[str, Any], num_gpus: float) -> Dict[str, Any]:
    """``options`` for :class:`Detector`: ``model_batch_size`` is its ``batch_size``,
    and an actor given GPUs runs on them (backend "auto") unless a backend is named."""
    options = dict(options)
    if "model_batch_size" in options:
        options["batch_size"] = options.pop("model_batch_size")
    if num_gpus and not options.get("backend"):
        options["backend"] = "auto"
    return options


def predict(
    dataset,
    model: str,
    *,
    column: str = "func",
    concurrency: int = 1,
    batch_size: int = 64,
    num_cpus: float = 1,
    num_gpus: float = 0,
    threads: Optional[int] = None,
    actor: type = None,
    **options,
):
    """``dataset`` with the prediction columns added (``label``, ``label_name``,
    ``insecure_probability``, ``logits``, ``tokens``, ``truncated``; a dataset that
    already has one of them is refused) for the code in ``column``, through
    ``map_batches`` on ``concurrency`` actors of ``num_cpus`` CPUs and ``num_gpus``
    GPUs each, ``batch_size`` rows a batch. ``model``: a checkpoint
    directory every actor can read. ``threads``: the library's CPU threads per actor
    (default: its ``num_cpus``). ``actor``: a subclass of :class:`DetectorActor` to run
    instead (to add columns of its own). ``options`` go to :class:`Detector`
    (``backend``, ``precision``, ``preprocessing``, ``max_tokens``, ``prediction_cache``; the
    model calls' ``batch_size`` is ``model_batch_size`` here; with ``num_gpus`` the
    backend is "auto" unless named)."""
    import ray.data

    return dataset.map_batches(
        actor or DetectorActor,
        fn_constructor_kwargs={"model": str(model), "column": column, "threads": threads,
                               "options": _detector_options(options, num_gpus)},
        batch_size=batch_size,
        batch_format="numpy",
        # A fixed pool of `concurrency` actors (what map_batches' own `concurrency`
        # argument asked for before Ray 2.51 deprecated it).
        compute=ray.data.ActorPoolStrategy(size=concurrency),
        num_cpus=num_cpus,
        num_gpus=num_gpus,
    )


# ---------------------------------------------------------------------------------
# The distribution-scale scan.


class ScanError(Exception):
    """A scan that cannot start or continue: the message says why and what to do."""


def _write_atomically(path: Path, write) -> None:
    """``write(temporary path)``, then the temporary renamed to ``path``: a reader (and
    a resumed run) sees the whole file or none. The temporary is made beside ``path``
    with a name of its own (two attempts of one task never share one) that starts with
    ``.``, which Parquet readers skip."""
    import tempfile

    descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    # mkstemp makes the file 0600; the output is for whoever the umask lets read it.
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(descriptor, 0o666 & ~umask)
    os.close(descriptor)
    temporary = Path(name)
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()


def _write_json(path: Path, value: Any) -> None:
    _write_atomically(path, lambda p: p.write_text(json.dumps(value, indent=1, sort_keys=True) + "\n"))


def _bucket_of(key: str, buckets: int) -> int:
    return int(key[:15], 16) % buckets


def _key(code: str) -> str:
    """The key two occurrences share when the model reads the same text: within one run
    (one checkpoint, one set of settings), equal texts get equal results."""
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


class _Layout:
    """Where a scan's files are in its output directory."""

    def __init__(self, output: Path, output_format: str):
        self.output = output
        self.format = output_format
        self.work = output / "_work"
        self.run = output / "_run.json"
        self.summary = output / "_summary.json"
        self.gaps = output / "_gaps.jsonl"

    def lock(self) -> Path:
        return self.output / "_run.lock"

    def listing(self, part: int) -> Path:
        return self.work / "listing" / f"part-{part:05d}.json"

    def part_done(self, part: int) -> Path:
        return self.work / "read" / f"part-{part:05d}.json"

    def part_gaps(self, part: int) -> Path:
        return self.work / "gaps" / f"part-{part:05d}.jsonl"

    def occurrences(self, bucket: int, part: int) -> Path:
        return self.work / "buckets" / f"{bucket:05d}" / f"part-{part:05d}.parquet"

    def bucket_dir(self, bucket: int) -> Path:
        return self.work / "buckets" / f"{bucket:05d}"

    def result(self, bucket: int) -> Path:
        suffix = "parquet" if self.format == "parquet" else "jsonl"
        return self.output / f"part-{bucket:05d}.{suffix}"

    def result_stats(self, bucket: int) -> Path:
        return self.work / "classified" / f"part-{bucket:05d}.json"


def _read_part(batch: Dict[str, Any], *, output: str, output_format: str, buckets: int,
               max_file_size: int) -> Dict[str, Any]:
    """The read step for one part (a batch of one row): its files' functions, written
    into their buckets; a part already committed is not read again."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    layout = _Layout(Path(output), output_format)
    part = int(batch["part"][0])
    done = layout.part_done(part)
    if done.exists():
        stats = json.loads(done.read_text())
    else:
        listed = json.loads(layout.listing(part).read_text())
        sources = [Source(path=os.fsencode(p), language=l, named=n)
                   for p, l, n in zip(listed["paths"], listed["languages"], listed["named"])]
        tree = find_functions_in_sources(sources, max_file_size=max_file_size)
        # An attempt that stopped before its commit may have written buckets this one
        # does not (its files changed since): they go, so no row is counted twice.
        for stale in layout.work.glob(f"buckets/*/part-{part:05d}.parquet"):
            stale.unlink(missing_ok=True)
        rows: Dict[int, List[Any]] = {}
        for f in tree.functions:
            key = _key(f.code)
            rows.setdefault(_bucket_of(key, buckets), []).append(
                (f.file, f.language, f.name, f.start_line, f.end_line, f.fingerprint, f.suppressed, key, f.code))
        for bucket, occurrences in rows.items():
            table = pa.table({name: [o[i] for o in occurrences] for i, name in enumerate(OCCURRENCE_COLUMNS)},
                             schema=_occurrence_schema())
            path = layout.occurrences(bucket, part)
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_atomically(path, lambda p: pq.write_table(table, p))
        gaps_file = layout.part_gaps(part)
        gaps_file.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(gaps_file, lambda p: p.write_text(
            "".join(json.dumps({"file": g.file, "message": g.message}) + "\n" for g in tree.gaps)))
        stats = {"files": len(sources), "functions": len(tree.functions), "gaps": len(tree.gaps)}
        done.parent.mkdir(parents=True, exist_ok=True)
        _write_json(done, stats)
    return {name: np.array([stats[name]], dtype=np.int64) for name in ("files", "functions", "gaps")}


class BucketClassifier:
    """An actor of the classify step: opens the detector once, then for each bucket (a
    batch of one row) classifies its distinct texts once and writes its rows."""

    def __init__(self, model: str, output: str, output_format: str, batch_size: int, threads: Optional[int],
                 options: Dict[str, Any]):
        if threads is None:
            threads = _assigned_cpus()
        if threads:
            os.environ["RAYON_NUM_THREADS"] = str(threads)
        self.detector = Detector(model, **options)
        self.layout = _Layout(Path(output), output_format)
        self.batch_size = batch_size

    def classify(self, codes: List[str]):
        """The predictions of ``codes``: a hook for subclasses."""
        out = []
        for start in range(0, len(codes), self.batch_size):
            out += self.detector.predict_batch(codes[start:start + self.batch_size])
        return out

    def __call__(self, batch: Dict[str, Any]) -> Dict[str, Any]:
        import numpy as np

        bucket = int(batch["bucket"][0])
        stats_file = self.layout.result_stats(bucket)
        if self.layout.result(bucket).exists() and stats_file.exists():
            # Committed by an earlier run: its rows count, its model calls were that run's.
            stats = dict(json.loads(stats_file.read_text()), model_calls=0, skipped=1)
        else:
            stats = self._classify_bucket(bucket)
            stats["skipped"] = 0
        return {name: np.array([stats[name]], dtype=np.int64)
                for name in ("occurrences", "distinct", "model_calls", "skipped")}

    def _classify_bucket(self, bucket: int) -> Dict[str, int]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        directory = self.layout.bucket_dir(bucket)
        files = sorted(directory.glob("part-*.parquet")) if directory.is_dir() else []
        table = (pa.concat_tables([pq.read_table(f, schema=_occurrence_schema()) for f in files]) if files
                 else _occurrence_schema().empty_table())
        # One order whatever the order the parts were read in.
        table = table.sort_by([("file", "ascending"), ("start_line", "ascending"), ("end_line", "ascending"),
                               ("fingerprint", "ascending")]) if table.num_rows else table
        keys = table.column("key").to_pylist()
        codes = table.column("func").to_pylist()
        first: Dict[str, int] = {}
        for i, key in enumerate(keys):
            first.setdefault(key, i)
        distinct = sorted(first)
        calls_before = self.detector.model_calls
        predictions = dict(zip(distinct, self.classify([codes[first[k]] for k in distinct])))
        model_calls = self.detector.model_calls - calls_before
        columns = _prediction_columns([predictions[k] for k in keys], len(self.detector.labels))
        schema = _output_schema()
        for name, values in columns.items():
            table = table.append_column(schema.field(name), pa.array(list(values), type=schema.field(name).type))
        stats = {"occurrences": table.num_rows, "distinct": len(distinct), "model_calls": model_calls}
        stats_file = self.layout.result_stats(bucket)
        stats_file.parent.mkdir(parents=True, exist_ok=True)
        _write_json(stats_file, stats)
        if self.layout.format == "parquet":
            _write_atomically(self.layout.result(bucket), lambda p: pq.write_table(table, p))
        else:
            def write_jsonl(p: Path) -> None:
                with open(p, "w", encoding="utf-8") as out:
                    for row in table.to_pylist():
                        out.write(json.dumps(row) + "\n")
            _write_atomically(self.layout.result(bucket), write_jsonl)
        return stats


def _run_record(trees: Sequence[Path], model: str, listing_digest: str, parts: int, buckets: int,
                files_per_task: int, output_format: str, max_file_size: int, dot_ignore: bool,
                options: Dict[str, Any]) -> Dict[str, Any]:
    """What decides a run's output: a resumed run must have the same."""
    return {
        "layout": LAYOUT_VERSION,
        "trees": [os.fsdecode(os.path.abspath(t)) for t in trees],
        "model": os.path.abspath(model),
        "model_files": _model_files(model),
        "options": {k: (os.fsdecode(os.path.abspath(v)) if isinstance(v, (bytes, os.PathLike)) else v)
                    for k, v in sorted({**_DETECTOR_DEFAULTS, **options}.items())
                    if k not in ("prediction_cache", "prediction_cache_max_entries")},
        "calibration_file": (_file_state(options["calibration"]) if options.get("calibration") is not None
                             else None),
        "listing_sha256": listing_digest,
        "parts": parts,
        "buckets": buckets,
        "files_per_task": files_per_task,
        "format": output_format,
        "max_file_size": max_file_size,
        "dot_ignore": dot_ignore,
    }


# Detector's defaults for the options that decide results: a run that names one and a
# run that leaves it out are the same run.
_DETECTOR_DEFAULTS = {"backend": None, "precision": "f32", "preprocessing": "raw", "max_tokens": 0,
                      "batch_size": 0, "calibration": None}


def _listing_digest(sources: Sequence[Source]) -> str:
    """The listing's digest: each file's path, language and size and modification time,
    so that a tree whose files changed is another run."""
    digest = hashlib.sha256()
    for s in sources:
        try:
            # A named file is read through its links, a walked one never.
            stat = os.stat(s.path) if s.named else os.lstat(s.path)
            state = f"{stat.st_size} {stat.st_mtime_ns}".encode()
        except OSError as e:
            state = f"unreadable {e.errno}".encode()
        digest.update(s.path + b"\0" + s.language.encode() + (b"\1" if s.named else b"\0") + state + b"\0")
    return digest.hexdigest()


def _model_files(model: str) -> Dict[str, List[int]]:
    """The files the detector reads from the checkpoint directory, by name: size and
    modification time (a model retrained in place is another run)."""
    files = {}
    for name in _CHECKPOINT_FILES:
        path = Path(model) / name
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        except OSError as e:
            raise ScanError(f"{path} cannot be read: {e}") from None
        files[name] = [stat.st_size, stat.st_mtime_ns]
    return files


# What a checkpoint directory holds that the detector reads (config, weights in either
# format, tokenizer in either layout).
_CHECKPOINT_FILES = ("config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json", "vocab.json",
                     "merges.txt", "tokenizer_config.json", "special_tokens_map.json")


def _file_state(path) -> List[int]:
    stat = os.stat(path)
    return [stat.st_size, stat.st_mtime_ns]


def _check_settings(model: str, options: Dict[str, Any], max_file_size: int) -> None:
    """What the workers would refuse, refused here, before the run is recorded (the
    checkpoint itself is loaded by the workers, whose devices the driver may lack)."""
    import inspect

    from . import backends
    from ._ffi import _PRECISION, _PREPROCESSING

    if not (Path(model) / "config.json").is_file():
        raise ScanError(f"{model} is not a checkpoint directory (it has no config.json)")
    accepted = set(inspect.signature(Detector).parameters) - {"model_dir"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ScanError(f"unknown detector options {unknown}: expected some of {sorted(accepted)}")
    for name, choices in (("precision", _PRECISION), ("preprocessing", _PREPROCESSING)):
        if name in options and options[name] not in choices:
            raise ScanError(f"{name} {options[name]!r}: expected one of {sorted(choices)}")
    backend = options.get("backend")
    if backend is not None and str(backend).lower() not in [*backends(), "auto"]:
        raise ScanError(f"backend {backend!r}: this library has {', '.join(backends())} (or auto)")
    for name in ("max_tokens", "batch_size"):
        value = options.get(name, 0)
        if not isinstance(value, int) or not 0 <= value < 2**32:
            raise ScanError(f"{name} {value!r}: expected an integer in 0..2**32")
    calibration = options.get("calibration")
    if calibration is not None and not Path(calibration).is_file():
        raise ScanError(f"calibration {calibration}: no such file")
    cache = options.get("prediction_cache")
    if cache is not None:
        try:
            Path(cache).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ScanError(f"prediction_cache {cache} cannot be a cache directory: {e}") from None
    # The library's own check of the size limit, on no files.
    find_functions_in_sources([], max_file_size=max_file_size)


def _lock(layout: _Layout):
    """An exclusive lock on the output directory for this driver's run, released when the
    driver exits however it exits; a second driver on the same directory is refused
    (between machines, where the shared file system carries flock's locks, as NFS 4
    does)."""
    import fcntl

    try:
        handle = open(layout.lock(), "a")
    except OSError as e:
        raise ScanError(f"{layout.output} cannot be written: {e}") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ScanError(f"{layout.output} is being written by another run (it holds {layout.lock().name}'s lock)")
    except OSError as e:
        handle.close()
        raise ScanError(f"{layout.output} cannot be locked ({e}): its file system takes no locks; name a "
                        "directory on one that does") from None
    return handle


def _peak_rss_mib() -> float:
    import resource

    # Linux reports KiB, macOS bytes.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


def scan_trees(
    trees: Sequence[os.PathLike],
    model: str,
    output: os.PathLike,
    *,
    output_format: str = "parquet",
    files_per_task: int = 256,
    buckets: Optional[int] = None,
    concurrency: int = 1,
    batch_size: int = 64,
    num_cpus: float = 1,
    num_gpus: float = 0,
    threads: Optional[int] = None,
    max_file_size: int = 0,
    dot_ignore: bool = False,
    actor: type = None,
    **options,
) -> Dict[str, Any]:
    """Scans ``trees`` on the connected Ray cluster into the directory ``output`` (see
    the module's docs) and returns the run's summary (also in ``_summary.json``).

    ``files_per_task``: files a read task reads. ``buckets``: how many parts the
    distinct texts are split into for classification, each one output file (default:
    the number of read parts, at most 64); a bucket's occurrences are held by one actor
    at a time. ``concurrency``, ``num_cpus``, ``num_gpus``, ``threads``: the
    classifying actors, as for :func:`predict`; ``batch_size``: functions per
    ``predict_batch`` call. ``max_file_size``, ``dot_ignore``: as for
    :func:`find_functions_under`. ``actor``: a subclass of :class:`BucketClassifier`
    to run instead. ``options`` go to :class:`Detector` (``backend``, ``precision``,
    ``preprocessing``, ``max_tokens``, ``model_batch_size``, ``prediction_cache``: the
    prediction cache shared with ``icd scan``, so that a run classifies only the texts
    no earlier run or scan has).

    An ``output`` that holds another run (other trees, files, model or settings) or
    other files is refused; one that holds this run is continued."""
    if output_format not in ("parquet", "jsonl"):
        raise ScanError(f"format {output_format!r}: expected parquet or jsonl")
    if files_per_task < 1 or (buckets is not None and buckets < 1) or concurrency < 1 or batch_size < 1:
        raise ScanError("files_per_task, buckets, concurrency and batch_size must each be at least 1")
    started = time.monotonic()
    # Workers run in directories of their own: every path they are given is absolute.
    trees = [Path(os.path.abspath(t)) for t in trees]
    model = os.path.abspath(model)
    output = Path(os.path.abspath(output))
    options = {k: (os.path.abspath(v) if k in ("calibration", "prediction_cache") and v is not None else v)
               for k, v in options.items()}
    if output.exists() and not output.is_dir():
        raise ScanError(f"{output} is not a directory: name a new or empty directory")
    try:
        os.fsencode(output).decode("utf-8")
    except UnicodeDecodeError:
        raise ScanError(f"{output!r} is not UTF-8, which the Parquet writer takes paths in: name another "
                        "directory") from None
    layout = _Layout(output, output_format)
    if output.is_dir() and not layout.run.exists() and any(p.name != layout.lock().name for p in output.iterdir()):
        raise ScanError(f"{output} is not empty and holds no scan: name a new or empty directory")
    detector_options = _detector_options(options, num_gpus)
    _check_settings(model, detector_options, max_file_size)
    listing = list_sources([Path(t) for t in trees], dot_ignore=dot_ignore)
    sources = listing.sources
    parts = max(1, -(-len(sources) // files_per_task))
    buckets = buckets or min(parts, 64)
    record = _run_record(trees, model, _listing_digest(sources), parts, buckets, files_per_task, output_format,
                         max_file_size, dot_ignore, detector_options)
    output.mkdir(parents=True, exist_ok=True)
    lock = _lock(layout)
    try:
        finished = _begin(layout, record, listing, files_per_task)
        if finished is not None:
            return finished
        # The paths are in the listing's files now: the driver lets go of them.
        listing_gaps = listing.gaps
        del sources, listing
        return _scan(layout, listing_gaps, model, output_format, record["parts"], buckets, concurrency, batch_size,
                     num_cpus, num_gpus, threads, max_file_size, actor, detector_options, started)
    finally:
        lock.close()


# What only the classify step reads: a run that has classified nothing yet may take
# others.
_CLASSIFY_SETTINGS = {"model", "model_files", "options", "calibration_file"}


def _begin(layout: _Layout, record: Dict[str, Any], listing, files_per_task: int) -> Optional[Dict[str, Any]]:
    """The run recorded in the output directory, or refused there; the summary of a
    finished one; else the listing written, a file per part (the workers read their
    part's)."""
    output = layout.output
    if layout.run.exists():
        try:
            earlier = json.loads(layout.run.read_text())
            if not isinstance(earlier, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as e:
            raise ScanError(f"{layout.run} is not a run's record ({e}): name a new directory") from None
        differing = sorted(k for k in set(record) | set(earlier) if record.get(k) != earlier.get(k))
        committed = any(layout.output.glob(f"part-*.{layout.result(0).suffix[1:]}"))
        if differing and set(differing) <= _CLASSIFY_SETTINGS and not committed and not layout.summary.exists():
            # Nothing was classified yet: what was read stands, the new settings classify.
            _write_json(layout.run, record)
        elif differing:
            raise ScanError(f"{output} holds a run that differs in {', '.join(differing)}: continue it with the "
                            "same trees, files and settings, or name a new directory")
        if layout.summary.exists():
            return json.loads(layout.summary.read_text())
    elif any(p.name != layout.lock().name for p in output.iterdir()):
        raise ScanError(f"{output} is not empty and holds no scan: name a new or empty directory")
    else:
        _write_json(layout.run, record)
    (layout.work / "listing").mkdir(parents=True, exist_ok=True)
    sources = listing.sources
    for part in range(record["parts"]):
        if not layout.part_done(part).exists():
            chunk = sources[part * files_per_task:(part + 1) * files_per_task]
            _write_json(layout.listing(part), {"paths": [os.fsdecode(s.path) for s in chunk],
                                               "languages": [s.language for s in chunk],
                                               "named": [s.named for s in chunk]})
    return None


def _scan(layout: _Layout, listing_gaps, model: str, output_format: str, parts: int, buckets: int,
          concurrency: int, batch_size: int, num_cpus: float, num_gpus: float, threads: Optional[int],
          max_file_size: int, actor: Optional[type], detector_options: Dict[str, Any],
          started: float) -> Dict[str, Any]:
    """The read and classify steps of :func:`scan_trees`, with the output directory
    locked and the listing written."""
    import ray
    import ray.data

    output = layout.output
    # A worker's error reaches the driver as itself (a FileAccessError naming the file),
    # not wrapped in Ray Data's UserCodeException; the setting is the datasets' own.
    context = ray.data.DataContext.get_current()
    wrapped = context.raise_original_map_exception
    context.raise_original_map_exception = True
    try:
        return _run_steps(layout, listing_gaps, model, output_format, parts, buckets, concurrency, batch_size,
                          num_cpus, num_gpus, threads, max_file_size, actor, detector_options, started)
    finally:
        context.raise_original_map_exception = wrapped


def _run_steps(layout: _Layout, listing_gaps, model: str, output_format: str, parts: int, buckets: int,
               concurrency: int, batch_size: int, num_cpus: float, num_gpus: float, threads: Optional[int],
               max_file_size: int, actor: Optional[type], detector_options: Dict[str, Any],
               started: float) -> Dict[str, Any]:
    import ray.data

    output = layout.output
    read = ray.data.from_items([{"part": i} for i in range(parts)], override_num_blocks=parts).map_batches(
        _read_part, batch_size=1, batch_format="numpy", num_cpus=1,
        fn_kwargs={"output": str(output), "output_format": output_format, "buckets": buckets,
                   "max_file_size": max_file_size},
    )  # Ray Data retries a task whose node is lost, without limit.
    totals = {"files": 0, "functions": 0, "gaps": len(listing_gaps)}
    read_started = time.monotonic()
    for row in read.iter_rows():
        for name in ("files", "functions", "gaps"):
            totals[name] += int(row[name])
    read_seconds = time.monotonic() - read_started

    # Classify: one row per bucket, on a pool of actors.
    classified = ray.data.from_items([{"bucket": b} for b in range(buckets)], override_num_blocks=buckets).map_batches(
        actor or BucketClassifier,
        fn_constructor_kwargs={"model": str(model), "output": str(output), "output_format": output_format,
                               "batch_size": batch_size, "threads": threads, "options": detector_options},
        batch_size=1,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=concurrency),
        num_cpus=num_cpus,
        num_gpus=num_gpus,
    )
    counts = {"occurrences": 0, "distinct": 0, "model_calls": 0, "skipped": 0}
    classify_started = time.monotonic()
    for row in classified.iter_rows():
        for name in counts:
            counts[name] += int(row[name])
    classify_seconds = time.monotonic() - classify_started

    # The gaps, part by part, into one file; the work files go.
    def write_gaps(path: Path) -> None:
        with open(path, "w", encoding="utf-8") as out:
            for gap in listing_gaps:
                out.write(json.dumps({"file": gap.file, "message": gap.message}) + "\n")
            for part in range(parts):
                with open(layout.part_gaps(part), encoding="utf-8") as part_gaps:
                    for line in part_gaps:
                        out.write(line)

    _write_atomically(layout.gaps, write_gaps)
    seconds = time.monotonic() - started
    summary = {
        "files": totals["files"],
        "functions": counts["occurrences"],
        "distinct_functions": counts["distinct"],
        "model_calls": counts["model_calls"],
        "model_calls_saved": counts["occurrences"] - counts["distinct"],
        "gaps": totals["gaps"],
        "buckets": buckets,
        "buckets_already_done": counts["skipped"],
        "seconds": round(seconds, 3),
        "read_seconds": round(read_seconds, 3),
        "classify_seconds": round(classify_seconds, 3),
        "functions_per_second": round(counts["occurrences"] / seconds, 1) if seconds > 0 else None,
        "driver_peak_rss_mib": round(_peak_rss_mib(), 1),
    }
    if counts["occurrences"] != totals["functions"]:
        raise ScanError(f"the read step found {totals['functions']} functions but {counts['occurrences']} were "
                        "classified: the work files under _work were changed during the run")
    _write_json(layout.summary, summary)
    _remove_tree(layout.work)
    return summary


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _root_cause(error: BaseException) -> str:
    """What failed, without the layers Ray wraps a worker's exception in: the innermost
    cause, which for the library's errors names the file or argument."""
    while True:
        # Ray's task errors hold the worker's exception as `cause`; Python's chains as
        # `__cause__`.
        inner = getattr(error, "cause", None) or error.__cause__
        if not isinstance(inner, BaseException) or inner is error:
            break
        error = inner
    from ._errors import DetectorError

    if isinstance(error, (ScanError, DetectorError, OSError)) and str(error):
        return str(error)
    return f"{type(error).__name__}: {str(error).strip() or repr(error)}"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m insecure_code_detector.ray",
        description="Classify a corpus on Ray: C/C++ source trees (files read on the workers, each function found "
        "as icd scan finds it, each distinct text classified once, an interrupted run continued) or CodeXGLUE "
        "jsonl files (a `func` column), written as Parquet or jsonl.",
    )
    parser.add_argument("inputs", nargs="+", help="source files or directories, or *.jsonl files")
    parser.add_argument("--model", required=True, help="checkpoint directory (readable on every node)")
    parser.add_argument("--output", required=True,
                        help="directory to write (on a file system every node shares); a tree scan's own "
                        "output directory is continued")
    parser.add_argument("--format", choices=["parquet", "jsonl"], default="parquet")
    parser.add_argument("--concurrency", type=int, default=1, help="classifying actors")
    parser.add_argument("--batch-size", type=int, default=64, help="functions per model batch")
    parser.add_argument("--files-per-task", type=int, default=256, help="files a read task reads (trees)")
    parser.add_argument("--buckets", type=int, default=None,
                        help="output parts the distinct functions are split into (trees; default: the read "
                        "tasks, at most 64)")
    parser.add_argument("--num-cpus", type=float, default=1, help="CPUs per actor")
    parser.add_argument("--num-gpus", type=float, default=0, help="GPUs per actor (backend auto unless named)")
    parser.add_argument("--threads", type=int, default=None, help="library threads per actor (default: its CPUs)")
    parser.add_argument("--backend", default=None)
    parser.add_argument("--precision", default="f32")
    parser.add_argument("--prediction-cache", default=None,
                        help="icd scan's prediction cache to share (one machine's processes; not NFS)")
    parser.add_argument("--max-file-size", type=int, default=0, help="largest file read, bytes (0: 16 MiB)")
    parser.add_argument("--dot-ignore", action="store_true", help="honour .ignore files too")
    parser.add_argument("--address", default=None,
                        help="a Ray cluster to join (default: RAY_ADDRESS, else a local Ray)")
    args = parser.parse_args(argv)

    jsonl = [p for p in args.inputs if p.endswith(".jsonl")]
    trees = [Path(p) for p in args.inputs if not p.endswith(".jsonl")]
    if jsonl and trees:
        parser.error("give jsonl files or source trees in one run, not both (their columns differ)")
    for path in [*map(Path, jsonl), *trees]:
        if not path.exists():
            parser.error(f"{path} does not exist")
    options = {"backend": args.backend, "precision": args.precision}
    if args.prediction_cache:
        options["prediction_cache"] = args.prediction_cache

    import ray

    ray.init(address=args.address, ignore_reinit_error=True)
    if trees:
        try:
            summary = scan_trees(trees, args.model, args.output, output_format=args.format,
                                 files_per_task=args.files_per_task, buckets=args.buckets,
                                 concurrency=args.concurrency, batch_size=args.batch_size, num_cpus=args.num_cpus,
                                 num_gpus=args.num_gpus, threads=args.threads, max_file_size=args.max_file_size,
                                 dot_ignore=args.dot_ignore, **options)
        except Exception as e:  # noqa: BLE001: every failure ends as one line and status 2
            print(f"error: {_root_cause(e)}", file=sys.stderr)
            return 2
        print(json.dumps(summary, sort_keys=True))
        return 0
    if Path(args.output).exists() and any(Path(args.output).iterdir()):
        parser.error(f"{args.output} is not empty: name a new or empty directory")
    scored = predict(ray.data.read_json(jsonl), args.model, concurrency=args.concurrency,
                     batch_size=args.batch_size, num_cpus=args.num_cpus, num_gpus=args.num_gpus,
                     threads=args.threads, **options)
    # Written as the batches are classified, never gathered on the driver.
    if args.format == "parquet":
        scored.write_parquet(args.output)
    else:
        scored.write_json(args.output)
    print(f"wrote predictions to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
