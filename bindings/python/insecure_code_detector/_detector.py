"""The detector: a loaded checkpoint and the handle that owns its C object."""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
import warnings
import weakref
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Sequence, Union

from ._errors import FileAccessError, InvalidArgumentError
from ._ffi import (
    _PRECISION,
    _PREPROCESSING,
    _Options,
    _Prediction,
    _Str,
    _WindowPrediction,
    _check,
    _encode,
    _library,
)
from ._scan import find_functions_under
from ._types import Explanation, Finding, LineScore, NotScannedWarning, Prediction, TokenScore, WindowedPrediction

class _Handle:
    """Owns the C handle; frees it once no call is using it."""

    def __init__(self, lib: ctypes.CDLL, ptr: int):
        self._lib = lib
        self._ptr = ptr
        self._users = 0
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def borrow(self) -> Iterator[int]:
        """The handle's pointer for one call: the handle is not freed until the call
        returns. Raises where the detector is closed."""
        with self._cond:
            if not self._ptr:
                raise InvalidArgumentError("the detector is closed")
            self._users += 1
            ptr = self._ptr
        try:
            yield ptr
        finally:
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
    header and in ``icd --help``. ``calibration``: a file ``icd calibrate`` wrote for
    this checkpoint; every ``insecure_probability`` is then the calibrated one, and
    :attr:`threshold` is the file's. ``prediction_cache``: a directory holding ``icd scan``'s
    prediction cache (made if absent), through which :meth:`predict` and
    :meth:`predict_batch` go: a function it holds a prediction of for this checkpoint's
    files and these settings is not classified again, and what the model computes is
    kept (at most ``prediction_cache_max_entries``, 0 for 100,000). Processes on one machine may
    share it; not on a network file system. :attr:`model_calls` counts the functions
    the model classified.

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
        calibration: Optional[Union[str, os.PathLike]] = None,
        prediction_cache: Optional[Union[str, os.PathLike]] = None,
        prediction_cache_max_entries: int = 0,
    ):
        lib = _library()
        for name, value, choices in (("preprocessing", preprocessing, _PREPROCESSING), ("precision", precision, _PRECISION)):
            if value not in choices:
                raise InvalidArgumentError(f"argument `{name}` is {value!r}, expected one of {sorted(choices)}")
        if not isinstance(prediction_cache_max_entries, int) or not 0 <= prediction_cache_max_entries < 2**64:
            raise InvalidArgumentError(f"argument `prediction_cache_max_entries` is {prediction_cache_max_entries!r}, expected a count")
        for name, value in (("max_tokens", max_tokens), ("batch_size", batch_size)):
            if not isinstance(value, int) or not 0 <= value < 2**32:
                raise InvalidArgumentError(f"argument `{name}` is {value!r}, expected an integer in 0..2**32")
        options = _Options(max_tokens, batch_size, _PREPROCESSING[preprocessing], _PRECISION[precision])
        path = os.fsencode(os.fspath(model_dir))
        backend_bytes = backend.encode() if backend is not None else None
        ptr = ctypes.c_void_p()
        error = ctypes.c_void_p()
        calibration_bytes = os.fsencode(os.fspath(calibration)) if calibration is not None else None
        status = lib.icd_detector_open_calibrated(
            path, len(path), backend_bytes, len(backend_bytes or b""), ctypes.byref(options),
            calibration_bytes, len(calibration_bytes or b""), ctypes.byref(ptr), ctypes.byref(error)
        )
        _check(status, error)
        if prediction_cache is not None:
            directory = os.fsencode(os.fspath(prediction_cache))
            status = lib.icd_detector_use_cache(ptr.value, directory, len(directory), prediction_cache_max_entries,
                                                ctypes.byref(error))
            if status != 0:
                lib.icd_detector_free(ptr.value)
                _check(status, error)
        self._handle = _Handle(lib, ptr.value)
        self._lib = lib
        self._finalizer = weakref.finalize(self, self._handle.free)
        self._num_labels = lib.icd_detector_num_labels(ptr.value)
        self._labels = [self._label_name(ptr.value, i) for i in range(self._num_labels)]
        self._backend = lib.icd_detector_backend(ptr.value).decode()
        self._execution = lib.icd_detector_execution(ptr.value).decode()
        self._max_tokens = lib.icd_detector_max_tokens(ptr.value)
        threshold = lib.icd_detector_threshold(ptr.value)
        self._threshold = None if threshold != threshold else threshold  # NaN: none

    @property
    def model_calls(self) -> int:
        """How many functions the model has classified since the detector opened: those
        :meth:`predict` and :meth:`predict_batch` were given, less those the prediction
        cache (``prediction_cache``) answered."""
        with self._handle.borrow() as ptr:
            return self._lib.icd_detector_model_calls(ptr)

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

    @property
    def threshold(self) -> Optional[float]:
        """The calibration file's threshold (flag at or above it), or None where the
        detector has no calibration or its file sets none."""
        return self._threshold

    def warm_up(self) -> int:
        """Compiles the GPU kernels of every model call shape now, rather
        than on the first call of each shape, and returns the number of model calls
        run: 0 on the CPU backends, which compile nothing. On CUDA a later process
        loads the compiled kernels from disk (``ICD_CACHE_DIR``) instead."""
        calls = ctypes.c_size_t()
        error = ctypes.c_void_p()
        with self._handle.borrow() as ptr:
            status = self._lib.icd_detector_warm_up(ptr, ctypes.byref(calls), ctypes.byref(error))
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
        with self._handle.borrow() as ptr:
            status = self._lib.icd_detector_predict_batch(ptr, inputs, n, predictions, logits, len(logits), ctypes.byref(error))
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
        with self._handle.borrow() as ptr:
            status = self._lib.icd_detector_predict_windows(
                ptr, data, len(data), stride, ctypes.byref(window), logits, len(logits), ctypes.byref(error)
            )
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
        with self._handle.borrow() as ptr:
            status = self._lib.icd_detector_explain_batch(ptr, inputs, n, handles, ctypes.byref(error))
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
