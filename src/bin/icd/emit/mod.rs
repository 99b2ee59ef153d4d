//! One module per report format of `icd scan`, each rendering the same
//! [`ScanReport`](crate::report::ScanReport).

pub mod jsonl;
pub mod sarif;
pub mod table;

use crate::flags::ScanFormat;
use crate::report::ScanReport;
use crate::Failure;

/// The report in `format`, whole.
pub fn render(format: ScanFormat, report: &ScanReport) -> Result<String, Failure> {
    Ok(match format {
        ScanFormat::Table => table::render(report),
        ScanFormat::Jsonl => jsonl::render(report)?,
        ScanFormat::Sarif => serde_json::to_string_pretty(&sarif::log(report)?)? + "\n",
    })
}
