"""Fine-tuning the classifier on labelled functions: :func:`train`, over the library's
trainer (``icd_train``), the one ``icd train`` runs."""

from __future__ import annotations

import contextlib
import ctypes
import json
import math
import operator
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Tuple, Union

from ._errors import DetectorError, InvalidArgumentError, StoppedError
from ._ffi import _check, _encode, _LabelledFunction, _library, _TrainingCallback

PathLike = Union[str, "os.PathLike[str]"]
Labelled = Tuple[Union[str, bytes], int]


@dataclass(frozen=True)
class TrainingStep:
    """One optimizer step of a :func:`train` run."""

    step: int
    """The step, from 1."""
    total_steps: int
    """Steps in the whole run."""
    epoch: int
    """Its epoch, from 1."""
    loss: float
    """The mean cross-entropy of its examples, before its update."""
    lr: float
    """The learning rate its update used."""
    grad_norm: float
    """The global gradient norm, before clipping."""


def train(
    model_dir: PathLike,
    train: Iterable[Labelled],
    output: PathLike,
    *,
    validation: Optional[Iterable[Labelled]] = None,
    backend: Optional[str] = None,
    on_step: Optional[Callable[[TrainingStep], Optional[bool]]] = None,
    warmup_steps: Optional[int] = None,
    warmup_ratio: Optional[float] = None,
    **recipe,
) -> Path:
    """Fine-tunes the checkpoint in ``model_dir`` on ``train`` and writes the result to
    ``output`` (which must not exist, or be an empty directory): a checkpoint directory
    in the hub's layout that :class:`Detector` and transformers load, with its
    ``training.json``. Written whole or not at all. Returns ``output``.

    ``train`` and ``validation``: ``(code, label)`` pairs, ``label`` an index of the
    checkpoint's labels (1 is insecure in the hub's checkpoint). With ``validation``,
    the model kept is the epoch's with the best validation accuracy.

    The recipe is ``icd train``'s, by the names ``training.json`` records:
    ``epochs``, ``batch_size``, ``gradient_accumulation``, ``learning_rate``,
    ``weight_decay``, ``max_grad_norm`` (None: no clipping), ``dropout``, ``seed``,
    ``shuffle``, ``class_weight`` ("uniform" or "balanced"), ``train_layers``,
    ``max_tokens``, ``preprocessing``; and ``warmup_steps`` or ``warmup_ratio``. Those
    left out keep their defaults (CodeXGLUE's defect-detection recipe). An unknown name
    or a value no run can use raises :class:`InvalidArgumentError` naming it.

    ``on_step`` is called after each optimizer step with its :class:`TrainingStep`;
    returning False (or anything false but None) stops the run with
    :class:`StoppedError`, and an exception it raises stops the run and is raised
    again here. Ctrl-C (on the main thread, where Python's default handler is in
    place) stops the run after the step under way and raises KeyboardInterrupt. A stop
    takes effect after the step, and nothing is written; asked on the run's last step
    it comes too late: the run ends normally, ``output`` is written, and an exception
    is raised even so (with a note naming ``output``).
    """
    # Every value as given, checked by its own name before the warm-up is merged.
    for key, value in dict(recipe, warmup_steps=warmup_steps, warmup_ratio=warmup_ratio).items():
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidArgumentError(f"argument `{key}` is {value!r}, expected a finite number")
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise InvalidArgumentError(f"argument `{key}`: {e}") from None
    fields = dict(recipe)
    given = [name for name, v in (("warmup", fields.get("warmup")), ("warmup_steps", warmup_steps),
                                  ("warmup_ratio", warmup_ratio)) if v is not None]
    if len(given) > 1:
        raise InvalidArgumentError(f"argument `{given[1]}`: give one of warmup, warmup_steps and warmup_ratio, not {given}")
    if warmup_steps is not None:
        fields["warmup"] = {"steps": warmup_steps}
    if warmup_ratio is not None:
        fields["warmup"] = {"ratio": warmup_ratio}
    recipe_json = json.dumps(fields, allow_nan=False).encode()
    model_path = os.fsencode(os.fspath(model_dir))
    output_path = os.fsencode(os.fspath(output))
    backend_bytes = backend.encode() if backend is not None else None
    keep: List[bytes] = []
    train_rows = _rows(train, "train", keep)
    validation_rows = _rows(validation, "validation", keep) if validation is not None else None

    raised: List[BaseException] = []
    interrupted: List[BaseException] = []

    def callback(step, _user_data):
        try:
            if interrupted:
                return 1
            if on_step is None:
                return 0
            s = step.contents
            answer = on_step(TrainingStep(s.step, s.total_steps, s.epoch, s.loss, s.lr, s.grad_norm))
            return 1 if interrupted or not (answer is None or answer) else 0
        except BaseException as e:  # noqa: B036: whatever it raises must stop the run
            raised.append(e)
            return 1

    c_callback = _TrainingCallback(callback)
    error = ctypes.c_void_p()
    with _sigint_recorded(interrupted):
        status = _library().icd_train(
            model_path, len(model_path),
            backend_bytes, len(backend_bytes or b""),
            recipe_json, len(recipe_json),
            train_rows, len(train_rows),
            validation_rows, 0 if validation_rows is None else len(validation_rows),
            output_path, len(output_path),
            c_callback, None, ctypes.byref(error),
        )
    failure = (raised or interrupted or [None])[0]
    if failure is not None:
        try:
            _check(status, error)
        except StoppedError:
            pass
        except DetectorError as e:
            if failure.__cause__ is None:
                raise failure from e
            raise failure
        if status == 0 and hasattr(failure, "add_note"):  # Python 3.11 and later
            failure.add_note(f"the run had ended: {os.fsdecode(output_path)} is written")
        raise failure
    _check(status, error)
    return Path(os.fsdecode(output_path))


@contextlib.contextmanager
def _sigint_recorded(interrupted: List[BaseException]):
    """Ctrl-C recorded in ``interrupted`` rather than raised, for the duration: raised
    at a callback's entry it would be lost (ctypes prints it and goes on), so the
    callback stops the run instead. Only on the main thread, where signals arrive, and
    only over Python's default handler: one ignored or handled otherwise stays so."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    try:
        previous = signal.signal(signal.SIGINT, lambda *_: interrupted.append(KeyboardInterrupt()))
    except ValueError:  # a subinterpreter's main thread, where signals cannot be set
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _rows(pairs: Iterable[Labelled], argument: str, keep: List[bytes]) -> ctypes.Array:
    """``pairs`` as an ``icd_labelled_function`` array; the encoded codes go into
    ``keep``, which must outlive the call."""
    rows = []
    for i, pair in enumerate(pairs):
        try:
            code, label = pair
        except (TypeError, ValueError):
            raise InvalidArgumentError(f"argument `{argument}[{i}]`: expected a (code, label) pair") from None
        try:
            index = operator.index(label) if not isinstance(label, bool) else -1
        except TypeError:
            index = -1
        if not 0 <= index < 2**32:
            raise InvalidArgumentError(
                f"argument `{argument}[{i}]`: the label is {label!r}, expected an index of the checkpoint's labels"
            )
        encoded = _encode(code, f"{argument}[{i}].code")
        keep.append(encoded)
        rows.append(_LabelledFunction(encoded, len(encoded), index))
    return (_LabelledFunction * len(rows))(*rows)
