//! Writing `icd`'s output files.

use std::path::Path;

use insecure_code_detector::files::write_atomically;
use insecure_code_detector::Error;

use crate::Failure;

/// Writes an output file whole or not at all, never through a link and never over
/// one of `inputs` ([`write_atomically`]).
pub fn write_output(path: &Path, inputs: &[&Path], bytes: &[u8]) -> Result<(), Failure> {
    write_atomically(path, inputs, |tmp| {
        std::fs::write(tmp, bytes).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    })?;
    Ok(())
}
