//! `--format jsonl`: one JSON object per function, the serde serialization of
//! [`Finding`](crate::report::Finding) with its keys in sorted order.

use crate::report::ScanReport;
use crate::Failure;

/// The report as jsonl.
pub fn render(report: &ScanReport) -> Result<String, Failure> {
    let mut out = String::new();
    for f in &report.findings {
        // Through a `Value`, whose objects keep their keys sorted: the rows' layout
        // does not depend on the order of the struct's fields.
        out += &serde_json::to_value(f)?.to_string();
        out.push('\n');
    }
    Ok(out)
}
