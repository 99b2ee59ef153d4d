"""Scanning a corpus on Ray: predictions added to a Ray Dataset of functions.

:func:`predict` maps a dataset's batches through a pool of Ray actors, each of which
opens the detector once (a ctypes handle cannot be pickled, so every actor loads the
library and the checkpoint itself) and classifies its batches with
``Detector.predict_batch``. Every column of the input is kept; the prediction's are
added. Ray retries the batches of an actor that dies, so each row comes back once::

    import ray
    from insecure_code_detector.ray import predict

    ray.init()                      # a local Ray; or RAY_ADDRESS=ray://head:10001
    functions = ray.data.read_json("test.jsonl")          # CodeXGLUE: idx, func, target
    scored = predict(functions, "models/codebert-insecure", concurrency=2)
    scored.write_parquet("out/")

From the command line (CodeXGLUE jsonl, or C/C++ source trees whose functions are found
as ``icd scan`` finds them), writing Parquet or jsonl::

    python -m insecure_code_detector.ray --model DIR test.jsonl src/ --output out/

Ray is not a dependency of the package: ``pip install "ray[data]"``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from . import Detector, find_functions_under

# The columns predict() adds.
PREDICTION_COLUMNS = ["label", "label_name", "insecure_probability", "logits", "tokens", "truncated"]


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
        import numpy as np

        clashes = sorted(set(batch) & set(PREDICTION_COLUMNS))
        if clashes:
            raise ValueError(f"the dataset already has columns {clashes}, which the predictions would "
                             "overwrite: rename them first (ds.rename_columns)")
        codes = list(batch[self.column])
        for i, code in enumerate(codes):
            if not isinstance(code, (str, bytes)):
                raise ValueError(f"column `{self.column}` holds {type(code).__name__} {code!r} at row {i} of a "
                                 "batch, not the code of a function")
        predictions = self.detector.predict_batch(codes)
        out = dict(batch)
        out["label"] = np.array([p.label for p in predictions], dtype=np.int64)
        out["label_name"] = np.array([p.label_name for p in predictions], dtype=object)
        out["insecure_probability"] = np.array([p.insecure_probability for p in predictions], dtype=np.float32)
        out["logits"] = np.array([p.logits for p in predictions], dtype=np.float32).reshape(
            len(predictions), len(self.detector.labels))
        out["tokens"] = np.array([p.tokens for p in predictions], dtype=np.int64)
        out["truncated"] = np.array([p.truncated for p in predictions], dtype=bool)
        return out


def _assigned_cpus() -> Optional[int]:
    try:
        import ray

        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
        return max(1, int(cpus)) if cpus else None
    except Exception:
        return None


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
    (``backend``, ``precision``, ``preprocessing``, ``max_tokens``; the model calls'
    ``batch_size`` is ``model_batch_size`` here)."""
    detector_options = dict(options)
    if "model_batch_size" in detector_options:
        detector_options["batch_size"] = detector_options.pop("model_batch_size")
    import ray.data

    return dataset.map_batches(
        actor or DetectorActor,
        fn_constructor_kwargs={"model": str(model), "column": column, "threads": threads,
                               "options": detector_options},
        batch_size=batch_size,
        batch_format="numpy",
        # A fixed pool of `concurrency` actors (what map_batches' own `concurrency`
        # argument asked for before Ray 2.51 deprecated it).
        compute=ray.data.ActorPoolStrategy(size=concurrency),
        num_cpus=num_cpus,
        num_gpus=num_gpus,
    )


def _tree_rows(trees: List[Path]) -> List[Dict[str, Any]]:
    """One row per function definition under ``trees``, found as ``icd scan`` finds them
    (the files it would read, .gitignore honoured as it honours it)."""
    found = find_functions_under(trees)
    for gap in found.gaps:
        print(f"warning: {gap.message}", file=sys.stderr)
    return [{"file": f.file, "language": f.language, "function": f.name, "start_line": f.start_line,
             "end_line": f.end_line, "fingerprint": f.fingerprint, "suppressed": f.suppressed, "func": f.code}
            for f in found.functions]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m insecure_code_detector.ray",
        description="Classify a corpus on Ray: CodeXGLUE jsonl files (a `func` column) and C/C++ source "
        "trees (each function found as icd scan finds it), written as Parquet or jsonl.",
    )
    parser.add_argument("inputs", nargs="+", help="*.jsonl files, source files or directories")
    parser.add_argument("--model", required=True, help="checkpoint directory (readable on every node)")
    parser.add_argument("--output", required=True, help="directory to write")
    parser.add_argument("--format", choices=["parquet", "jsonl"], default="parquet")
    parser.add_argument("--concurrency", type=int, default=1, help="actors")
    parser.add_argument("--batch-size", type=int, default=64, help="rows per batch")
    parser.add_argument("--num-cpus", type=float, default=1, help="CPUs per actor")
    parser.add_argument("--num-gpus", type=float, default=0, help="GPUs per actor")
    parser.add_argument("--backend", default=None)
    parser.add_argument("--precision", default="f32")
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
    if Path(args.output).exists() and any(Path(args.output).iterdir()):
        parser.error(f"{args.output} is not empty: name a new or empty directory")

    import ray

    ray.init(address=args.address, ignore_reinit_error=True)
    if jsonl:
        dataset = ray.data.read_json(jsonl)
    else:
        rows = _tree_rows(trees)
        if not rows:
            print("no C/C++ function definitions in the inputs", file=sys.stderr)
            return 2
        dataset = ray.data.from_items(rows)
    scored = predict(dataset, args.model, concurrency=args.concurrency, batch_size=args.batch_size,
                     num_cpus=args.num_cpus, num_gpus=args.num_gpus, backend=args.backend,
                     precision=args.precision).materialize()
    if args.format == "parquet":
        scored.write_parquet(args.output)
    else:
        scored.write_json(args.output)
    print(f"wrote {scored.count()} predictions to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
