//! The inputs named on the command line (a function for `classify`, CodeXGLUE jsonl),
//! read with a bound: `/dev/zero` or an endless pipe is an error naming the input, not
//! a process that reads until memory runs out. Pipes and FIFOs stay welcome.

use std::io::Read;
use std::path::Path;

use crate::Failure;

/// Largest single function `classify` reads (file or stdin): far past any real
/// function, which the model truncates at 512 tokens anyway.
pub const FUNCTION_LIMIT: u64 = 64 << 20;

/// Largest CodeXGLUE jsonl file read: Devign's whole training set is about 50 MB.
pub const JSONL_LIMIT: u64 = 2 << 30;

/// All of `reader`, `what` named in the error when it holds more than `limit` bytes.
pub fn read_bounded(reader: impl Read, limit: u64, what: &str) -> Result<Vec<u8>, Failure> {
    let mut bytes = Vec::new();
    reader
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Failure(format!("{what}: {e}")))?;
    if bytes.len() as u64 > limit {
        return Err(Failure(format!(
            "{what} holds more than {limit} bytes, past its limit"
        )));
    }
    Ok(bytes)
}

/// The bytes of `path` (`-`: stdin), at most `limit` of them.
pub fn read_input(path: &Path, limit: u64) -> Result<Vec<u8>, Failure> {
    if path.as_os_str() == "-" {
        return read_bounded(std::io::stdin().lock(), limit, "stdin");
    }
    let what = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| Failure(format!("{what}: {e}")))?;
    read_bounded(file, limit, &what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endless_inputs_stop_at_the_limit() {
        let error = read_bounded(std::io::repeat(0), 1 << 10, "/dev/zero")
            .err()
            .unwrap()
            .0;
        assert_eq!(
            error,
            "/dev/zero holds more than 1024 bytes, past its limit"
        );
        assert_eq!(
            read_bounded(&b"abc"[..], 3, "x").ok(),
            Some(b"abc".to_vec())
        );
    }
}
