//! The one panic boundary and the checked pointer helpers that every entry point uses:
//! nothing reaches a pointer except through them, and no panic unwinds into C.

use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::ptr;

use super::errors::{icd_error, icd_status, null_argument, CallError};
use super::library::icd_str;
use crate::backend::panic_message;
use crate::Error;

/// The panic boundary: runs `body`, a panic in it becoming an `ICD_ERR_PANIC` failure.
/// Every entry point that runs library code or reads a pointer runs inside it, through
/// [`guard`], [`guard_value`] (with [`read_handle`]) or [`free_handle`]; only
/// `icd_version` and `icd_options_default`, which return constants, do not.
fn catch<T>(body: impl FnOnce() -> Result<T, CallError>) -> Result<T, CallError> {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(result) => result,
        Err(panic) => Err(CallError {
            status: icd_status::ICD_ERR_PANIC,
            message: format!("internal error (caught panic): {}", panic_message(&*panic)),
        }),
    }
}

/// The boundary of every fallible entry point: runs `body`, turning its failure or
/// panic into a status and, when `error_out` is not NULL, an `icd_error`.
///
/// # Safety
/// `error_out` must be NULL or writable.
pub(super) unsafe fn guard(
    error_out: *mut *mut icd_error,
    body: impl FnOnce() -> Result<(), CallError>,
) -> icd_status {
    let failure = match catch(body) {
        Ok(()) => return icd_status::ICD_OK,
        Err(failure) => failure,
    };
    if !error_out.is_null() {
        let message = c_string(&failure.message);
        let error = Box::into_raw(Box::new(icd_error {
            status: failure.status,
            message,
        }));
        // SAFETY: not NULL, and writable (the contract).
        unsafe { *error_out = error };
    }
    failure.status
}

/// The boundary of the entry points that return a value rather than a status (the
/// getters): `body`'s value, or `fallback` where it panics.
pub(super) fn guard_value<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch(|| Ok(body())).unwrap_or(fallback)
}

/// A getter's value: `read` of the handle inside the boundary, or `fallback` for a
/// NULL handle (and for a panic).
///
/// # Safety
/// `handle` must be NULL or point to a live `H`.
pub(super) unsafe fn read_handle<H, T>(handle: *const H, fallback: T, read: impl FnOnce(&H) -> T) -> T {
    // SAFETY: NULL or live (the contract).
    match unsafe { handle.as_ref() } {
        Some(h) => guard_value(fallback, || read(h)),
        None => fallback,
    }
}

/// Releases a handle made by `Box::into_raw`, inside the boundary (a drop that
/// panicked must not unwind into C). NULL is ignored.
///
/// # Safety
/// `handle` must be NULL or from `Box::into_raw` of a `T`, not yet freed, with no other
/// call on it running or to come.
pub(super) unsafe fn free_handle<T>(handle: *mut T) {
    if !handle.is_null() {
        // SAFETY: from `Box::into_raw`, freed once (the contract).
        guard_value((), || drop(unsafe { Box::from_raw(handle) }));
    }
}

/// `*ptr`, or a failure naming `argument` where it is NULL.
///
/// # Safety
/// `ptr` must be NULL or point to a valid `T` that outlives `'a`.
pub(super) unsafe fn ref_arg<'a, T>(ptr: *const T, argument: &str) -> Result<&'a T, CallError> {
    // SAFETY: NULL or valid (the contract).
    unsafe { ptr.as_ref() }.ok_or_else(|| null_argument(argument))
}

/// `ptr` checked as a place to write a `T`: a failure naming `argument` where it is
/// NULL. Outputs are written through the pointer, never read, as the caller's memory
/// may be uninitialized.
pub(super) fn out_arg<T>(ptr: *mut T, argument: &str) -> Result<*mut T, CallError> {
    if ptr.is_null() {
        Err(null_argument(argument))
    } else {
        Ok(ptr)
    }
}

/// `len` values at `ptr`: none for `len` 0 (whatever `ptr` is), else a failure naming
/// `argument` where `ptr` is NULL or the values would span more than `isize::MAX`
/// bytes.
///
/// # Safety
/// `ptr` must be NULL or point to `len` readable, initialized `T`s that outlive `'a`.
pub(super) unsafe fn slice_arg<'a, T>(ptr: *const T, len: usize, argument: &str) -> Result<&'a [T], CallError> {
    check_slice(ptr, len, argument)?;
    if len == 0 {
        return Ok(&[]);
    }
    // SAFETY: not NULL, aligned for C's `T`, `len` readable values (the contract) within
    // isize::MAX bytes (checked).
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// NULL (with a length) and lengths past `isize::MAX` bytes refused, naming `argument`.
pub(super) fn check_slice<T>(ptr: *const T, len: usize, argument: &str) -> Result<(), CallError> {
    if len == 0 {
        return Ok(());
    }
    if ptr.is_null() {
        return Err(null_argument(argument));
    }
    if len > isize::MAX as usize / std::mem::size_of::<T>().max(1) {
        return Err(CallError::invalid(
            argument,
            format!("has an impossible length {len}"),
        ));
    }
    Ok(())
}

/// A logits buffer (NULL: not wanted) checked for `count` predictions of `labels`
/// logits each.
pub(super) fn check_logits(
    logits_out: *mut f32,
    logits_capacity: usize,
    count: usize,
    labels: usize,
) -> Result<(), CallError> {
    if logits_out.is_null() {
        return Ok(());
    }
    let wanted = count.saturating_mul(labels);
    if logits_capacity < wanted {
        return Err(Error::InvalidArgument {
            argument: "logits_capacity",
            message: format!(
                "is {logits_capacity}, {count} predictions of {labels} logits need {wanted}"
            ),
        }
        .into());
    }
    check_slice(logits_out, wanted, "logits_out")
}

/// `len` bytes at `ptr` ([`slice_arg`] on bytes).
///
/// # Safety
/// As [`slice_arg`].
pub(super) unsafe fn bytes_arg<'a>(
    ptr: *const c_char,
    len: usize,
    argument: &str,
) -> Result<&'a [u8], CallError> {
    // SAFETY: the contract, passed on.
    unsafe { slice_arg(ptr.cast::<u8>(), len, argument) }
}

/// `len` bytes at `ptr` as UTF-8, or `ICD_ERR_INVALID_UTF8` naming `argument`.
///
/// # Safety
/// As [`slice_arg`].
pub(super) unsafe fn str_arg<'a>(ptr: *const c_char, len: usize, argument: &str) -> Result<&'a str, CallError> {
    // SAFETY: the contract, passed on.
    let bytes = unsafe { bytes_arg(ptr, len, argument) }?;
    std::str::from_utf8(bytes).map_err(|e| CallError {
        status: icd_status::ICD_ERR_INVALID_UTF8,
        message: format!("argument `{argument}` is not valid UTF-8: {e}"),
    })
}

/// `len` bytes at `ptr` as a path (any bytes but NUL on Unix, UTF-8 elsewhere); empty
/// refused.
///
/// # Safety
/// As [`slice_arg`].
pub(super) unsafe fn path_arg(ptr: *const c_char, len: usize, argument: &str) -> Result<PathBuf, CallError> {
    // SAFETY: the contract, passed on.
    let bytes = unsafe { bytes_arg(ptr, len, argument) }?;
    if bytes.is_empty() {
        return Err(CallError::invalid(argument, "is empty"));
    }
    if let Some(at) = bytes.iter().position(|&b| b == 0) {
        return Err(CallError::invalid(
            argument,
            format!("holds a NUL byte at offset {at}, which no path can"),
        ));
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        Ok(PathBuf::from(std::ffi::OsStr::from_bytes(bytes)))
    }
    #[cfg(not(unix))]
    {
        std::str::from_utf8(bytes)
            .map(PathBuf::from)
            .map_err(|e| CallError {
                status: icd_status::ICD_ERR_INVALID_UTF8,
                message: format!("argument `{argument}` is not valid UTF-8: {e}"),
            })
    }
}

/// An optional string argument: `None` for NULL with length 0 (the C API's "left
/// out"), else [`str_arg`].
///
/// # Safety
/// As [`slice_arg`].
pub(super) unsafe fn optional_str_arg<'a>(
    ptr: *const c_char,
    len: usize,
    argument: &str,
) -> Result<Option<&'a str>, CallError> {
    if ptr.is_null() && len == 0 {
        return Ok(None);
    }
    // SAFETY: the contract, passed on.
    unsafe { str_arg(ptr, len, argument) }.map(Some)
}

/// An optional path argument: `None` for NULL with length 0, else [`path_arg`].
///
/// # Safety
/// As [`slice_arg`].
pub(super) unsafe fn optional_path_arg(
    ptr: *const c_char,
    len: usize,
    argument: &str,
) -> Result<Option<PathBuf>, CallError> {
    if ptr.is_null() && len == 0 {
        return Ok(None);
    }
    // SAFETY: the contract, passed on.
    unsafe { path_arg(ptr, len, argument) }.map(Some)
}

/// Each of `strings` as UTF-8 ([`str_arg`]), a failure naming `argument[i]`.
///
/// # Safety
/// Each of `strings` is NULL (with length 0) or points to its `len` readable bytes,
/// which outlive `'a`.
pub(super) unsafe fn strs_arg<'a>(
    strings: &[icd_str],
    argument: &str,
) -> Result<Vec<&'a str>, CallError> {
    strings
        .iter()
        .enumerate()
        // SAFETY: the contract, passed on.
        .map(|(i, s)| unsafe { str_arg(s.ptr, s.len, &format!("{argument}[{i}]")) })
        .collect()
}

/// Each of `strings` as a path ([`path_arg`]), a failure naming `argument[i]`.
///
/// # Safety
/// As [`strs_arg`].
pub(super) unsafe fn paths_arg(strings: &[icd_str], argument: &str) -> Result<Vec<PathBuf>, CallError> {
    strings
        .iter()
        .enumerate()
        // SAFETY: the contract, passed on.
        .map(|(i, s)| unsafe { path_arg(s.ptr, s.len, &format!("{argument}[{i}]")) })
        .collect()
}

/// One of a handle's arrays and its length (into `count_out` where not NULL); NULL
/// and 0 for a NULL handle.
///
/// # Safety
/// `handle` must be NULL or a live handle; `count_out` NULL or writable.
pub(super) unsafe fn array_of<H, T>(
    handle: *const H,
    count_out: *mut usize,
    array: impl FnOnce(&H) -> &Vec<T>,
) -> *const T {
    // SAFETY: NULL or a live handle (the contract).
    let (values, count) = unsafe {
        read_handle(handle, (ptr::null(), 0), |h| {
            let values = array(h);
            (values.as_ptr(), values.len())
        })
    };
    if !count_out.is_null() {
        // SAFETY: not NULL, writable (the contract).
        unsafe { count_out.write(count) };
    }
    values
}

/// `text` as a C string, any NUL in it replaced (a file name or function name can hold
/// none that C could read past).
pub(super) fn c_string(text: &str) -> CString {
    CString::new(text.replace('\0', "\u{fffd}")).expect("NULs replaced")
}
