//! `--format markdown`: a short summary for a pull request's comment or a GitHub job's
//! `$GITHUB_STEP_SUMMARY`: the counts, the top findings (at most [`LISTED`], with
//! links to their lines), the lines the model looked at, and what was not scanned.
//!
//! Everything that comes from the scanned tree (paths, function names, triage reasons,
//! error texts) is shown in a code span, where GitHub makes no link, mention, emphasis
//! or HTML of it, and link targets are percent-encoded: a file named
//! `[x](javascript:…)<img onerror=…>@user.c` shows as its name (control characters
//! and backslashes escaped as in the table) and does nothing.

use std::fmt::Write;

use insecure_code_detector::report::printable;
use insecure_code_detector::scan::GapKind;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS, NON_ALPHANUMERIC};

use crate::report::{Finding, ScanReport, Verdict};
use crate::sources::NotCovered;

/// Findings listed at most: a pull request's comment stays short (and far below
/// GitHub's 65,536 characters); the SARIF log and the table list every one.
pub const LISTED: usize = 20;
/// Gaps (files or lines not scanned) listed at most.
const GAPS_LISTED: usize = 20;
/// Characters of a path, function name or reason shown at most.
const SHOWN_CHARS: usize = 120;

/// The report as Markdown; links are `link_base` followed by the file's path (with
/// `#L` line anchors), or the path alone without one.
pub fn render(report: &ScanReport, link_base: Option<&str>) -> String {
    let mut out = String::new();
    let findings = report.findings_count();
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    let new = if report.baseline.is_some() {
        "new "
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "### insecure-code-detector: {findings} {new}finding{} in {} function{}\n",
        plural(findings),
        report.findings.len(),
        plural(report.findings.len())
    );
    let _ = writeln!(
        out,
        "Insecure probability at or above {} is a finding; model {}.\n",
        report.threshold,
        code(&report.model_dir.display().to_string(), false)
    );
    out += &counts(report);

    let mut listed: Vec<&Finding> = report
        .findings
        .iter()
        .filter(|f| matches!(f.verdict, Verdict::Insecure | Verdict::Confirmed))
        .collect();
    // Confirmed first (a person said so), then the most probable.
    listed.sort_by(|a, b| {
        let confirmed = |f: &Finding| f.verdict != Verdict::Confirmed;
        (confirmed(a), -a.prediction.insecure_probability)
            .partial_cmp(&(confirmed(b), -b.prediction.insecure_probability))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    if !listed.is_empty() {
        // The top lines' column where --explain gave them.
        let explained = listed.iter().any(|f| !f.lines.is_empty());
        out += "\n| P(insecure) | Verdict | Function | Location |";
        out += if explained { " Top lines |\n" } else { "\n" };
        out += "|---:|---|---|---|";
        out += if explained { "---|\n" } else { "\n" };
        for f in listed.iter().take(LISTED) {
            out += &row(f, link_base, explained);
        }
        if listed.len() > LISTED {
            let _ = writeln!(
                out,
                "\n{} more finding{} not listed here (the SARIF log and `--format table` list every one).",
                listed.len() - LISTED,
                plural(listed.len() - LISTED)
            );
        }
    }
    out += &gaps(report);
    out
}

/// The counts beside the findings: suppressed, in the baseline, below the threshold.
fn counts(report: &ScanReport) -> String {
    let mut out = String::new();
    let insecure = report.count(Verdict::Insecure);
    let confirmed = report.count(Verdict::Confirmed);
    let by_triage = report.suppressed_by_triage();
    let _ = writeln!(out, "- **{insecure}** insecure");
    if let Some(t) = &report.triage {
        let file = code(&t.path.display().to_string(), false);
        let _ = writeln!(out, "- **{confirmed}** confirmed insecure by {file}");
        let _ = writeln!(out, "- {by_triage} suppressed by {file}");
    }
    let _ = writeln!(
        out,
        "- {} suppressed by `icd: ignore` comments",
        report.suppressed_in_source()
    );
    if report.baseline.is_some() {
        let _ = writeln!(out, "- {} in the baseline", report.count(Verdict::Baseline));
    }
    let _ = writeln!(out, "- {} below the threshold", report.count(Verdict::Ok));
    out
}

/// A finding's table row.
fn row(f: &Finding, link_base: Option<&str>, explained: bool) -> String {
    let (start, end) = f
        .window
        .map_or((f.start_line, f.end_line), |w| (w.start_line, w.end_line));
    let place = code(&format!("{}:{start}-{end}", f.file), true);
    let location = match link(link_base, &f.file) {
        Some(url) => format!("[{place}]({url}#L{start}-L{end})"),
        None => place,
    };
    let verdict = match (&f.triage, f.verdict) {
        (Some(t), Verdict::Confirmed) => format!("confirmed: {}", code(&t.reason, true)),
        _ => f.verdict.name().to_owned(),
    };
    let lines: Vec<String> = f
        .lines
        .iter()
        .map(|l| {
            let number = match link(link_base, &f.file) {
                Some(url) => format!("[{}]({url}#L{})", l.line, l.line),
                None => l.line.to_string(),
            };
            format!("{number} ({:.3})", l.score)
        })
        .collect();
    let lines = match (explained, lines.is_empty()) {
        (false, _) => String::new(),
        (true, true) => " – |".to_owned(),
        (true, false) => format!(" {} |", lines.join(", ")),
    };
    format!(
        "| {:.3} | {verdict} | {} | {location} |{lines}\n",
        f.prediction.insecure_probability,
        code(&f.function, true),
    )
}

/// What was not scanned: a line per file (excluded files counted per settings file).
fn gaps(report: &ScanReport) -> String {
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    if report.gaps.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n**Not scanned**\n\n");
    let not_covered = NotCovered::of(report.gaps);
    let listed = not_covered.files.len();
    for gap in not_covered.files.iter().take(GAPS_LISTED) {
        out += &match &gap.kind {
            // Not among `files`: counted below, per settings file.
            GapKind::Excluded(_) => continue,
            GapKind::Skipped(reason) => {
                format!(
                    "- {}: not read: {}\n",
                    code(&gap.file, false),
                    code(reason, false)
                )
            }
            GapKind::Unparsed(ranges) => {
                let ranges: Vec<String> = ranges
                    .iter()
                    .map(|r| match r.start_line == r.end_line {
                        true => r.start_line.to_string(),
                        false => format!("{}-{}", r.start_line, r.end_line),
                    })
                    .collect();
                format!(
                    "- {}: lines {} could not be parsed; functions there are not scanned\n",
                    code(&gap.file, false),
                    ranges.join(", ")
                )
            }
        };
    }
    if listed > GAPS_LISTED {
        let _ = writeln!(out, "- and {} more", listed - GAPS_LISTED);
    }
    for (settings, n) in not_covered.excluded {
        let _ = writeln!(
            out,
            "- {n} file{} excluded by {}",
            plural(n),
            code(&settings.display().to_string(), false)
        );
    }
    out
}

/// `text` as a code span: shown as it is, whatever it holds. Control characters are
/// escaped ([`printable`]), long text is cut, the fence is longer than any run of
/// backticks inside, and in a table cell `|` is escaped (GitHub's tables split on it
/// even inside code spans).
fn code(text: &str, in_table: bool) -> String {
    let printable = printable(text);
    let mut shown: String = printable.chars().take(SHOWN_CHARS).collect();
    if printable.chars().nth(SHOWN_CHARS).is_some() {
        shown.push('…');
    }
    if in_table {
        shown = shown.replace('|', "\\|");
    }
    let longest_run = shown.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest_run + 1);
    // A space on both sides when the text begins or ends with a backtick or a space,
    // which CommonMark strips again.
    let pad = match shown.starts_with(['`', ' ']) || shown.ends_with(['`', ' ']) {
        true => " ",
        false => "",
    };
    format!("{fence}{pad}{shown}{pad}{fence}")
}

/// What a link's path keeps as it is: unreserved characters and `/`.
const PATH_KEPT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// What a `--link-base` URL may not hold as it is in a Markdown link destination:
/// controls, space, and what could end the destination or the link.
const BASE_ENCODED: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'(')
    .add(b')')
    .add(b'<')
    .add(b'>')
    .add(b'\\')
    .add(b'"')
    .add(b'\'')
    .add(b'`')
    .add(b'[')
    .add(b']')
    .add(b'|');

/// The link target of `file`: `base` and the path, percent-encoded but for unreserved
/// characters and `/`; none for a path that is absolute or leaves the current
/// directory, which has no place in the repository.
fn link(base: Option<&str>, file: &str) -> Option<String> {
    let path = file.trim_start_matches("./");
    let relative = std::path::Path::new(path)
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_) | std::path::Component::CurDir));
    if !relative {
        return None;
    }
    let base = base.map_or(String::new(), |b| utf8_percent_encode(b, BASE_ENCODED).to_string());
    // The name's own bytes, where `path_text` wrote some as `\xHH`.
    let bytes = insecure_code_detector::files::path_bytes(path);
    Some(base + &percent_encoding::percent_encode(&bytes, PATH_KEPT).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_spans_hold_any_text() {
        assert_eq!(code("plain", false), "`plain`");
        assert_eq!(code("a`b", false), "``a`b``");
        assert_eq!(code("`x``", false), "``` `x`` ```");
        assert_eq!(code("a|b", true), "`a\\|b`");
        assert_eq!(code("a|b", false), "`a|b`");
        assert_eq!(code("a\nb", false), "`a\\u{a}b`");
        let long = "x".repeat(500);
        assert_eq!(code(&long, false).chars().count(), SHOWN_CHARS + 3);
    }

    #[test]
    fn links_are_percent_encoded_and_stay_in_the_tree() {
        assert_eq!(link(None, "./src/a b.c").unwrap(), "src/a%20b.c");
        assert_eq!(
            link(Some("https://x.example/blob/1/"), "src/[x](y).c").unwrap(),
            "https://x.example/blob/1/src/%5Bx%5D%28y%29.c"
        );
        // A byte that is not UTF-8 links to that byte, a backslash to a backslash.
        assert_eq!(link(None, "./a\\xff.c").unwrap(), "a%FF.c");
        assert_eq!(link(None, "./a\\\\xff.c").unwrap(), "a%5Cxff.c");
        assert_eq!(link(None, "/etc/x.c"), None);
        assert_eq!(link(None, "../x.c"), None);
        assert_eq!(
            link(Some("https://h/a) <b>/"), "x.c").unwrap(),
            "https://h/a%29%20%3Cb%3E/x.c"
        );
    }
}
