//! One module per subcommand, each with a `run` that `main` dispatches to.

pub mod cache;
pub mod calibrate;
pub mod classify;
pub mod convert;
pub mod evaluate;
pub mod functions;
pub mod scan;
pub mod train;
pub mod triage;
