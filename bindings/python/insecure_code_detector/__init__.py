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

import ctypes
import os
import sys
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
import warnings
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple, Union

__all__ = [
    "Detector",
    "Prediction",
    "WindowedPrediction",
    "Function",
    "Finding",
    "SourceTree",
    "Gap",
    "NotScannedWarning",
    "find_functions",
    "find_functions_under",
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
    "version",
    "backends",
    "library_path",
]


class DetectorError(Exception):
    """A call into the library failed. ``status`` is the C API's status name."""

    status = "ICD_ERR"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class NullArgumentError(DetectorError):
    status = "ICD_ERR_NULL_ARGUMENT"


class InvalidUtf8Error(DetectorError, UnicodeError):
    status = "ICD_ERR_INVALID_UTF8"


class InvalidArgumentError(DetectorError, ValueError):
    status = "ICD_ERR_INVALID_ARGUMENT"


class FileAccessError(DetectorError, OSError):
    """A file or directory could not be read: a checkpoint's, or a source path given to
    :func:`find_functions_under` or :meth:`Detector.scan`."""

    status = "ICD_ERR_IO"


# The name the checkpoint's case has always had.
CheckpointNotFoundError = FileAccessError


class ConfigError(DetectorError):
    status = "ICD_ERR_CONFIG"


class TokenizerError(DetectorError):
    status = "ICD_ERR_TOKENIZER"


class WeightsError(DetectorError):
    status = "ICD_ERR_WEIGHTS"


class BackendUnavailableError(DetectorError):
    status = "ICD_ERR_BACKEND_UNAVAILABLE"


class InferenceError(DetectorError):
    status = "ICD_ERR_INFERENCE"


class InternalError(DetectorError):
    """A bug in the library (a caught panic)."""

    status = "ICD_ERR_PANIC"


_ERRORS = {
    1: NullArgumentError,
    2: InvalidUtf8Error,
    3: InvalidArgumentError,
    4: FileAccessError,
    5: ConfigError,
    6: TokenizerError,
    7: WeightsError,
    8: BackendUnavailableError,
    9: InferenceError,
    10: InternalError,
}

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


class _WindowPrediction(ctypes.Structure):
    _fields_ = [
        ("prediction", _Prediction),
        ("start_byte", ctypes.c_size_t),
        ("end_byte", ctypes.c_size_t),
        ("windows", ctypes.c_size_t),
    ]


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


@dataclass(frozen=True)
class Prediction:
    """The classifier's verdict on one function (the fields of the Rust ``Prediction``)."""

    label: int
    """Index of the highest logit."""
    label_name: str
    """That label's name from the checkpoint's ``id2label``."""
    insecure_probability: float
    """Probability that the function is insecure."""
    logits: List[float]
    """Raw logits, one per label."""
    tokens: int
    """Tokens fed to the model, ``<s>`` and ``</s>`` included."""
    truncated: bool
    """Whether the input was cut to ``max_tokens``."""


@dataclass(frozen=True)
class TokenScore:
    """One token's share of the last layer's attention from ``<s>``."""

    id: int
    """The token id."""
    byte_range: Optional[Tuple[int, int]]
    """The bytes ``[start, end)`` of the UTF-8 code it came from; None for the ``<s>``
    and ``</s>`` around the input."""
    line: Optional[int]
    """The line (from 1) of its first byte that is not whitespace; None for ``<s>``,
    ``</s>`` and whitespace tokens."""
    score: float
    """The mean over heads of the attention probability from ``<s>`` to it."""


@dataclass(frozen=True)
class LineScore:
    """A line's score: the sum of its tokens' scores."""

    line: int
    score: float


@dataclass(frozen=True)
class Explanation:
    """A prediction and where the model looked (the Rust ``Explanation``)."""

    prediction: Prediction
    tokens: List[TokenScore]
    """Every token fed to the model, ``<s>`` and ``</s>`` included, in order."""
    line_scores: List[LineScore]
    """Every line that received a score, in line order."""

    @property
    def token_scores(self) -> List[float]:
        """Each token's score, in token order (they sum to 1)."""
        return [t.score for t in self.tokens]

    def top_lines(self, k: int = 3) -> List[LineScore]:
        """The ``k`` lines with the highest scores, highest first."""
        return sorted(self.line_scores, key=lambda l: (-l.score, l.line))[:k]


@dataclass(frozen=True)
class WindowedPrediction:
    """A long function's verdict: the window most likely insecure (the Rust
    ``WindowedPrediction``)."""

    prediction: Prediction
    """That window's prediction."""
    byte_range: Tuple[int, int]
    """The bytes ``[start, end)`` of the UTF-8 code that the window covers."""
    windows: int
    """Windows classified."""


@dataclass(frozen=True)
class Function:
    """A function definition :func:`find_functions` found (the Rust ``FunctionSpan``)."""

    name: str
    """Its name as written: ``foo``, ``Class::method``, ``operator==``, ``<anonymous>``."""
    start_line: int
    """First line (from 1), return type and template header included."""
    end_line: int
    """Last line (inclusive)."""
    byte_range: Tuple[int, int]
    """Its bytes ``[start, end)`` in the UTF-8 source."""
    code: str
    """Its text: what to classify."""
    suppressed: bool
    """A comment holding ``icd: ignore`` is on its first line or the line before it."""
    fingerprint: str
    """A hash of its name and text without comments or whitespace, then ``:N`` among
    equal ones in the source: the same across moves and edits elsewhere (``icd scan``'s)."""
    file: Optional[str] = None
    """Its file, from :func:`find_functions_under` (as the walk found it)."""
    language: Optional[str] = None
    """``"c"`` or ``"cpp"``: how it was parsed."""


@dataclass(frozen=True)
class Gap:
    """A part of a tree that was not covered: a file not read (a link, not a regular
    file, unreadable, too large, binary) or lines that could not be parsed."""

    file: str
    message: str
    """What was not covered, in one line, as ``icd scan`` reports it."""


@dataclass(frozen=True)
class SourceTree:
    """What :func:`find_functions_under` found."""

    functions: List[Function]
    """Every definition, file by file, in source order within a file."""
    gaps: List[Gap]
    """What could not be covered, by file."""


@dataclass(frozen=True)
class Finding:
    """One function of a :meth:`Detector.scan` and its prediction."""

    function: Function
    prediction: Prediction

    @property
    def file(self) -> str:
        return self.function.file or ""

    @property
    def name(self) -> str:
        return self.function.name

    @property
    def start_line(self) -> int:
        return self.function.start_line

    @property
    def end_line(self) -> int:
        return self.function.end_line


class NotScannedWarning(UserWarning):
    """:meth:`Detector.scan` could not cover a part of the tree (a :class:`Gap`)."""


def _function(f: "_Function", code: str, *, file: Optional[str] = None, language: Optional[str] = None) -> Function:
    return Function(
        name=f.name.decode("utf-8", "replace"),
        start_line=f.start_line,
        end_line=f.end_line,
        byte_range=(f.start_byte, f.end_byte),
        code=code,
        suppressed=bool(f.suppressed),
        fingerprint=f.fingerprint.decode(),
        file=file,
        language=language,
    )


def _paths(paths) -> List[bytes]:
    """A path or several, as bytes: one ``str``, ``bytes`` or ``PathLike`` is one path,
    not a sequence of characters."""
    if isinstance(paths, (str, bytes, os.PathLike)):
        paths = [paths]
    return [os.fsencode(os.fspath(p)) for p in paths]


def find_functions(source: Union[str, bytes], language: str = "c") -> List[Function]:
    """The function definitions in ``source`` (``str``, or ``bytes`` of UTF-8), in source
    order, found as ``icd scan`` finds them (tree-sitter, a reading per preprocessor
    branch where the source has syntax errors). ``language``: ``"c"`` or ``"cpp"``.

    >>> [f.name for f in find_functions("int a(void) { return 0; }\\nint b(void) { return 1; }")]
    ['a', 'b']
    """
    if language not in _LANGUAGE:
        raise InvalidArgumentError(f"argument `language` is {language!r}, expected one of {sorted(_LANGUAGE)}")
    data = _encode(source, "source")
    lib = _library()
    handle = ctypes.c_void_p()
    error = ctypes.c_void_p()
    _check(lib.icd_find_functions(data, len(data), _LANGUAGE[language], ctypes.byref(handle), ctypes.byref(error)), error)
    try:
        count = ctypes.c_size_t()
        items = lib.icd_functions_items(handle, ctypes.byref(count))
        return [
            _function(f, data[f.start_byte : f.end_byte].decode("utf-8"), language=language)
            for f in (items[i] for i in range(count.value))
        ]
    finally:
        lib.icd_functions_free(handle)


_LANGUAGE_NAMES = {number: name for name, number in _LANGUAGE.items()}


def find_functions_under(
    paths: Union[str, os.PathLike, Iterable[Union[str, os.PathLike]]], *, max_file_size: int = 0,
    dot_ignore: bool = False
) -> SourceTree:
    """The function definitions under ``paths`` (files, or directories walked as ``icd
    scan`` walks them: in a git work tree every tracked file whatever ``.gitignore``
    says, untracked files unless ``.gitignore`` leaves them out, ``.ignore`` files only
    with ``dot_ignore``, hidden files included, symbolic links never followed) and
    what could not be covered. ``max_file_size``: the largest file read, in bytes (0:
    16 MiB). A path given that does not exist or cannot be read raises."""
    encoded = _paths(paths)
    n = len(encoded)
    if not isinstance(max_file_size, int) or not 0 <= max_file_size < 2**64:
        raise InvalidArgumentError(f"argument `max_file_size` is {max_file_size!r}, expected a byte count")
    lib = _library()
    inputs = (_Str * max(n, 1))(*[_Str(p, len(p)) for p in encoded])
    handle = ctypes.c_void_p()
    error = ctypes.c_void_p()
    _check(lib.icd_find_functions_under(inputs, n, max_file_size, dot_ignore, ctypes.byref(handle), ctypes.byref(error)),
           error)
    try:
        count = ctypes.c_size_t()
        items = lib.icd_tree_functions(handle, ctypes.byref(count))
        functions = [
            _function(
                t.function,
                ctypes.string_at(t.code, t.code_len).decode("utf-8"),
                file=ctypes.string_at(t.file, t.file_len).decode("utf-8", "replace"),
                language=_LANGUAGE_NAMES[t.language],
            )
            for t in (items[i] for i in range(count.value))
        ]
        raw_gaps = lib.icd_tree_gaps(handle, ctypes.byref(count))
        gaps = [
            Gap(file=ctypes.string_at(g.file, g.file_len).decode("utf-8", "replace"), message=g.message.decode("utf-8", "replace"))
            for g in (raw_gaps[i] for i in range(count.value))
        ]
        return SourceTree(functions=functions, gaps=gaps)
    finally:
        lib.icd_tree_free(handle)


def _encode(code: Union[str, bytes], what: str) -> bytes:
    if isinstance(code, bytes):
        return code
    if isinstance(code, str):
        try:
            return code.encode("utf-8")
        except UnicodeEncodeError as e:
            raise InvalidUtf8Error(f"argument `{what}` is not encodable as UTF-8: {e}") from None
    raise TypeError(f"argument `{what}` must be str or bytes, not {type(code).__name__}")


class _Handle:
    """Owns the C handle; frees it once no call is using it."""

    def __init__(self, lib: ctypes.CDLL, ptr: int):
        self._lib = lib
        self._ptr = ptr
        self._users = 0
        self._cond = threading.Condition()

    def acquire(self) -> int:
        with self._cond:
            if not self._ptr:
                raise InvalidArgumentError("the detector is closed")
            self._users += 1
            return self._ptr

    def release(self) -> None:
        with self._cond:
            self._users -= 1
            self._cond.notify_all()

    def free(self) -> None:
        with self._cond:
            while self._users:
                self._cond.wait()
            ptr, self._ptr = self._ptr, None
        if ptr:
            self._lib.icd_detector_free(ptr)


class Detector:
    """A loaded checkpoint. Thread-safe: one detector may serve many threads.

    ``model_dir``: a checkpoint directory (config.json, model.safetensors or
    pytorch_model.bin, tokenizer files). ``backend``: "auto", "flex", "ndarray",
    "wgpu", "cuda", or None for the default CPU backend. ``max_tokens``/``batch_size``:
    0 for the defaults (the checkpoint's limit; 8). ``preprocessing``: "raw" (the text
    as given) or "collapse_whitespace" (CodeXGLUE's ``' '.join(code.split())``).
    ``precision``: "f32" (the default: logits equal transformers'), "tf32", "bf16",
    "f16" or "int8"; what each does is documented with ``icd_precision`` in the C
    header and in ``icd --help``.

    Release it with :meth:`close` or a ``with`` block; a finalizer frees it otherwise.
    """

    def __init__(
        self,
        model_dir: Union[str, os.PathLike],
        backend: Optional[str] = None,
        *,
        max_tokens: int = 0,
        batch_size: int = 0,
        preprocessing: str = "raw",
        precision: str = "f32",
    ):
        lib = _library()
        for name, value, choices in (("preprocessing", preprocessing, _PREPROCESSING), ("precision", precision, _PRECISION)):
            if value not in choices:
                raise InvalidArgumentError(f"argument `{name}` is {value!r}, expected one of {sorted(choices)}")
        for name, value in (("max_tokens", max_tokens), ("batch_size", batch_size)):
            if not isinstance(value, int) or not 0 <= value < 2**32:
                raise InvalidArgumentError(f"argument `{name}` is {value!r}, expected an integer in 0..2**32")
        options = _Options(max_tokens, batch_size, _PREPROCESSING[preprocessing], _PRECISION[precision])
        path = os.fsencode(os.fspath(model_dir))
        backend_bytes = backend.encode() if backend is not None else None
        ptr = ctypes.c_void_p()
        error = ctypes.c_void_p()
        status = lib.icd_detector_open(
            path, len(path), backend_bytes, len(backend_bytes or b""), ctypes.byref(options), ctypes.byref(ptr), ctypes.byref(error)
        )
        _check(status, error)
        self._handle = _Handle(lib, ptr.value)
        self._lib = lib
        self._finalizer = weakref.finalize(self, self._handle.free)
        self._num_labels = lib.icd_detector_num_labels(ptr.value)
        self._labels = [self._label_name(ptr.value, i) for i in range(self._num_labels)]
        self._backend = lib.icd_detector_backend(ptr.value).decode()
        self._execution = lib.icd_detector_execution(ptr.value).decode()
        self._max_tokens = lib.icd_detector_max_tokens(ptr.value)

    @classmethod
    def from_pretrained(
        cls,
        model: Union[str, os.PathLike] = "mrm8488/codebert-base-finetuned-detect-insecure-code",
        *,
        revision: Optional[str] = None,
        cache_dir: Optional[Union[str, os.PathLike]] = None,
        backend: Optional[str] = None,
        **options,
    ) -> "Detector":
        """A detector for a checkpoint directory, or for a hub model id resolved through
        the local Hugging Face cache (``huggingface_hub``: ``pip install
        insecure_code_detector[hub]``).

        A hub id is looked up in the cache first, without the network; only when it is
        not there, and ``HF_HUB_OFFLINE`` does not forbid it, are the files the library
        reads downloaded into the cache (``cache_dir``: another cache than
        ``huggingface_hub``'s default). ``options`` are the constructor's.
        """
        path = Path(os.fspath(model))
        if path.is_dir():
            return cls(path, backend, **options)
        text = os.fspath(model)
        # owner/name, as the hub spells ids; anything else is a local path that is not there.
        if path.is_absolute() or text.startswith((".", "~")) or text.count("/") != 1 or path.exists():
            raise FileAccessError(f"{text}: no checkpoint directory there")
        try:
            import huggingface_hub
        except ImportError:
            raise FileAccessError(
                f"{text} is no directory, and resolving it as a hub id needs huggingface_hub "
                "(pip install insecure_code_detector[hub])"
            ) from None
        patterns = ["config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json", "vocab.json",
                    "merges.txt", "tokenizer_config.json"]
        try:
            snapshot = huggingface_hub.snapshot_download(
                text, revision=revision, allow_patterns=patterns, local_files_only=True, cache_dir=cache_dir
            )
        except (huggingface_hub.errors.LocalEntryNotFoundError, OSError) as cached_error:
            if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
                raise FileAccessError(
                    f"{text} is no directory, is not in the Hugging Face cache, and HF_HUB_OFFLINE forbids "
                    f"downloading it ({cached_error})"
                ) from None
            try:
                snapshot = huggingface_hub.snapshot_download(
                    text, revision=revision, allow_patterns=patterns, cache_dir=cache_dir
                )
            except Exception as e:
                raise FileAccessError(f"{text} is no directory, and the hub did not give it: {e}") from None
        return cls(snapshot, backend, **options)

    def _label_name(self, ptr: int, index: int) -> str:
        name = ctypes.c_char_p()
        length = ctypes.c_size_t()
        error = ctypes.c_void_p()
        _check(self._lib.icd_detector_label_name(ptr, index, ctypes.byref(name), ctypes.byref(length), ctypes.byref(error)), error)
        return ctypes.string_at(name, length.value).decode("utf-8")

    @property
    def labels(self) -> List[str]:
        """Label names by index."""
        return list(self._labels)

    @property
    def backend(self) -> str:
        """The backend the model runs on."""
        return self._backend

    @property
    def execution(self) -> str:
        """What the encoder runs on, chosen at load: ``"tensors f32"`` (or f64, bf16,
        f16) on the backend's tensors, or a packed CPU kernel and its instruction set,
        such as ``"kernel f32-avx2 (AVX2+FMA)"``."""
        return self._execution

    @property
    def max_tokens(self) -> int:
        """Tokens per input after truncation, ``<s>`` and ``</s>`` included."""
        return self._max_tokens

    def warm_up(self) -> int:
        """Compiles the GPU kernels of every model call shape now, rather
        than on the first call of each shape, and returns the number of model calls
        run: 0 on the CPU backends, which compile nothing. On CUDA a later process
        loads the compiled kernels from disk (``ICD_CACHE_DIR``) instead."""
        calls = ctypes.c_size_t()
        error = ctypes.c_void_p()
        ptr = self._handle.acquire()
        try:
            status = self._lib.icd_detector_warm_up(ptr, ctypes.byref(calls), ctypes.byref(error))
        finally:
            self._handle.release()
        _check(status, error)
        return calls.value

    def predict(self, code: Union[str, bytes]) -> Prediction:
        """Classifies one function (``str``, or ``bytes`` of UTF-8)."""
        return self.predict_batch([code])[0]

    def predict_batch(self, codes: Sequence[Union[str, bytes]]) -> List[Prediction]:
        """Classifies many functions, several per model call; results are in input order and equal ``predict``'s."""
        encoded = [_encode(c, f"codes[{i}]") for i, c in enumerate(codes)]
        n = len(encoded)
        if n == 0:
            return []
        inputs = (_Str * n)(*[_Str(c, len(c)) for c in encoded])
        predictions = (_Prediction * n)()
        logits = (ctypes.c_float * (n * self._num_labels))()
        error = ctypes.c_void_p()
        ptr = self._handle.acquire()
        try:
            status = self._lib.icd_detector_predict_batch(ptr, inputs, n, predictions, logits, len(logits), ctypes.byref(error))
        finally:
            self._handle.release()
        _check(status, error)
        k = self._num_labels
        return [self._prediction(p, logits[i * k : (i + 1) * k]) for i, p in enumerate(predictions)]

    def _prediction(self, p: "_Prediction", logits: Sequence[float]) -> Prediction:
        return Prediction(
            label=p.label,
            label_name=self._labels[p.label],
            insecure_probability=p.insecure_probability,
            logits=list(logits),
            tokens=p.tokens,
            truncated=bool(p.truncated),
        )

    def predict_windows(self, code: Union[str, bytes], stride: int = 0) -> WindowedPrediction:
        """Classifies a function of any length as overlapping windows of ``max_tokens``
        tokens, ``stride`` tokens apart (0: half a window), and returns the window most
        likely insecure; a function that fits in one window gives :meth:`predict`'s
        result."""
        if not isinstance(stride, int) or not 0 <= stride < 2**63:
            raise InvalidArgumentError(f"argument `stride` is {stride!r}, expected a non-negative integer")
        data = _encode(code, "code")
        window = _WindowPrediction()
        logits = (ctypes.c_float * self._num_labels)()
        error = ctypes.c_void_p()
        ptr = self._handle.acquire()
        try:
            status = self._lib.icd_detector_predict_windows(
                ptr, data, len(data), stride, ctypes.byref(window), logits, len(logits), ctypes.byref(error)
            )
        finally:
            self._handle.release()
        _check(status, error)
        return WindowedPrediction(
            prediction=self._prediction(window.prediction, list(logits)),
            byte_range=(window.start_byte, window.end_byte),
            windows=window.windows,
        )

    def scan(
        self,
        paths: Union[str, os.PathLike, Iterable[Union[str, os.PathLike]]],
        *,
        window: bool = False,
        stride: int = 0,
        batch_size: int = 64,
        max_file_size: int = 0,
        dot_ignore: bool = False,
    ) -> Iterator[Finding]:
        """Every function definition under ``paths`` (found as
        :func:`find_functions_under` finds them) with its prediction, in file and source
        order, ``batch_size`` functions per call; with ``window``, long functions are
        classified by windows (:meth:`predict_windows`) instead of truncated. Each part
        of the tree that could not be covered is a :class:`NotScannedWarning`. The
        functions and predictions equal ``icd scan --no-config --format jsonl``'s (no
        ``.icd.toml`` is read here)."""
        tree = find_functions_under(paths, max_file_size=max_file_size, dot_ignore=dot_ignore)
        for gap in tree.gaps:
            warnings.warn(gap.message, NotScannedWarning, stacklevel=2)
        functions = tree.functions
        for start in range(0, len(functions), max(1, batch_size)):
            chunk = functions[start : start + max(1, batch_size)]
            if window:
                predictions = [self.predict_windows(f.code, stride).prediction for f in chunk]
            else:
                predictions = self.predict_batch([f.code for f in chunk])
            for f, p in zip(chunk, predictions):
                yield Finding(function=f, prediction=p)

    def explain(self, code: Union[str, bytes]) -> Explanation:
        """Classifies one function and says where the model looked: each token's share
        of the last layer's attention from ``<s>`` (averaged over heads) and their sums
        by line (from 1 within the code)."""
        return self.explain_batch([code])[0]

    def explain_batch(self, codes: Sequence[Union[str, bytes]]) -> List[Explanation]:
        """``explain`` for many functions, batched; results in input order, equal to ``explain``'s."""
        encoded = [_encode(c, f"codes[{i}]") for i, c in enumerate(codes)]
        n = len(encoded)
        if n == 0:
            return []
        inputs = (_Str * n)(*[_Str(c, len(c)) for c in encoded])
        handles = (ctypes.c_void_p * n)()
        error = ctypes.c_void_p()
        ptr = self._handle.acquire()
        try:
            status = self._lib.icd_detector_explain_batch(ptr, inputs, n, handles, ctypes.byref(error))
        finally:
            self._handle.release()
        _check(status, error)
        try:
            return [self._explanation(h) for h in handles]
        finally:
            for h in handles:
                self._lib.icd_explanation_free(h)

    def _explanation(self, handle: int) -> Explanation:
        lib = self._lib
        count = ctypes.c_size_t()
        p = lib.icd_explanation_prediction(handle).contents
        logits = lib.icd_explanation_logits(handle, ctypes.byref(count))
        logits = [logits[i] for i in range(count.value)]
        raw_tokens = lib.icd_explanation_tokens(handle, ctypes.byref(count))
        tokens = [
            TokenScore(
                id=t.id,
                byte_range=(t.start, t.end) if t.start < t.end else None,
                line=t.line or None,
                score=t.score,
            )
            for t in (raw_tokens[i] for i in range(count.value))
        ]
        raw_lines = lib.icd_explanation_lines(handle, ctypes.byref(count))
        lines = [LineScore(line=raw_lines[i].line, score=raw_lines[i].score) for i in range(count.value)]
        return Explanation(prediction=self._prediction(p, logits), tokens=tokens, line_scores=lines)

    def close(self) -> None:
        """Frees the detector (waiting for calls in flight). Idempotent."""
        self._finalizer()

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def __enter__(self) -> "Detector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"backend={self._backend!r}, labels={self._labels!r}"
        return f"Detector({state})"
