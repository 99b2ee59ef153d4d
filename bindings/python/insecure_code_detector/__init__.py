"""Python bindings (ctypes) for insecure-code-detector.

Flags insecure C/C++ functions with the CodeBERT defect-detection classifier, running
in the Rust library through its C API::

    from insecure_code_detector import Detector

    with Detector("models/codebert-insecure") as detector:
        p = detector.predict("void f(char *s) { char b[8]; strcpy(b, s); }")
        print(p.label_name, p.insecure_probability)

The shared library is found through the ``ICD_LIBRARY`` environment variable (a file
path), then next to this package (where the wheel puts it), then in the cargo target
directory of the checkout this package sits in (``target/release``, then
``target/debug``; ``CARGO_TARGET_DIR`` is honoured). :func:`library_path` says which.
"""

from __future__ import annotations

from ._detector import Detector
from ._errors import (
    BackendUnavailableError,
    CheckpointNotFoundError,
    ConfigError,
    DetectorError,
    FileAccessError,
    InferenceError,
    InternalError,
    InvalidArgumentError,
    InvalidUtf8Error,
    NullArgumentError,
    StoppedError,
    TokenizerError,
    WeightsError,
)
from ._ffi import backends, library_path, version
from ._scan import find_functions, find_functions_in_sources, find_functions_under, list_sources
from ._train import TrainingStep, train
from ._types import (
    Explanation,
    Finding,
    Function,
    Gap,
    LineScore,
    NotScannedWarning,
    Prediction,
    Source,
    SourceListing,
    SourceTree,
    TokenScore,
    WindowedPrediction,
)

__all__ = [
    "Detector",
    "Prediction",
    "WindowedPrediction",
    "Function",
    "Finding",
    "SourceTree",
    "Source",
    "SourceListing",
    "Gap",
    "NotScannedWarning",
    "find_functions",
    "find_functions_under",
    "list_sources",
    "find_functions_in_sources",
    "Explanation",
    "TokenScore",
    "LineScore",
    "DetectorError",
    "NullArgumentError",
    "InvalidUtf8Error",
    "InvalidArgumentError",
    "CheckpointNotFoundError",
    "FileAccessError",
    "ConfigError",
    "TokenizerError",
    "WeightsError",
    "BackendUnavailableError",
    "InferenceError",
    "InternalError",
    "StoppedError",
    "train",
    "TrainingStep",
    "version",
    "backends",
    "library_path",
]
