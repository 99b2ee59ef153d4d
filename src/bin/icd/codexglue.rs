//! CodeXGLUE's defect-detection jsonl: one `{"idx", "func", "target"}` object a line.

use std::path::Path;

use crate::input::{read_input, JSONL_LIMIT};
use crate::Failure;

/// One row of a CodeXGLUE jsonl file.
pub struct JsonlRow {
    /// 1-based line in the file.
    pub line: usize,
    pub idx: serde_json::Value,
    pub func: String,
    pub target: serde_json::Value,
}

/// Rows of a CodeXGLUE jsonl file; each must be an object with a string `func`.
pub fn read_jsonl(path: &Path) -> Result<Vec<JsonlRow>, Failure> {
    let bytes = read_input(path, JSONL_LIMIT)?;
    let text = String::from_utf8(bytes).map_err(|e| {
        Failure(format!(
            "{}: not UTF-8 (at byte {})",
            path.display(),
            e.utf8_error().valid_up_to()
        ))
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            let mut v: serde_json::Value = serde_json::from_str(line)
                .map_err(|e| Failure(format!("{}:{}: {e}", path.display(), n + 1)))?;
            let func = v["func"]
                .as_str()
                .ok_or_else(|| {
                    Failure(format!(
                        "{}:{}: no string field `func`",
                        path.display(),
                        n + 1
                    ))
                })?
                .to_owned();
            Ok(JsonlRow {
                line: n + 1,
                idx: v["idx"].take(),
                func,
                target: v["target"].take(),
            })
        })
        .collect()
}
