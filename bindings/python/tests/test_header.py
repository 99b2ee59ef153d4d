"""The ctypes declarations against the checked-in C header: every function, argument,
return type, struct field and status number must match, so that they cannot drift."""

import ctypes
import os
import re
from pathlib import Path

import insecure_code_detector as icd
from insecure_code_detector import _errors, _ffi

HEADER = Path(os.environ.get("ICD_CHECKOUT") or Path(__file__).resolve().parents[3]) / "include" / "insecure_code_detector.h"
P = ctypes.POINTER

# C types as cbindgen writes them -> the ctypes type that passes them.
C_TYPES = {
    "void": None,
    "bool": ctypes.c_bool,
    "float": ctypes.c_float,
    "float *": P(ctypes.c_float),
    "uint32_t": ctypes.c_uint32,
    "size_t": ctypes.c_size_t,
    "size_t *": P(ctypes.c_size_t),
    "const char *": ctypes.c_char_p,
    "const char **": P(ctypes.c_char_p),
    "enum icd_status": ctypes.c_int,
    # Opaque handles travel as void pointers.
    "struct icd_detector *": ctypes.c_void_p,
    "const struct icd_detector *": ctypes.c_void_p,
    "struct icd_detector **": P(ctypes.c_void_p),
    "struct icd_error *": ctypes.c_void_p,
    "const struct icd_error *": ctypes.c_void_p,
    "struct icd_error **": P(ctypes.c_void_p),
    "struct icd_options": _ffi._Options,
    "const struct icd_options *": P(_ffi._Options),
    "struct icd_prediction *": P(_ffi._Prediction),
    "const struct icd_prediction *": P(_ffi._Prediction),
    "const float *": P(ctypes.c_float),
    "struct icd_explanation *": ctypes.c_void_p,
    "const struct icd_explanation *": ctypes.c_void_p,
    "struct icd_explanation **": P(ctypes.c_void_p),
    "const struct icd_token_score *": P(_ffi._TokenScore),
    "const struct icd_line_score *": P(_ffi._LineScore),
    "const struct icd_str *": P(_ffi._Str),
    "struct icd_prediction": _ffi._Prediction,
    "struct icd_window_prediction *": P(_ffi._WindowPrediction),
    "struct icd_functions *": ctypes.c_void_p,
    "const struct icd_functions *": ctypes.c_void_p,
    "struct icd_functions **": P(ctypes.c_void_p),
    "const struct icd_function *": P(_ffi._Function),
    "const struct icd_line_range *": P(_ffi._LineRange),
    "struct icd_function": _ffi._Function,
    "uint64_t": ctypes.c_uint64,
    "double": ctypes.c_double,
    "struct icd_tree **": P(ctypes.c_void_p),
    "const struct icd_tree *": ctypes.c_void_p,
    "struct icd_tree *": ctypes.c_void_p,
    "const struct icd_tree_function *": P(_ffi._TreeFunction),
    "const struct icd_gap *": P(_ffi._Gap),
    "struct icd_listing **": P(ctypes.c_void_p),
    "const struct icd_listing *": ctypes.c_void_p,
    "struct icd_listing *": ctypes.c_void_p,
    "const struct icd_source *": P(_ffi._Source),
    "const struct icd_labelled_function *": P(_ffi._LabelledFunction),
    "icd_training_callback": _ffi._TrainingCallback,
    "void *": ctypes.c_void_p,
}


def header_text():
    text = re.sub(r"//[^\n]*", "", HEADER.read_text())
    # Preprocessor lines and the C++ guard's braces.
    return re.sub(r'(?m)^\s*(#.*|extern "C" \{|\})\s*$', "", text)


def c_type(declaration):
    """The type of `declaration` (`const char *model_dir`, `size_t`), spaced as above."""
    declaration = " ".join(declaration.split())
    match = re.fullmatch(r"(.*?[\s*])(\w+)", declaration)
    words = match.group(1) if match and match.group(1).strip() not in ("", "const", "struct", "enum") else declaration + " "
    words = re.sub(r"\s*\*", " *", words.strip()).replace("* *", "**")
    return C_TYPES[words]


def functions():
    found = {}
    for ret, name, params in re.findall(r"([A-Za-z_][\w\s\*]*?)\s*\b(icd_\w+)\(([^)]*)\);", header_text()):
        params = [p for p in (x.strip() for x in params.split(",")) if p and p != "void"]
        found[name] = ([c_type(p) for p in params], c_type(ret))
    return found


def test_every_function_is_declared_as_the_header_says():
    declared = _ffi._signatures()
    in_header = functions()
    # The parse missed no declaration: every name the header calls is parsed.
    assert set(in_header) == set(re.findall(r"\b(icd_\w+)\(", header_text()))
    assert sorted(declared) == sorted(in_header)
    for name, (argtypes, restype) in in_header.items():
        assert declared[name] == (argtypes, restype), name


def test_structs_have_the_headers_fields_in_order():
    text = header_text()
    for name, struct in [
        ("icd_options", _ffi._Options),
        ("icd_prediction", _ffi._Prediction),
        ("icd_str", _ffi._Str),
        ("icd_token_score", _ffi._TokenScore),
        ("icd_line_score", _ffi._LineScore),
        ("icd_function", _ffi._Function),
        ("icd_line_range", _ffi._LineRange),
        ("icd_window_prediction", _ffi._WindowPrediction),
        ("icd_tree_function", _ffi._TreeFunction),
        ("icd_gap", _ffi._Gap),
        ("icd_source", _ffi._Source),
        ("icd_labelled_function", _ffi._LabelledFunction),
        ("icd_training_step", _ffi._TrainingStep),
    ]:
        body = re.search(r"typedef struct %s \{(.*?)\} %s;" % (name, name), text, re.S).group(1)
        fields = [f.strip() for f in body.split(";") if f.strip()]
        want = [(re.search(r"(\w+)$", f).group(1), c_type(f)) for f in fields]
        assert list(struct._fields_) == want, name


def test_status_numbers_match_the_header():
    body = re.search(r"typedef enum icd_status \{(.*?)\} icd_status;", header_text(), re.S).group(1)
    numbers = {name: int(value) for name, value in re.findall(r"(ICD_\w+) = (\d+)", body)}
    assert numbers["ICD_OK"] == 0
    errors = {number: cls.status for number, cls in _errors._ERRORS.items()}
    assert errors == {n: name for name, n in numbers.items() if n != 0}


def enum_values(name):
    body = re.search(r"typedef enum %s \{(.*?)\} %s;" % (name, name), header_text(), re.S).group(1)
    return {value: int(number) for value, number in re.findall(r"(ICD_\w+) = (\d+)", body)}


def test_option_names_and_numbers_match_the_headers_enums():
    # The package's names are the C values' names, lowercased past their prefix:
    # ICD_PRECISION_INT8 is "int8", ICD_PREPROCESSING_COLLAPSE_WHITESPACE "collapse_whitespace".
    for enum, prefix, table in [
        ("icd_precision", "ICD_PRECISION_", _ffi._PRECISION),
        ("icd_preprocessing", "ICD_PREPROCESSING_", _ffi._PREPROCESSING),
        ("icd_language", "ICD_LANGUAGE_", _ffi._LANGUAGE),
    ]:
        in_header = {value[len(prefix):].lower(): number for value, number in enum_values(enum).items()}
        assert table == in_header, enum
