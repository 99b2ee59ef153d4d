"""Finding function definitions in a source buffer or under paths, without a model."""

from __future__ import annotations

import ctypes
import os
import re
from typing import Iterable, List, Optional, Union

from ._errors import InvalidArgumentError
from ._ffi import _LANGUAGE, _Function, _Source, _Str, _check, _encode, _library
from ._types import Function, Gap, Source, SourceListing, SourceTree

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
    return _tree(lib, handle)


def _tree(lib, handle) -> SourceTree:
    """What an ``icd_tree`` handle holds; the handle is freed."""
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
        return SourceTree(functions=functions, gaps=_gaps(raw_gaps, count.value))
    finally:
        lib.icd_tree_free(handle)


def _gaps(raw, count: int) -> List[Gap]:
    return [
        Gap(file=ctypes.string_at(g.file, g.file_len).decode("utf-8", "replace"), message=g.message.decode("utf-8", "replace"))
        for g in (raw[i] for i in range(count))
    ]


def list_sources(
    paths: Union[str, os.PathLike, Iterable[Union[str, os.PathLike]]], *, dot_ignore: bool = False
) -> SourceListing:
    """The files :func:`find_functions_under` would read under ``paths`` (walked as it
    walks them), without reading any, and the files found that it would not read:
    the first half of a scan whose reading is spread over many processes. A path given
    that does not exist raises."""
    encoded = _paths(paths)
    n = len(encoded)
    lib = _library()
    inputs = (_Str * max(n, 1))(*[_Str(p, len(p)) for p in encoded])
    handle = ctypes.c_void_p()
    error = ctypes.c_void_p()
    _check(lib.icd_list_sources(inputs, n, dot_ignore, ctypes.byref(handle), ctypes.byref(error)), error)
    try:
        count = ctypes.c_size_t()
        items = lib.icd_listing_sources(handle, ctypes.byref(count))
        sources = [
            Source(path=ctypes.string_at(s.path, s.path_len), language=_LANGUAGE_NAMES[s.language], named=bool(s.named))
            for s in (items[i] for i in range(count.value))
        ]
        raw_gaps = lib.icd_listing_gaps(handle, ctypes.byref(count))
        return SourceListing(sources=sources, gaps=_gaps(raw_gaps, count.value))
    finally:
        lib.icd_listing_free(handle)


def find_functions_in_sources(sources: Iterable[Source], *, max_file_size: int = 0) -> SourceTree:
    """The function definitions in ``sources`` (from :func:`list_sources`), read as
    :func:`find_functions_under` reads them: a file the walk found that cannot be read,
    is larger than ``max_file_size`` (as there) or is binary is a gap; one named by the
    caller raises. Together, the trees of a listing's parts hold what
    :func:`find_functions_under` finds, less the listing's own gaps."""
    sources = list(sources)
    if not isinstance(max_file_size, int) or not 0 <= max_file_size < 2**64:
        raise InvalidArgumentError(f"argument `max_file_size` is {max_file_size!r}, expected a byte count")
    for i, s in enumerate(sources):
        if not isinstance(s, Source) or s.language not in _LANGUAGE:
            raise InvalidArgumentError(f"argument `sources[{i}]` is {s!r}, expected a Source of list_sources")
        if not isinstance(s.path, bytes) or not s.path:
            raise InvalidArgumentError(f"argument `sources[{i}].path` is {s.path!r}, expected a path's bytes")
    lib = _library()
    n = len(sources)
    inputs = (_Source * max(n, 1))(*[_Source(s.path, len(s.path), _LANGUAGE[s.language], s.named) for s in sources])
    handle = ctypes.c_void_p()
    error = ctypes.c_void_p()
    _check(lib.icd_find_functions_in_sources(inputs, n, max_file_size, ctypes.byref(handle), ctypes.byref(error)), error)
    return _tree(lib, handle)
