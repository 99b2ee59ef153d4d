//! The C ABI: a thin skin over [`crate::Detector`] (and, for fine-tuning, the
//! `Trainer`).
//!
//! Conventions, the same for every function:
//! - Strings are passed as pointer + length in bytes; none needs a NUL terminator.
//!   Source code must be UTF-8 (`ICD_ERR_INVALID_UTF8` otherwise).
//! - Every fallible function returns an `icd_status` and writes its outputs only when
//!   it returns `ICD_OK`. Its last parameter, `error_out`, may be NULL; when it is not
//!   and the call fails, it receives a new `icd_error` carrying the message, which the
//!   caller frees with `icd_error_free`. No message is kept in a global.
//! - Handles are opaque, made by one constructor and released by one free function.
//! - No panic crosses this boundary: each entry point catches it and returns
//!   `ICD_ERR_PANIC`. A failed call leaves the detector usable.
//! - An `icd_detector` may be used by several threads at once for predictions and
//!   queries; `icd_detector_free` must not race with any other call on it.

//!
//! Every entry point that takes a pointer is an `unsafe fn` whose `# Safety` section
//! states what the caller must uphold beyond what the function checks itself. Inside,
//! pointers are read only through the checked helpers of `boundary` (`ref_arg`,
//! `out_arg`, `check_slice`, `slice_arg`, `bytes_arg`, `str_arg`, `path_arg`, their
//! `optional_` forms (NULL with length 0 as left out), `read_handle`, `array_of`),
//! which refuse NULL and impossible lengths with a status naming the argument, and the body runs inside the one panic boundary: `guard` for
//! the calls that return a status, `guard_value` for the getters, `free_handle` for
//! the frees.

#![allow(non_camel_case_types)]
#![deny(unsafe_op_in_unsafe_fn)]

mod boundary;
mod cache;
mod detector;
mod errors;
mod explanation;
mod library;
mod listing;
mod scan;
mod training;

pub use cache::*;
pub use detector::*;
pub use errors::*;
pub use explanation::*;
pub use library::*;
pub use listing::*;
pub use scan::*;
pub use training::*;
