"""Fine-tuning the classifier on labelled functions: :func:`train`, over the library's
trainer (``icd_train``), the one ``icd train`` runs."""

from __future__ import annotations

import ctypes
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Tuple, Union

from ._errors import InvalidArgumentError, StoppedError
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
    returning False stops the run (:class:`StoppedError`), and an exception it raises
    (KeyboardInterrupt included) stops the run and is raised again here. Nothing is
    written either way.
    """
    fields = dict(recipe)
    if warmup_steps is not None and warmup_ratio is not None:
        raise InvalidArgumentError("argument `warmup_steps`: give warmup_steps or warmup_ratio, not both")
    if warmup_steps is not None:
        fields["warmup"] = {"steps": warmup_steps}
    if warmup_ratio is not None:
        fields["warmup"] = {"ratio": warmup_ratio}
    recipe_json = json.dumps(fields).encode()
    model_path = os.fsencode(os.fspath(model_dir))
    output_path = os.fsencode(os.fspath(output))
    backend_bytes = backend.encode() if backend is not None else None
    keep: List[bytes] = []
    train_rows = _rows(train, "train", keep)
    validation_rows = _rows(validation, "validation", keep) if validation is not None else None

    raised: List[BaseException] = []

    def callback(step, _user_data):
        if on_step is None:
            return True
        try:
            s = step.contents
            answer = on_step(TrainingStep(s.step, s.total_steps, s.epoch, s.loss, s.lr, s.grad_norm))
            return answer is not False
        except BaseException as e:  # noqa: B036: KeyboardInterrupt too must stop the run
            raised.append(e)
            return False

    c_callback = _TrainingCallback(callback)
    error = ctypes.c_void_p()
    status = _library().icd_train(
        model_path, len(model_path),
        backend_bytes, len(backend_bytes or b""),
        recipe_json, len(recipe_json),
        train_rows, len(train_rows),
        validation_rows, 0 if validation_rows is None else len(validation_rows),
        output_path, len(output_path),
        c_callback, None, ctypes.byref(error),
    )
    if raised:
        try:
            _check(status, error)
        except StoppedError:
            pass
        raise raised[0]
    _check(status, error)
    return Path(output)


def _rows(pairs: Iterable[Labelled], argument: str, keep: List[bytes]) -> ctypes.Array:
    """``pairs`` as an ``icd_labelled_function`` array; the encoded codes go into
    ``keep``, which must outlive the call."""
    rows = []
    for i, pair in enumerate(pairs):
        try:
            code, label = pair
        except (TypeError, ValueError):
            raise InvalidArgumentError(f"argument `{argument}[{i}]`: expected a (code, label) pair") from None
        if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < 2**32:
            raise InvalidArgumentError(
                f"argument `{argument}[{i}]`: the label is {label!r}, expected an index of the checkpoint's labels"
            )
        encoded = _encode(code, f"{argument}[{i}].code")
        keep.append(encoded)
        rows.append(_LabelledFunction(encoded, len(encoded), label))
    return (_LabelledFunction * len(rows))(*rows)
