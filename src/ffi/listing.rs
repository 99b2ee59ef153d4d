//! A scan split in two: listing the files under paths (`icd_list_sources`) in one
//! process, and reading some of them (`icd_find_functions_in_sources`) in others, as a
//! distributed scan does, with what the two together find equal to
//! `icd_find_functions_under`'s.

use std::ffi::{c_char, CString};

use super::boundary::*;
use super::errors::{icd_error, icd_status, CallError};
use super::library::icd_str;
use super::scan::{icd_gap, icd_tree};

/// A file to read: one that `icd_list_sources` listed, or one its caller passes to
/// `icd_find_functions_in_sources`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct icd_source {
    /// The path's bytes (any bytes on Unix), as the walk found it or the caller named
    /// it; NUL-terminated where the listing made it.
    pub path: *const c_char,
    /// The path's length in bytes.
    pub path_len: usize,
    /// An `icd_language` value: how the file is parsed.
    pub language: u32,
    /// Named by the caller rather than found by the walk: a failure to read it is an
    /// error, not a gap.
    pub named: bool,
}

/// Opaque: the files under some paths that a scan reads, and those it does not. Made
/// by `icd_list_sources`, read through `icd_listing_sources` and `icd_listing_gaps`
/// (from several threads at once if need be), released by `icd_listing_free`.
pub struct icd_listing {
    sources: Vec<icd_source>,
    gaps: Vec<icd_gap>,
    /// What the pointers above point into.
    _strings: Vec<CString>,
}

/// Lists the files `icd_find_functions_under` would read under `count` paths (walked
/// as it walks them), without reading any, and the files found that it would not read
/// (links, not regular files) as gaps. On `ICD_OK`, `*listing_out` receives a new
/// `icd_listing` that the caller releases with `icd_listing_free`; a path given that
/// does not exist is an error.
///
/// # Safety
/// `paths` must be NULL or `count` readable `icd_str`s, each NULL or pointing to its
/// `len` readable bytes; `listing_out` and `error_out` each NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn icd_list_sources(
    paths: *const icd_str,
    count: usize,
    dot_ignore: bool,
    listing_out: *mut *mut icd_listing,
    error_out: *mut *mut icd_error,
) -> icd_status {
    let body = || -> Result<(), CallError> {
        let listing_out = out_arg(listing_out, "listing_out")?;
        // SAFETY: NULL or `count` readable `icd_str`s (the contract).
        let inputs = unsafe { slice_arg(paths, count, "paths") }?;
        // SAFETY: each NULL or pointing to its `len` readable bytes (the contract).
        let paths = unsafe { paths_arg(inputs, "paths") }?;
        let handle = Box::into_raw(Box::new(list_sources(&paths, dot_ignore)?));
        // SAFETY: not NULL (checked) and writable (the contract).
        unsafe { listing_out.write(handle) };
        Ok(())
    };
    // SAFETY: `error_out` is NULL or writable (the contract).
    unsafe { guard(error_out, body) }
}

#[cfg(feature = "scan")]
fn list_sources(paths: &[std::path::PathBuf], dot_ignore: bool) -> Result<icd_listing, CallError> {
    use crate::scan::TreeOptions;
    let options = TreeOptions {
        dot_ignore,
        ..TreeOptions::default()
    };
    let listing = crate::scan::list_sources(paths, &options, None)?;
    let mut strings = Vec::new();
    let sources = listing
        .sources
        .iter()
        .map(|source| {
            let path = path_c_string(&source.path);
            let pointer = (path.as_ptr(), path.as_bytes().len());
            strings.push(path);
            icd_source {
                path: pointer.0,
                path_len: pointer.1,
                language: source.language.code(),
                named: source.named,
            }
        })
        .collect();
    let gaps = icd_gap::all(&listing.gaps, &mut strings);
    Ok(icd_listing {
        sources,
        gaps,
        _strings: strings,
    })
}

#[cfg(not(feature = "scan"))]
fn list_sources(_: &[std::path::PathBuf], _: bool) -> Result<icd_listing, CallError> {
    Err(CallError::invalid(
        "paths",
        "cannot be read: this build has no function finding (cargo feature `scan`)",
    ))
}

/// A path's bytes as a C string (a path holds no NUL on Unix; elsewhere it is UTF-8).
#[cfg(feature = "scan")]
fn path_c_string(path: &std::path::Path) -> CString {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        CString::new(path.as_os_str().as_bytes()).expect("a Unix path holds no NUL")
    }
    #[cfg(not(unix))]
    {
        super::boundary::c_string(&path.to_string_lossy())
    }
}

/// The files to read, in the order `icd_find_functions_under` reads them, owned by
/// `listing`; `*count_out` (if not NULL) receives their number. NULL (and 0) for a
/// NULL handle.
///
/// # Safety
/// `listing` must be NULL or a live handle; `count_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn icd_listing_sources(
    listing: *const icd_listing,
    count_out: *mut usize,
) -> *const icd_source {
    // SAFETY: as the contract says, for both.
    unsafe { array_of(listing, count_out, |l| &l.sources) }
}

/// The files found that will not be read, owned by `listing`; `*count_out` (if not
/// NULL) receives their number. NULL (and 0) for a NULL handle.
///
/// # Safety
/// `listing` must be NULL or a live handle; `count_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn icd_listing_gaps(
    listing: *const icd_listing,
    count_out: *mut usize,
) -> *const icd_gap {
    // SAFETY: as the contract says, for both.
    unsafe { array_of(listing, count_out, |l| &l.gaps) }
}

/// Releases what `icd_list_sources` made. NULL is ignored.
///
/// # Safety
/// `listing` must be NULL or a handle not yet freed, freed only this once.
#[no_mangle]
pub unsafe extern "C" fn icd_listing_free(listing: *mut icd_listing) {
    // SAFETY: from `Box::into_raw`, freed once (the contract).
    unsafe { free_handle(listing) }
}

/// Finds the function definitions in `count` files (from `icd_list_sources`, in this
/// process or another), read as `icd_find_functions_under` reads them: a file that was
/// found by the walk and cannot be read, is larger than `max_file_size` or is binary is
/// a gap; one that was named is an error. `max_file_size` as for
/// `icd_find_functions_under`. On `ICD_OK`, `*tree_out` receives a new `icd_tree` that
/// the caller releases with `icd_tree_free`.
///
/// # Safety
/// `sources` must be NULL or `count` readable `icd_source`s, each `path` NULL or
/// pointing to its `path_len` readable bytes; `tree_out` and `error_out` each NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn icd_find_functions_in_sources(
    sources: *const icd_source,
    count: usize,
    max_file_size: u64,
    tree_out: *mut *mut icd_tree,
    error_out: *mut *mut icd_error,
) -> icd_status {
    let body = || -> Result<(), CallError> {
        let tree_out = out_arg(tree_out, "tree_out")?;
        // SAFETY: NULL or `count` readable `icd_source`s (the contract).
        let inputs = unsafe { slice_arg(sources, count, "sources") }?;
        let mut parsed = Vec::with_capacity(inputs.len());
        for (i, source) in inputs.iter().enumerate() {
            // SAFETY: NULL or pointing to its `path_len` readable bytes (the contract).
            let path =
                unsafe { path_arg(source.path, source.path_len, &format!("sources[{i}].path")) }?;
            parsed.push((path, source.language, source.named, i));
        }
        let handle = Box::into_raw(Box::new(find_functions_in_sources(parsed, max_file_size)?));
        // SAFETY: not NULL (checked) and writable (the contract).
        unsafe { tree_out.write(handle) };
        Ok(())
    };
    // SAFETY: `error_out` is NULL or writable (the contract).
    unsafe { guard(error_out, body) }
}

#[cfg(feature = "scan")]
fn find_functions_in_sources(
    sources: Vec<(std::path::PathBuf, u32, bool, usize)>,
    max_file_size: u64,
) -> Result<icd_tree, CallError> {
    use crate::scan::{Language, Source, TreeOptions};
    let sources = sources
        .into_iter()
        .map(|(path, language, named, i)| {
            let language = Language::from_code(language).ok_or_else(|| {
                CallError::invalid(
                    &format!("sources[{i}].language"),
                    format!("is {language}, expected an icd_language value (0: C, 1: C++)"),
                )
            })?;
            Ok(Source {
                path,
                language,
                named,
            })
        })
        .collect::<Result<Vec<_>, CallError>>()?;
    let options = TreeOptions {
        max_file_size: match max_file_size {
            0 => TreeOptions::DEFAULT_MAX_FILE_SIZE,
            n => n,
        },
        dot_ignore: false,
    };
    // A source at a time, so that each function carries the language its source was
    // parsed in (one path may be given twice, in two languages).
    // The options are checked once, also where there is no source.
    let mut found = crate::scan::find_functions_in_sources(&[], &options)?;
    let mut languages = Vec::new();
    for source in &sources {
        let one = crate::scan::find_functions_in_sources(std::slice::from_ref(source), &options)?;
        languages.extend(std::iter::repeat_n(source.language, one.functions.len()));
        found.functions.extend(one.functions);
        found.inputs.extend(one.inputs);
        found.gaps.extend(one.gaps);
    }
    found.gaps.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(icd_tree::of(found, |_, i| languages[i]))
}

#[cfg(not(feature = "scan"))]
fn find_functions_in_sources(
    _: Vec<(std::path::PathBuf, u32, bool, usize)>,
    _: u64,
) -> Result<icd_tree, CallError> {
    Err(CallError::invalid(
        "sources",
        "cannot be read: this build has no function finding (cargo feature `scan`)",
    ))
}
