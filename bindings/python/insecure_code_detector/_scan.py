"""Finding function definitions in a source buffer or under paths, without a model."""

from __future__ import annotations

import ctypes
import os
import re
from typing import Iterable, List, Optional, Union

from ._errors import InvalidArgumentError
from ._ffi import _LANGUAGE, _Function, _Str, _check, _encode, _library
from ._types import Function, Gap, SourceTree

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
    # The library reads a lone CR as a line end (as compilers do), an LF in `code`.
    text = _LONE_CR.sub(b"\n", data)
    try:
        count = ctypes.c_size_t()
        items = lib.icd_functions_items(handle, ctypes.byref(count))
        return [
            _function(f, text[f.start_byte : f.end_byte].decode("utf-8"), language=language)
            for f in (items[i] for i in range(count.value))
        ]
    finally:
        lib.icd_functions_free(handle)


_LANGUAGE_NAMES = {number: name for name, number in _LANGUAGE.items()}

# A CR not followed by LF.
_LONE_CR = re.compile(rb"\r(?!\n)")


def find_functions_under(
    paths: Union[str, os.PathLike, Iterable[Union[str, os.PathLike]]], *, max_file_size: int = 0,
    dot_ignore: bool = False
) -> SourceTree:
    """The function definitions under ``paths`` (files, or directories walked as ``icd
    scan`` walks them: in a git work tree every tracked file whatever ``.gitignore``
    says, untracked files unless ``.gitignore`` leaves them out, ``.ignore`` files only
    with ``dot_ignore``, hidden files included, symbolic links never followed) and
    what could not be covered. ``max_file_size``: the largest file read, in bytes (0:
    16 MiB; at most 32 MiB, the most the parser reads of one file, else
    ``InvalidArgumentError``). A path given that does not exist or cannot be read
    raises."""
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
