//! `--format junit`: JUnit XML as CI test views read it (GitLab, Jenkins, Azure
//! Pipelines), within the Jenkins JUnit schema (`junit-10.xsd`): a test suite per
//! file with functions, a test case per function, a failure per finding; functions that are
//! suppressed or in the baseline are skipped, with the reason. What was not scanned is
//! a suite of its own, its test cases skipped, so that a view's count of skipped tests
//! shows it.
//!
//! Deterministic: no time or host name, so that two scans of one tree give the same
//! bytes.

use std::collections::HashMap;
use std::fmt::Write;

use insecure_code_detector::report::printable;

use crate::report::{Finding, ScanReport, Verdict};
use crate::sources::NotCovered;

/// The suite that lists what was not scanned.
const NOT_SCANNED: &str = "not scanned";

/// The report as JUnit XML.
pub fn render(report: &ScanReport) -> String {
    // Files in the order found, each with its functions.
    let mut files: Vec<(&str, Vec<&Finding>)> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for f in &report.findings {
        let i = *index.entry(&f.file).or_insert_with(|| {
            files.push((&f.file, Vec::new()));
            files.len() - 1
        });
        files[i].1.push(f);
    }
    let gaps = gap_cases(report);

    let failures = report.findings_count();
    let tests = report.findings.len() + gaps.len();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"icd scan\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\">"
    );
    for (file, findings) in &files {
        let failed = findings.iter().filter(|f| is_failure(f.verdict)).count();
        let skipped = findings.iter().filter(|f| is_skipped(f.verdict)).count();
        let name = attribute(file);
        let _ = writeln!(
            out,
            "  <testsuite name=\"{name}\" file=\"{name}\" tests=\"{}\" failures=\"{failed}\" errors=\"0\" skipped=\"{skipped}\">",
            findings.len()
        );
        for f in findings {
            out += &case(f, report);
        }
        out += "  </testsuite>\n";
    }
    if !gaps.is_empty() {
        let _ = writeln!(
            out,
            "  <testsuite name=\"{NOT_SCANNED}\" tests=\"{n}\" failures=\"0\" errors=\"0\" skipped=\"{n}\">",
            n = gaps.len()
        );
        for (name, message) in &gaps {
            let _ = writeln!(
                out,
                "    <testcase classname=\"{NOT_SCANNED}\" name=\"{}\">\n      <skipped message=\"{}\"/>\n    </testcase>",
                escape(name, true),
                escape(message, true)
            );
        }
        out += "  </testsuite>\n";
    }
    out += "</testsuites>\n";
    out
}

/// Findings fail.
fn is_failure(verdict: Verdict) -> bool {
    matches!(verdict, Verdict::Insecure | Verdict::Confirmed)
}

/// Functions at or above the threshold that are not findings are skipped.
fn is_skipped(verdict: Verdict) -> bool {
    matches!(verdict, Verdict::Suppressed | Verdict::Baseline)
}

/// A function's test case.
fn case(f: &Finding, report: &ScanReport) -> String {
    let p = f.prediction.insecure_probability;
    let mut out = format!(
        "    <testcase classname=\"{}\" name=\"{}\"",
        attribute(&f.file),
        attribute(&format!(
            "{} (lines {}-{})",
            f.function, f.start_line, f.end_line
        ))
    );
    let triage_file = report.triage.as_ref().map(|t| t.path.display().to_string());
    let triage_file = triage_file.as_deref().unwrap_or("the triage file");
    match f.verdict {
        Verdict::Ok => return out + "/>\n",
        Verdict::Insecure | Verdict::Confirmed => {
            let message = match &f.triage {
                Some(t) if f.verdict == Verdict::Confirmed => format!(
                    "confirmed insecure by {triage_file}: {} (probability {p:.3})",
                    t.reason
                ),
                _ => format!(
                    "classified insecure: probability {p:.3}, at or above {}",
                    report.threshold
                ),
            };
            let mut body = format!(
                "{}:{}-{} {}\n",
                printable(&f.file),
                f.start_line,
                f.end_line,
                printable(&f.function)
            );
            if let Some(w) = f.window {
                let _ = writeln!(
                    body,
                    "worst of {} windows: lines {}-{}",
                    w.windows, w.start_line, w.end_line
                );
            } else if f.prediction.truncated {
                let _ = writeln!(body, "truncated at {} tokens", f.prediction.tokens);
            }
            for l in &f.lines {
                let _ = writeln!(body, "line {} (attention {:.3})", l.line, l.score);
            }
            let _ = write!(
                out,
                ">\n      <failure type=\"{}\" message=\"{}\">{}</failure>\n    </testcase>\n",
                f.verdict.name(),
                attribute(&message),
                text(&body)
            );
        }
        Verdict::Suppressed | Verdict::Baseline => {
            let message = match (&f.triage, f.verdict) {
                (_, Verdict::Baseline) => format!("in the baseline (probability {p:.3})"),
                (Some(t), _) if t.verdict.suppresses() => format!(
                    "suppressed by {triage_file} ({}): {} (probability {p:.3})",
                    t.verdict.name(),
                    t.reason
                ),
                _ => format!("suppressed by an `icd: ignore` comment (probability {p:.3})"),
            };
            let _ = write!(
                out,
                ">\n      <skipped message=\"{}\"/>\n    </testcase>\n",
                attribute(&message)
            );
        }
    }
    out
}

/// The test cases of what was not scanned, each a name and a message, both
/// [`printable`] already: a case per file, and one per settings file for the files it
/// excludes (a project may exclude thousands of vendored files).
fn gap_cases(report: &ScanReport) -> Vec<(String, String)> {
    let not_covered = NotCovered::of(report.gaps);
    let mut cases: Vec<(String, String)> = not_covered
        .files
        .iter()
        .map(|gap| (printable(&gap.file).into_owned(), gap.message()))
        .collect();
    for (settings, n) in not_covered.excluded {
        let settings = settings.display().to_string();
        let settings = printable(&settings);
        let name = format!("files excluded by {settings}");
        let plural = if n == 1 { "" } else { "s" };
        cases.push((
            name,
            format!("{n} file{plural} not scanned: excluded by {settings}"),
        ));
    }
    cases
}

/// `value` for an XML attribute: [`printable`], then escaped.
fn attribute(value: &str) -> String {
    escape(&printable(value), true)
}

/// `value`, whose untrusted parts are [`printable`] already, as XML character data.
fn text(value: &str) -> String {
    escape(value, false)
}

/// XML's five special characters as references; in an attribute, line breaks and
/// tabs as character references too (an attribute's own would be read as spaces); and
/// what XML 1.0 cannot hold at all (other controls, U+FFFE, U+FFFF) as `\u{…}` text.
fn escape(value: &str, in_attribute: bool) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out += "&amp;",
            '<' => out += "&lt;",
            '>' => out += "&gt;",
            '"' => out += "&quot;",
            '\'' => out += "&apos;",
            '\n' | '\t' if !in_attribute => out.push(c),
            '\n' => out += "&#10;",
            '\r' => out += "&#13;",
            '\t' => out += "&#9;",
            '\u{0}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}' => out += &c.escape_unicode().to_string(),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_xml_cannot_hold_as_it_is() {
        assert_eq!(
            escape("<a href=\"x\">&'</a>", false),
            "&lt;a href=&quot;x&quot;&gt;&amp;&apos;&lt;/a&gt;"
        );
        assert_eq!(escape("a\nb\tc", true), "a&#10;b&#9;c");
        assert_eq!(escape("a\nb\tc", false), "a\nb\tc");
        assert_eq!(escape("\u{1}\u{fffe}", false), "\\u{1}\\u{fffe}");
        assert_eq!(attribute("x\u{1b}]"), "x\\u{1b}]");
    }
}
