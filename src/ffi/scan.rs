//! Finding function definitions: in one source buffer (`icd_find_functions`) and
//! under paths (`icd_find_functions_under`), with the handles that hold them.

use std::ffi::{c_char, CString};
use std::path::PathBuf;

use super::boundary::*;
use super::errors::{icd_status, icd_error, CallError};
#[cfg(feature = "scan")]
use super::errors::choices;
use super::library::icd_str;

/// The values of `icd_find_functions`'s `language`.
// The Rust `scan::Language`'s numbers and names, checked as `icd_precision`'s are.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum icd_language {
    /// C, parsed with tree-sitter's C grammar.
    ICD_LANGUAGE_C = 0,
    /// C++, parsed with tree-sitter's C++ grammar.
    ICD_LANGUAGE_CPP = 1,
}

/// One function definition that `icd_find_functions` found. Its strings are
/// NUL-terminated and owned by the `icd_functions` it came from.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct icd_function {
    /// Its name as written (`foo`, `Class::method`, `operator==`, or `<anonymous>`).
    pub name: *const c_char,
    /// The name's length in bytes.
    pub name_len: usize,
    /// First line (from 1) of the definition, return type and template header included.
    pub start_line: usize,
    /// Last line of the definition (inclusive).
    pub end_line: usize,
    /// The definition's bytes in the source are `[start_byte, end_byte)`: the text to
    /// classify.
    pub start_byte: usize,
    /// End of the definition's bytes (exclusive).
    pub end_byte: usize,
    /// A comment holding `icd: ignore` is on its first line or the line before it.
    pub suppressed: bool,
    /// Identifies the function across moves and edits elsewhere: a hash of its name and
    /// text without comments or whitespace, then `:N` among equal ones in the source
    /// (as `icd scan` reports it).
    pub fingerprint: *const c_char,
}

/// An inclusive range of lines (from 1).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct icd_line_range {
    /// First line.
    pub start_line: usize,
    /// Last line (inclusive).
    pub end_line: usize,
}

/// Opaque: the function definitions of one source buffer. Made by
/// `icd_find_functions`, read through `icd_functions_items` and
/// `icd_functions_unparsed_lines` (from several threads at once if need be), released
/// by `icd_functions_free`.
pub struct icd_functions {
    items: Vec<icd_function>,
    unparsed: Vec<icd_line_range>,
    /// What `items`' name and fingerprint pointers point into.
    _strings: Vec<CString>,
}

/// One function definition `icd_find_functions_under` found, with its file. Strings
/// are NUL-terminated and owned by the `icd_tree` it came from.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct icd_tree_function {
    /// The file, as the walk found it (the path given, joined with the path below it),
    /// as text: each byte that is not UTF-8 written `\xHH` (in such a name, or one
    /// holding `\x`, each backslash is doubled).
    pub file: *const c_char,
    /// The file's length in bytes.
    pub file_len: usize,
    /// An `icd_language` value: how the file was parsed (by its extension, C for a file
    /// named by the caller whose extension is neither; from
    /// `icd_find_functions_in_sources`, the source's `language`).
    pub language: u32,
    /// The definition: name, lines, bytes in `code`'s file, suppression, fingerprint.
    pub function: icd_function,
    /// The definition's text, what to classify (UTF-8: the file decoded as `icd scan`
    /// decodes it, each invalid sequence U+FFFD).
    pub code: *const c_char,
    /// The text's length in bytes.
    pub code_len: usize,
}

/// A part of the tree `icd_find_functions_under` did not cover: a file not read (a
/// link, not a regular file, unreadable, too large, binary) or lines that could not be
/// parsed. Strings are NUL-terminated and owned by the `icd_tree`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct icd_gap {
    /// The file.
    pub file: *const c_char,
    /// The file's length in bytes.
    pub file_len: usize,
    /// What was not covered, in one line (as `icd scan` reports it).
    pub message: *const c_char,
}

/// Opaque: the function definitions under some paths and the gaps. Made by
/// `icd_find_functions_under`, read through `icd_tree_functions` and `icd_tree_gaps`
/// (from several threads at once if need be), released by `icd_tree_free`.
pub struct icd_tree {
    functions: Vec<icd_tree_function>,
    gaps: Vec<icd_gap>,
    /// What the pointers above point into.
    _strings: Vec<CString>,
}

/// Finds the function definitions in `source_len` bytes of UTF-8 source at `source`,
/// as `icd scan` does (tree-sitter, with a reading per preprocessor branch where the
/// file has syntax errors). `language` is an `icd_language` value. On `ICD_OK`,
/// `*functions_out` receives a new `icd_functions` that the caller releases with
/// `icd_functions_free`; on failure it is left untouched. A build without the `scan`
/// cargo feature fails with `ICD_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `source` must be NULL or point to `source_len` readable bytes; `functions_out` and
/// `error_out` each NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn icd_find_functions(
    source: *const c_char,
    source_len: usize,
    language: u32,
    functions_out: *mut *mut icd_functions,
    error_out: *mut *mut icd_error,
) -> icd_status {
    let body = || -> Result<(), CallError> {
        let functions_out = out_arg(functions_out, "functions_out")?;
        // SAFETY: NULL or `source_len` readable bytes (the contract).
        let source = unsafe { str_arg(source, source_len, "source") }?;
        let handle = Box::into_raw(Box::new(find_functions(source, language)?));
        // SAFETY: not NULL (checked) and writable (the contract).
        unsafe { functions_out.write(handle) };
        Ok(())
    };
    // SAFETY: `error_out` is NULL or writable (the contract).
    unsafe { guard(error_out, body) }
}

#[cfg(feature = "scan")]
fn find_functions(source: &str, language: u32) -> Result<icd_functions, CallError> {
    use crate::scan::Language;
    let language = Language::from_code(language).ok_or_else(|| {
        CallError::invalid(
            "language",
            format!(
                "is {language}, expected {}",
                choices(Language::ALL.map(|l| (l.code(), l.name())))
            ),
        )
    })?;
    let found = crate::scan::find_functions(source, language);
    let mut strings = Vec::with_capacity(2 * found.functions.len());
    let items = found
        .functions
        .iter()
        .map(|f| icd_function::of(f, &mut strings))
        .collect();
    Ok(icd_functions {
        items,
        unparsed: found
            .unparsed_lines
            .iter()
            .map(|r| icd_line_range {
                start_line: r.start_line,
                end_line: r.end_line,
            })
            .collect(),
        _strings: strings,
    })
}

#[cfg(not(feature = "scan"))]
fn find_functions(_: &str, _: u32) -> Result<icd_functions, CallError> {
    Err(CallError::invalid(
        "source",
        "cannot be read: this build has no function finding (cargo feature `scan`)",
    ))
}

/// Finds the function definitions under `count` paths (files, or directories walked as
/// `icd scan` walks them: in a git work tree every tracked file whatever `.gitignore`
/// says, untracked files unless `.gitignore` leaves them out, `.ignore` files only with
/// `dot_ignore`; hidden files included; symbolic links never followed) and what could
/// not be covered. `max_file_size`: the largest file read, in bytes (0: 16 MiB; at most
/// 32 MiB, the most the parser reads of one file, else `ICD_INVALID_ARGUMENT`). On
/// `ICD_OK`, `*tree_out` receives a new `icd_tree` that the caller releases with
/// `icd_tree_free`; a path given that does not exist or cannot be read is an error.
///
/// # Safety
/// `paths` must be NULL or `count` readable `icd_str`s, each NULL or pointing to its
/// `len` readable bytes; `tree_out` and `error_out` each NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn icd_find_functions_under(
    paths: *const icd_str,
    count: usize,
    max_file_size: u64,
    dot_ignore: bool,
    tree_out: *mut *mut icd_tree,
    error_out: *mut *mut icd_error,
) -> icd_status {
    let body = || -> Result<(), CallError> {
        let tree_out = out_arg(tree_out, "tree_out")?;
        // SAFETY: NULL or `count` readable `icd_str`s (the contract).
        let inputs = unsafe { slice_arg(paths, count, "paths") }?;
        // SAFETY: each NULL or pointing to its `len` readable bytes (the contract).
        let paths = unsafe { paths_arg(inputs, "paths") }?;
        let handle = Box::into_raw(Box::new(find_functions_under(
            &paths,
            max_file_size,
            dot_ignore,
        )?));
        // SAFETY: not NULL (checked) and writable (the contract).
        unsafe { tree_out.write(handle) };
        Ok(())
    };
    // SAFETY: `error_out` is NULL or writable (the contract).
    unsafe { guard(error_out, body) }
}

#[cfg(feature = "scan")]
fn find_functions_under(
    paths: &[PathBuf],
    max_file_size: u64,
    dot_ignore: bool,
) -> Result<icd_tree, CallError> {
    use crate::scan::TreeOptions;
    let options = TreeOptions {
        max_file_size: match max_file_size {
            0 => TreeOptions::DEFAULT_MAX_FILE_SIZE,
            n => n,
        },
        dot_ignore,
    };
    let found = crate::scan::find_functions_under(paths, &options, None)?;
    Ok(icd_tree::of(found, |file, _| {
        crate::scan::Language::from_path(std::path::Path::new(file))
            .unwrap_or(crate::scan::Language::C)
    }))
}

#[cfg(feature = "scan")]
impl icd_tree {
    /// `found` as the C API hands it out, its strings kept with it, each function's
    /// language `language_of(its file, its index in found.functions)`.
    pub(super) fn of(
        found: crate::scan::Found,
        language_of: impl Fn(&str, usize) -> crate::scan::Language,
    ) -> Self {
        let mut strings = Vec::new();
        let mut functions = Vec::with_capacity(found.functions.len());
        for (i, (file, f)) in found.functions.iter().enumerate() {
            let (file_ptr, file_len) = keep(&mut strings, file);
            let function = icd_function::of(f, &mut strings);
            let (code, code_len) = keep(&mut strings, &f.code);
            functions.push(icd_tree_function {
                file: file_ptr,
                file_len,
                language: language_of(file, i).code(),
                function,
                code,
                code_len,
            });
        }
        icd_tree {
            functions,
            gaps: icd_gap::all(&found.gaps, &mut strings),
            _strings: strings,
        }
    }
}

#[cfg(feature = "scan")]
impl icd_gap {
    /// `gaps`, their strings kept in `strings`.
    pub(super) fn all(gaps: &[crate::scan::Gap], strings: &mut Vec<CString>) -> Vec<Self> {
        gaps.iter()
            .map(|gap| {
                let (file, file_len) = keep(strings, &gap.file);
                let (message, _) = keep(strings, &gap.message());
                icd_gap {
                    file,
                    file_len,
                    message,
                }
            })
            .collect()
    }
}

#[cfg(not(feature = "scan"))]
fn find_functions_under(_: &[PathBuf], _: u64, _: bool) -> Result<icd_tree, CallError> {
    Err(CallError::invalid(
        "paths",
        "cannot be read: this build has no function finding (cargo feature `scan`)",
    ))
}

/// The functions `icd_find_functions_under` found, file by file in path order and in
/// source order within a file, owned by `tree`; `*count_out` (if not NULL) receives
/// their number. NULL (and 0) for a NULL handle.
///
/// # Safety
/// `tree` must be NULL or a live handle; `count_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn icd_tree_functions(
    tree: *const icd_tree,
    count_out: *mut usize,
) -> *const icd_tree_function {
    // SAFETY: as the contract says, for both.
    unsafe { array_of(tree, count_out, |t| &t.functions) }
}

/// What could not be covered, by file, owned by `tree`; `*count_out` (if not NULL)
/// receives their number. NULL (and 0) for a NULL handle.
///
/// # Safety
/// `tree` must be NULL or a live handle; `count_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn icd_tree_gaps(
    tree: *const icd_tree,
    count_out: *mut usize,
) -> *const icd_gap {
    // SAFETY: as the contract says, for both.
    unsafe { array_of(tree, count_out, |t| &t.gaps) }
}

/// Releases what `icd_find_functions_under` made. NULL is ignored.
///
/// # Safety
/// `tree` must be NULL or a handle not yet freed, freed only this once.
#[no_mangle]
pub unsafe extern "C" fn icd_tree_free(tree: *mut icd_tree) {
    // SAFETY: from `Box::into_raw`, freed once (the contract).
    unsafe { free_handle(tree) }
}

/// `text` as a C string kept in `strings`: its pointer and length. A CString's bytes
/// stay where they are when the CString itself moves, so the pointer lives as long as
/// `strings` holds it.
#[cfg(feature = "scan")]
pub(super) fn keep(strings: &mut Vec<CString>, text: &str) -> (*const c_char, usize) {
    let s = c_string(text);
    let pointer = (s.as_ptr(), s.as_bytes().len());
    strings.push(s);
    pointer
}

#[cfg(feature = "scan")]
impl icd_function {
    /// `f`, its strings kept in `strings`.
    fn of(f: &crate::scan::FunctionSpan, strings: &mut Vec<CString>) -> Self {
        let (name, name_len) = keep(strings, &f.name);
        let (fingerprint, _) = keep(strings, &f.fingerprint);
        icd_function {
            name,
            name_len,
            start_line: f.start_line,
            end_line: f.end_line,
            start_byte: f.start_byte,
            end_byte: f.end_byte,
            suppressed: f.suppressed,
            fingerprint,
        }
    }
}

/// The functions found, in source order, owned by `functions`; `*count_out` (if not
/// NULL) receives their number. NULL (and 0) for a NULL handle.
///
/// # Safety
/// `functions` must be NULL or a live handle; `count_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn icd_functions_items(
    functions: *const icd_functions,
    count_out: *mut usize,
) -> *const icd_function {
    // SAFETY: as the contract says, for both.
    unsafe { array_of(functions, count_out, |f| &f.items) }
}

/// Lines holding code that no reading could parse into a definition or another
/// complete item: where functions may have gone unfound. In source order, owned by
/// `functions`; `*count_out` (if not NULL) receives their number; empty when the whole
/// source parsed.
///
/// # Safety
/// `functions` must be NULL or a live handle; `count_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn icd_functions_unparsed_lines(
    functions: *const icd_functions,
    count_out: *mut usize,
) -> *const icd_line_range {
    // SAFETY: as the contract says, for both.
    unsafe { array_of(functions, count_out, |f| &f.unparsed) }
}

/// Releases what `icd_find_functions` made. NULL is ignored.
///
/// # Safety
/// `functions` must be NULL or a handle not yet freed, freed only this once.
#[no_mangle]
pub unsafe extern "C" fn icd_functions_free(functions: *mut icd_functions) {
    // SAFETY: from `Box::into_raw`, freed once (the contract).
    unsafe { free_handle(functions) }
}


#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "scan")]
    #[test]
    fn the_c_language_enum_is_the_rust_table() {
        use crate::scan::Language;
        use icd_language::*;
        let languages = [ICD_LANGUAGE_C, ICD_LANGUAGE_CPP];
        assert_eq!(languages.len(), Language::ALL.len());
        for c in languages {
            let l = Language::from_code(c as u32).expect("a Rust language");
            assert_eq!(
                format!("{c:?}"),
                format!("ICD_LANGUAGE_{}", l.name().to_uppercase())
            );
        }
    }
}
