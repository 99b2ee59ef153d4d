"""The C library: finding and loading it, the ctypes declarations of every function
and struct (checked against the C header by tests/test_header.py), and turning a
status into an exception."""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from pathlib import Path
from typing import List, Optional, Union

from ._errors import _ERRORS, DetectorError, InvalidUtf8Error

# The C header's icd_preprocessing and icd_precision values by name (checked against
# the header by tests/test_header.py).
_PREPROCESSING = {"raw": 0, "collapse_whitespace": 1}
_PRECISION = {"f32": 0, "bf16": 1, "f16": 2, "int8": 3, "tf32": 4}
# icd_language, checked the same way.
_LANGUAGE = {"c": 0, "cpp": 1}


class _Str(ctypes.Structure):
    _fields_ = [("ptr", ctypes.c_char_p), ("len", ctypes.c_size_t)]


class _Options(ctypes.Structure):
    _fields_ = [
        ("max_tokens", ctypes.c_uint32),
        ("batch_size", ctypes.c_uint32),
        ("preprocessing", ctypes.c_uint32),
        ("precision", ctypes.c_uint32),
    ]


class _TokenScore(ctypes.Structure):
    _fields_ = [
        ("id", ctypes.c_uint32),
        ("start", ctypes.c_size_t),
        ("end", ctypes.c_size_t),
        ("line", ctypes.c_size_t),
        ("score", ctypes.c_float),
    ]


class _LineScore(ctypes.Structure):
    _fields_ = [("line", ctypes.c_size_t), ("score", ctypes.c_float)]


class _Prediction(ctypes.Structure):
    _fields_ = [
        ("label", ctypes.c_uint32),
        ("insecure_probability", ctypes.c_float),
        ("tokens", ctypes.c_uint32),
        ("truncated", ctypes.c_bool),
    ]


class _Function(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("name_len", ctypes.c_size_t),
        ("start_line", ctypes.c_size_t),
        ("end_line", ctypes.c_size_t),
        ("start_byte", ctypes.c_size_t),
        ("end_byte", ctypes.c_size_t),
        ("suppressed", ctypes.c_bool),
        ("fingerprint", ctypes.c_char_p),
    ]


class _LineRange(ctypes.Structure):
    _fields_ = [("start_line", ctypes.c_size_t), ("end_line", ctypes.c_size_t)]


class _TreeFunction(ctypes.Structure):
    _fields_ = [
        ("file", ctypes.c_char_p),
        ("file_len", ctypes.c_size_t),
        ("language", ctypes.c_uint32),
        ("function", _Function),
        ("code", ctypes.c_char_p),
        ("code_len", ctypes.c_size_t),
    ]


class _Gap(ctypes.Structure):
    _fields_ = [("file", ctypes.c_char_p), ("file_len", ctypes.c_size_t), ("message", ctypes.c_char_p)]


class _Source(ctypes.Structure):
    _fields_ = [
        ("path", ctypes.c_char_p),
        ("path_len", ctypes.c_size_t),
        ("language", ctypes.c_uint32),
        ("named", ctypes.c_bool),
    ]


class _WindowPrediction(ctypes.Structure):
    _fields_ = [
        ("prediction", _Prediction),
        ("start_byte", ctypes.c_size_t),
        ("end_byte", ctypes.c_size_t),
        ("windows", ctypes.c_size_t),
    ]


class _LabelledFunction(ctypes.Structure):
    _fields_ = [("code", ctypes.c_char_p), ("code_len", ctypes.c_size_t), ("label", ctypes.c_uint32)]


class _TrainingStep(ctypes.Structure):
    _fields_ = [
        ("step", ctypes.c_size_t),
        ("total_steps", ctypes.c_size_t),
        ("epoch", ctypes.c_size_t),
        ("loss", ctypes.c_double),
        ("lr", ctypes.c_double),
        ("grad_norm", ctypes.c_double),
    ]


# icd_training_callback (0: go on, nonzero: stop): made once, so that declarations
# compare equal.
_TrainingCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(_TrainingStep), ctypes.c_void_p)


_LIB_NAMES = {"linux": "libinsecure_code_detector.so", "darwin": "libinsecure_code_detector.dylib", "win32": "insecure_code_detector.dll"}


def _library_candidates() -> List[Path]:
    name = _LIB_NAMES.get(sys.platform, _LIB_NAMES["linux"])
    candidates = []
    if os.environ.get("ICD_LIBRARY"):
        return [Path(os.environ["ICD_LIBRARY"])]
    package_dir = Path(__file__).resolve().parent
    candidates.append(package_dir / name)
    target_dirs = []
    if os.environ.get("CARGO_TARGET_DIR"):
        target_dirs.append(Path(os.environ["CARGO_TARGET_DIR"]))
    # bindings/python/insecure_code_detector -> the checkout's target/.
    target_dirs.append(package_dir.parents[2] / "target")
    for target in target_dirs:
        candidates += [target / "release" / name, target / "debug" / name]
    return candidates


_lib_path: Optional[Path] = None


def _load_library() -> ctypes.CDLL:
    global _lib_path
    candidates = _library_candidates()
    for path in candidates:
        if path.is_file():
            lib = _declare(ctypes.CDLL(str(path)))
            _lib_path = path
            return lib
    tried = ", ".join(str(p) for p in candidates)
    raise OSError(
        f"insecure-code-detector's shared library was not found (tried {tried}); "
        "build it with `cargo build` or set ICD_LIBRARY to its path"
    )


def _signatures():
    """Every C function's (argtypes, restype); tests/test_header.py checks them against
    include/insecure_code_detector.h."""
    P = ctypes.POINTER
    status = ctypes.c_int
    err = P(ctypes.c_void_p)  # icd_error **
    handle = ctypes.c_void_p
    return {
        "icd_version": ([], ctypes.c_char_p),
        "icd_backends": ([], ctypes.c_char_p),
        "icd_options_default": ([], _Options),
        "icd_status_name": ([ctypes.c_uint32], ctypes.c_char_p),
        "icd_detector_open": (
            [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t, P(_Options), P(handle), err],
            status,
        ),
        "icd_detector_open_calibrated": (
            [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t, P(_Options), ctypes.c_char_p,
             ctypes.c_size_t, P(handle), err],
            status,
        ),
        "icd_detector_threshold": ([handle], ctypes.c_double),
        "icd_detector_free": ([handle], None),
        "icd_detector_num_labels": ([handle], ctypes.c_size_t),
        "icd_detector_max_tokens": ([handle], ctypes.c_size_t),
        "icd_detector_backend": ([handle], ctypes.c_char_p),
        "icd_detector_execution": ([handle], ctypes.c_char_p),
        "icd_detector_warm_up": ([handle, P(ctypes.c_size_t), err], status),
        "icd_detector_label_name": ([handle, ctypes.c_size_t, P(ctypes.c_char_p), P(ctypes.c_size_t), err], status),
        "icd_detector_predict": (
            [handle, ctypes.c_char_p, ctypes.c_size_t, P(_Prediction), P(ctypes.c_float), ctypes.c_size_t, err],
            status,
        ),
        "icd_detector_predict_batch": (
            [handle, P(_Str), ctypes.c_size_t, P(_Prediction), P(ctypes.c_float), ctypes.c_size_t, err],
            status,
        ),
        "icd_detector_explain": ([handle, ctypes.c_char_p, ctypes.c_size_t, P(handle), err], status),
        "icd_detector_explain_batch": ([handle, P(_Str), ctypes.c_size_t, P(handle), err], status),
        "icd_explanation_prediction": ([handle], P(_Prediction)),
        "icd_explanation_logits": ([handle, P(ctypes.c_size_t)], P(ctypes.c_float)),
        "icd_explanation_tokens": ([handle, P(ctypes.c_size_t)], P(_TokenScore)),
        "icd_explanation_lines": ([handle, P(ctypes.c_size_t)], P(_LineScore)),
        "icd_explanation_free": ([handle], None),
        "icd_detector_predict_windows": (
            [handle, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_size_t, P(_WindowPrediction), P(ctypes.c_float),
             ctypes.c_size_t, err],
            status,
        ),
        "icd_find_functions": ([ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint32, P(handle), err], status),
        "icd_functions_items": ([handle, P(ctypes.c_size_t)], P(_Function)),
        "icd_functions_unparsed_lines": ([handle, P(ctypes.c_size_t)], P(_LineRange)),
        "icd_functions_free": ([handle], None),
        "icd_find_functions_under": (
            [P(_Str), ctypes.c_size_t, ctypes.c_uint64, ctypes.c_bool, P(handle), err],
            status,
        ),
        "icd_tree_functions": ([handle, P(ctypes.c_size_t)], P(_TreeFunction)),
        "icd_tree_gaps": ([handle, P(ctypes.c_size_t)], P(_Gap)),
        "icd_tree_free": ([handle], None),
        "icd_list_sources": ([P(_Str), ctypes.c_size_t, ctypes.c_bool, P(handle), err], status),
        "icd_listing_sources": ([handle, P(ctypes.c_size_t)], P(_Source)),
        "icd_listing_gaps": ([handle, P(ctypes.c_size_t)], P(_Gap)),
        "icd_listing_free": ([handle], None),
        "icd_find_functions_in_sources": ([P(_Source), ctypes.c_size_t, ctypes.c_uint64, P(handle), err], status),
        "icd_detector_use_cache": ([handle, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint64, err], status),
        "icd_detector_model_calls": ([handle], ctypes.c_uint64),
        "icd_train": (
            [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t,
             P(_LabelledFunction), ctypes.c_size_t, P(_LabelledFunction), ctypes.c_size_t, ctypes.c_char_p,
             ctypes.c_size_t, _TrainingCallback, ctypes.c_void_p, err],
            status,
        ),
        "icd_error_status": ([ctypes.c_void_p], status),
        "icd_error_message": ([ctypes.c_void_p], ctypes.c_char_p),
        "icd_error_free": ([ctypes.c_void_p], None),
    }


def _declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    for name, (argtypes, restype) in _signatures().items():
        fn = getattr(lib, name)
        fn.argtypes = argtypes
        fn.restype = restype
    return lib


_lib_lock = threading.Lock()
_lib: Optional[ctypes.CDLL] = None


def _library() -> ctypes.CDLL:
    global _lib
    with _lib_lock:
        if _lib is None:
            _lib = _load_library()
        return _lib


def _check(status: int, error: ctypes.c_void_p) -> None:
    if status == 0:
        return
    lib = _library()
    if error.value:
        message = lib.icd_error_message(error).decode("utf-8", "replace")
        lib.icd_error_free(error)
    else:
        message = lib.icd_status_name(status).decode()
    raise _ERRORS.get(status, DetectorError)(message)


def library_path() -> Path:
    """The shared library this package loaded (loading it if need be)."""
    _library()
    assert _lib_path is not None
    return _lib_path


def version() -> str:
    """The library's version."""
    return _library().icd_version().decode()


def backends() -> List[str]:
    """Backends compiled into the library ("auto" is accepted besides these)."""
    return _library().icd_backends().decode().split(",")


def _encode(code: Union[str, bytes], what: str) -> bytes:
    if isinstance(code, bytes):
        return code
    if isinstance(code, str):
        try:
            return code.encode("utf-8")
        except UnicodeEncodeError as e:
            raise InvalidUtf8Error(f"argument `{what}` is not encodable as UTF-8: {e}") from None
    raise TypeError(f"argument `{what}` must be str or bytes, not {type(code).__name__}")
