//! One module per report format of `icd scan`, each rendering the same
//! [`ScanReport`](crate::report::ScanReport).

pub mod html;
pub mod jsonl;
pub mod junit;
pub mod markdown;
pub mod sarif;
pub mod table;

use crate::flags::ScanFormat;
use crate::report::ScanReport;
use crate::Failure;

/// The report in `format`, whole; `link_base` prefixes Markdown's links.
pub fn render(
    format: ScanFormat,
    report: &ScanReport,
    link_base: Option<&str>,
) -> Result<String, Failure> {
    Ok(match format {
        ScanFormat::Table => table::render(report),
        ScanFormat::Jsonl => jsonl::render(report)?,
        ScanFormat::Sarif => sarif::render(report)?,
        ScanFormat::Markdown => markdown::render(report, link_base),
        ScanFormat::Junit => junit::render(report),
        ScanFormat::Html => html::render(report),
    })
}
