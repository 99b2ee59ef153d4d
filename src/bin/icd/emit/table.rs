//! `--format table`: a line per function, the top lines under each finding, and a
//! closing count with what was not covered.

use insecure_code_detector::report::printable;

use crate::report::{ScanReport, Verdict};
use crate::sources;

/// The report as a table.
pub fn render(report: &ScanReport) -> String {
    let threshold = report.threshold;
    let mut out = format!(
        "{:<10} {:>6}  {:<40} {}\n",
        "VERDICT", "P", "LOCATION", "FUNCTION"
    );
    for f in &report.findings {
        let location = format!("{}:{}-{}", printable(&f.file), f.start_line, f.end_line);
        let mut note = String::new();
        if let Some(w) = f.window {
            note = format!(
                "  (worst of {} windows: lines {}-{})",
                w.windows, w.start_line, w.end_line
            );
        } else if f.prediction.truncated {
            note = format!("  (truncated at {} tokens)", f.prediction.tokens);
        }
        out += &format!(
            "{:<10} {:>6.3}  {:<40} {}{}\n",
            f.verdict.name(),
            f.prediction.insecure_probability,
            location,
            printable(&f.function),
            note
        );
        if let Some(t) = f.triage.as_ref().filter(|_| f.verdict != Verdict::Ok) {
            let expires = t
                .expires
                .as_ref()
                .map_or(String::new(), |d| format!(", until {d}"));
            out += &format!(
                "{:<18}triaged {}{expires}: {}\n",
                "",
                t.verdict.name(),
                printable(&t.reason)
            );
        }
        if matches!(f.verdict, Verdict::Insecure | Verdict::Confirmed) {
            for l in &f.lines {
                out += &format!("{:<18}line {} ({:.3})\n", "", l.line, l.score);
            }
        }
    }
    let mut more = Vec::new();
    // Confirmed functions are findings too: counted beside the others, not in brackets.
    let mut confirmed = String::new();
    let by_triage = report.suppressed_by_triage();
    if let n @ 1.. = report.suppressed_in_source() {
        more.push(format!("{n} suppressed by `icd: ignore`"));
    }
    if let Some(t) = &report.triage {
        let path = t.path.display().to_string();
        let file = printable(&path);
        if by_triage > 0 {
            more.push(format!("{by_triage} suppressed by {file}"));
        }
        if t.confirmed > 0 {
            confirmed = format!(" plus {} confirmed by {file}", t.confirmed);
        }
    }
    if let n @ 1.. = report.count(Verdict::Baseline) {
        more.push(format!("{n} in the baseline"));
    }
    let more = match more.is_empty() {
        true => String::new(),
        false => format!(" (and {})", more.join(", ")),
    };
    let new = if report.findings.iter().any(|f| f.baseline.is_some()) {
        "new "
    } else {
        ""
    };
    out += &format!(
        "{} {new}of {} functions at or above {threshold}{confirmed}{more}\n",
        report.count(Verdict::Insecure),
        report.findings.len()
    );
    out += &sources::footer(report.gaps);
    out
}
