//! `--format html`: one self-contained page to open offline or attach to a CI run: the
//! summary, a sortable and filterable list of the functions at or above the threshold
//! (findings, suppressed, in the baseline), and each one's source with line numbers,
//! shaded by the model's attention with `--explain`, its top lines marked.
//!
//! The page holds untrusted code and names, so every string is escaped where it is
//! written, and a Content-Security-Policy allows no script or style but the page's own
//! (by their SHA-256): a function that holds `</script><script>...` shows as text and
//! runs nothing. The script only sorts and hides rows; it writes no markup.

use std::fmt::Write;

use base64::Engine;
use insecure_code_detector::report::{printable, unsafe_to_print};
use sha2::{Digest, Sha256};

use crate::report::{Finding, ScanReport, Verdict};
use crate::sources::NotCovered;

/// The page's style.
const STYLE: &str = r##"
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 72rem; padding: 1rem 1.5rem; color: #1f2328; }
h1 { font-size: 1.4rem; margin: 0 0 .5rem; }
h2 { font-size: 1.05rem; margin: 0; font-weight: 600; }
dl.summary { display: grid; grid-template-columns: max-content auto; gap: .15rem 1rem; margin: .5rem 0 1rem; }
dl.summary dt { color: #59636e; }
dl.summary dd { margin: 0; }
.controls { display: flex; gap: .75rem; align-items: center; margin: 1rem 0 .5rem; }
.controls input { flex: 1; padding: .3rem .5rem; }
table.list { border-collapse: collapse; width: 100%; }
table.list th, table.list td { text-align: left; padding: .25rem .5rem; border-bottom: 1px solid #d1d9e0; vertical-align: top; }
table.list th button { font: inherit; font-weight: 600; border: 0; background: none; cursor: pointer; padding: 0; }
table.list th[aria-sort=ascending] button::after { content: " \25B2"; }
table.list th[aria-sort=descending] button::after { content: " \25BC"; }
td.p { font-variant-numeric: tabular-nums; text-align: right; }
.verdict { font-weight: 600; }
.verdict-insecure { color: #b35900; }
.verdict-confirmed { color: #cf222e; }
.verdict-suppressed, .verdict-baseline { color: #59636e; }
article { border: 1px solid #d1d9e0; border-radius: 6px; margin: 1rem 0; padding: .75rem 1rem; content-visibility: auto; contain-intrinsic-size: auto 16rem; }
article p { margin: .35rem 0; }
pre.source { overflow-x: auto; background: #f6f8fa; padding: .5rem 0; margin: .5rem 0 0; font: 12px/1.5 ui-monospace, monospace; }
pre.source span.l { display: block; padding-right: 1rem; }
pre.source span.n { display: inline-block; width: 4.5em; padding-right: 1em; text-align: right; color: #59636e; user-select: none; }
pre.source span.t span.n { color: #cf222e; font-weight: 700; }
pre.source span.t span.n::before { content: "\25B6 "; }
span.ctl { color: #cf222e; font-weight: 700; }
.s1 { background: rgba(255, 119, 0, .06); } .s2 { background: rgba(255, 119, 0, .12); }
.s3 { background: rgba(255, 119, 0, .18); } .s4 { background: rgba(255, 119, 0, .24); }
.s5 { background: rgba(255, 119, 0, .30); } .s6 { background: rgba(255, 119, 0, .36); }
.s7 { background: rgba(255, 119, 0, .42); } .s8 { background: rgba(255, 119, 0, .48); }
.s9 { background: rgba(255, 119, 0, .54); }
"##;

/// The page's script: sorting by a column's button, filtering by text and verdict.
/// It moves and hides rows and articles, and sets text; it never parses markup.
const SCRIPT: &str = r##"
"use strict";
(() => {
  const tbody = document.querySelector("#list tbody");
  const rows = Array.from(tbody.rows);
  const filter = document.getElementById("filter");
  const verdict = document.getElementById("verdict");
  const shown = document.getElementById("shown");
  const headers = Array.from(document.querySelectorAll("#list th[data-key]"));
  let key = "p";
  let descending = true;
  const compare = (x, y) => (x < y ? -1 : x > y ? 1 : 0);
  // Probabilities as numbers, locations by file then line number, names as text.
  function order(a, b) {
    if (key === "p") return Number(a.dataset.p) - Number(b.dataset.p);
    if (key === "location") {
      return compare(a.dataset.file, b.dataset.file) || Number(a.dataset.line) - Number(b.dataset.line);
    }
    return compare(a.dataset[key], b.dataset[key]);
  }
  function sort() {
    rows.sort((a, b) => (descending ? order(b, a) : order(a, b)) ||
      Number(a.dataset.index) - Number(b.dataset.index));
    for (const row of rows) tbody.appendChild(row);
    for (const th of headers) {
      th.setAttribute("aria-sort", th.dataset.key === key ? (descending ? "descending" : "ascending") : "none");
    }
  }
  function apply() {
    const text = filter.value.trim().toLowerCase();
    const wanted = verdict.value;
    let count = 0;
    for (const row of rows) {
      const match = (wanted === "" || row.dataset.verdict === wanted) &&
        (text === "" || row.dataset.search.includes(text));
      row.hidden = !match;
      const article = document.getElementById(row.dataset.target);
      if (article) article.hidden = !match;
      if (match) count += 1;
    }
    shown.textContent = count + " of " + rows.length + " shown";
  }
  for (const th of headers) {
    th.querySelector("button").addEventListener("click", () => {
      if (key === th.dataset.key) {
        descending = !descending;
      } else {
        key = th.dataset.key;
        descending = key === "p";
      }
      sort();
    });
  }
  filter.addEventListener("input", apply);
  verdict.addEventListener("change", apply);
  sort();
  apply();
})();
"##;

/// Shading levels of a line by its score, relative to the function's highest.
const LEVELS: f32 = 9.0;

/// The report as an HTML page.
pub fn render(report: &ScanReport) -> String {
    let mut listed: Vec<(usize, &Finding)> = report
        .findings
        .iter()
        .enumerate()
        .filter(|(_, f)| f.verdict != Verdict::Ok)
        .collect();
    // The most probable first, in the page's own order too (the script sorts the list).
    listed.sort_by(|(i, a), (j, b)| {
        b.prediction
            .insecure_probability
            .total_cmp(&a.prediction.insecure_probability)
            .then(i.cmp(j))
    });

    let mut out = String::with_capacity(4096 + listed.len() * 2048);
    let csp = format!(
        "default-src 'none'; script-src '{}'; style-src '{}'; img-src 'none'; base-uri 'none'; form-action 'none'",
        digest(SCRIPT),
        digest(STYLE)
    );
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{csp}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>insecure-code-detector: {} findings</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        report.findings_count()
    );
    out += "<h1>insecure-code-detector</h1>\n";
    out += &summary(report);
    out += &list(&listed);
    out += "<section id=\"functions\">\n";
    for (i, f) in &listed {
        out += &article(*i, f, report);
    }
    out += "</section>\n";
    out += &gaps(report);
    let _ = write!(out, "<script>{SCRIPT}</script>\n</body>\n</html>\n");
    out
}

/// A CSP source for `text`: `sha256-` and its digest in base64.
fn digest(text: &str) -> String {
    let hash = Sha256::digest(text.as_bytes());
    format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// The counts, the threshold and the model.
fn summary(report: &ScanReport) -> String {
    let mut rows: Vec<(&str, String)> = vec![
        ("Functions scanned", report.findings.len().to_string()),
        ("Findings", report.findings_count().to_string()),
        ("Insecure", report.count(Verdict::Insecure).to_string()),
    ];
    if let Some(t) = &report.triage {
        let file = escape(&t.path.display().to_string());
        rows.push((
            "Confirmed",
            format!("{} (by <code>{file}</code>)", t.confirmed),
        ));
        rows.push((
            "Suppressed by the triage file",
            format!(
                "{} ({} false-positive, {} accepted-risk)",
                t.suppressed(),
                t.false_positive,
                t.accepted_risk
            ),
        ));
    }
    rows.push((
        "Suppressed by <code>icd: ignore</code>",
        report.suppressed_in_source().to_string(),
    ));
    if report.baseline.is_some() {
        rows.push((
            "In the baseline",
            report.count(Verdict::Baseline).to_string(),
        ));
    }
    rows.push(("Below the threshold", report.count(Verdict::Ok).to_string()));
    rows.push(("Threshold", report.threshold.to_string()));
    rows.push((
        "Model",
        format!(
            "<code>{}</code>",
            escape(&report.model_dir.display().to_string())
        ),
    ));
    if let Some(c) = &report.calibration {
        rows.push((
            "Calibration",
            format!("<code>{}</code>", escape(&c.display().to_string())),
        ));
    }
    let mut out = String::from("<dl class=\"summary\">\n");
    for (name, value) in rows {
        let _ = writeln!(out, "<dt>{name}</dt><dd>{value}</dd>");
    }
    out + "</dl>\n"
}

/// The sortable, filterable list.
fn list(listed: &[(usize, &Finding)]) -> String {
    let mut out = String::from(
        "<section id=\"findings\">\n<div class=\"controls\">\
         <input id=\"filter\" type=\"search\" placeholder=\"Filter by file or function\" aria-label=\"Filter by file or function\">\
         <select id=\"verdict\" aria-label=\"Verdict\"><option value=\"\">every verdict</option>\
         <option value=\"insecure\">insecure</option><option value=\"confirmed\">confirmed</option>\
         <option value=\"suppressed\">suppressed</option><option value=\"baseline\">baseline</option></select>\
         <span id=\"shown\"></span></div>\n<table class=\"list\" id=\"list\">\n<thead><tr>",
    );
    for (key, name) in [
        ("p", "P(insecure)"),
        ("verdict", "Verdict"),
        ("function", "Function"),
        ("location", "Location"),
    ] {
        let _ = write!(
            out,
            "<th data-key=\"{key}\" aria-sort=\"none\"><button type=\"button\">{name}</button></th>"
        );
    }
    out += "</tr></thead>\n<tbody>\n";
    for (i, f) in listed {
        let verdict = f.verdict.name();
        let place = format!("{}:{}-{}", f.file, f.start_line, f.end_line);
        let search = format!("{} {}", f.file, f.function).to_lowercase();
        let _ = writeln!(
            out,
            "<tr data-index=\"{i}\" data-target=\"f{i}\" data-p=\"{p}\" data-verdict=\"{verdict}\" \
             data-function=\"{function}\" data-file=\"{file}\" data-line=\"{line}\" data-search=\"{search}\">\
             <td class=\"p\">{p:.3}</td><td class=\"verdict verdict-{verdict}\">{verdict}</td>\
             <td><code>{function}</code></td><td><a href=\"#f{i}\">{place}</a></td></tr>",
            p = f.prediction.insecure_probability,
            function = escape(&f.function),
            file = escape(&f.file),
            line = f.start_line,
            search = escape(&search),
            place = escape(&place),
        );
    }
    out + "</tbody>\n</table>\n</section>\n"
}

/// One function: what the scan says of it, and its source.
fn article(i: usize, f: &Finding, report: &ScanReport) -> String {
    let verdict = f.verdict.name();
    let mut out = format!(
        "<article id=\"f{i}\" data-verdict=\"{verdict}\">\n<h2><code>{}</code> in <code>{}</code>, lines {}-{}</h2>\n",
        escape(&f.function),
        escape(&f.file),
        f.start_line,
        f.end_line
    );
    let _ = writeln!(
        out,
        "<p><span class=\"verdict verdict-{verdict}\">{verdict}</span>: insecure probability {:.3} (threshold {})</p>",
        f.prediction.insecure_probability, report.threshold
    );
    let triage_file = report
        .triage
        .as_ref()
        .map(|t| escape(&t.path.display().to_string()));
    if let (Some(t), Some(file)) = (&f.triage, &triage_file) {
        let expires = t
            .expires
            .as_ref()
            .map_or(String::new(), |d| format!(", until {}", escape(d)));
        let _ = writeln!(
            out,
            "<p>Triaged {} in <code>{file}</code> (line {}{expires}): {}</p>",
            t.verdict.name(),
            t.line,
            escape(&t.reason)
        );
    }
    if f.verdict == Verdict::Suppressed && f.in_source {
        out += "<p>Suppressed by an <code>icd: ignore</code> comment.</p>\n";
    }
    if f.verdict == Verdict::Baseline {
        out += "<p>In the baseline: not a new finding.</p>\n";
    }
    if let Some(w) = f.window {
        let _ = writeln!(
            out,
            "<p>The worst of {} windows: lines {}-{}.</p>",
            w.windows, w.start_line, w.end_line
        );
    } else if f.prediction.truncated {
        let _ = writeln!(
            out,
            "<p>Classified on its first {} tokens (truncated).</p>",
            f.prediction.tokens
        );
    }
    if !f.lines.is_empty() {
        let top: Vec<String> = f
            .lines
            .iter()
            .map(|l| format!("{} ({:.3})", l.line, l.score))
            .collect();
        let _ = writeln!(out, "<p>Top lines: {}</p>", top.join(", "));
    }
    out += &source(f);
    out + "</article>\n"
}

/// The function's source, a line each with its number, shaded by its score: a span
/// of class `l` per line (`s1`..`s9` its shade, `t` a top line) holding a span of
/// class `n`, its number. Short names: a page at 10,000 functions holds half a million
/// of them.
fn source(f: &Finding) -> String {
    let highest = f.line_scores.iter().map(|l| l.score).fold(0.0f32, f32::max);
    let score_of = |line: usize| {
        f.line_scores
            .iter()
            .find(|l| l.line == line)
            .map_or(0.0, |l| l.score)
    };
    let mut out = String::from("<pre class=\"source\"><code>");
    for (offset, text) in f.code.lines().enumerate() {
        let line = f.start_line + offset;
        let mut class = String::from("l");
        if highest > 0.0 {
            let level = (score_of(line) / highest * LEVELS).round() as u32;
            if level > 0 {
                let _ = write!(class, " s{}", level.min(LEVELS as u32));
            }
        }
        if f.lines.iter().any(|l| l.line == line) {
            class += " t";
        }
        let _ = write!(
            out,
            "<span class=\"{class}\"><span class=\"n\">{line}</span>{}</span>",
            code_line(text)
        );
    }
    out + "</code></pre>\n"
}

/// What was not scanned.
fn gaps(report: &ScanReport) -> String {
    if report.gaps.is_empty() {
        return String::new();
    }
    let mut out = String::from("<section id=\"gaps\">\n<h2>Not scanned</h2>\n<ul>\n");
    let not_covered = NotCovered::of(report.gaps);
    for gap in not_covered.files {
        // The message has its names made printable already.
        let _ = writeln!(out, "<li>{}</li>", html_escape(&gap.message()));
    }
    for (settings, n) in not_covered.excluded {
        let plural = if n == 1 { "" } else { "s" };
        let _ = writeln!(
            out,
            "<li>{n} file{plural} excluded by <code>{}</code></li>",
            escape(&settings.display().to_string())
        );
    }
    out + "</ul>\n</section>\n"
}

/// A name or message for HTML text or a quoted attribute: controls escaped
/// ([`printable`]), then HTML's special characters.
fn escape(text: &str) -> String {
    html_escape(&printable(text))
}

/// HTML's special characters as references.
fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out += "&amp;",
            '<' => out += "&lt;",
            '>' => out += "&gt;",
            '"' => out += "&quot;",
            '\'' => out += "&#39;",
            c => out.push(c),
        }
    }
    out
}

/// A line of source as HTML: tabs kept, other control and bidirectional-control
/// characters shown as a marked `\u{…}` (so that a Trojan Source reordering shows),
/// the rest escaped.
fn code_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\t' => out.push('\t'),
            c if unsafe_to_print(c) => {
                let _ = write!(out, "<span class=\"ctl\">{}</span>", c.escape_unicode());
            }
            c => out += &html_escape(c.encode_utf8(&mut [0; 4])),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_code_are_escaped() {
        assert_eq!(
            escape("</script><img src=x onerror=\"a('1')\">&"),
            "&lt;/script&gt;&lt;img src=x onerror=&quot;a(&#39;1&#39;)&quot;&gt;&amp;"
        );
        assert_eq!(escape("a\nb"), "a\\u{a}b");
        assert_eq!(
            code_line("\tif (a < b) s = \"\\n\";"),
            "\tif (a &lt; b) s = &quot;\\n&quot;;"
        );
        assert_eq!(
            code_line("x\u{202e}y"),
            "x<span class=\"ctl\">\\u{202e}</span>y"
        );
    }

    #[test]
    fn the_policy_names_the_page_own_script_and_style() {
        // The digest of "" is well known; the page's are of its own text.
        assert_eq!(
            digest(""),
            "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
        assert_ne!(digest(SCRIPT), digest(STYLE));
        assert!(!SCRIPT.contains("</script") && !STYLE.contains("</style"));
        assert!(!SCRIPT.contains("innerHTML") && !SCRIPT.contains("eval("));
    }
}
