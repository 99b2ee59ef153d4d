//! `icd scan --format sarif`: a SARIF 2.1.0 log that GitHub code scanning ingests.
//!
//! What GitHub needs beyond the schema (and Microsoft's SARIF Multitool checks with
//! `validate --rule-kind "Sarif;Gh"`): a `help` on every rule and notification
//! descriptor, artifact URIs relative to the checkout (`%SRCROOT%`, here the directory
//! `icd` ran in), and fingerprints of its own (`partialFingerprints`) so that an alert
//! follows its function when lines move. Results are sorted, so two scans of one tree
//! give byte-identical logs.

use std::path::Path;

use insecure_code_detector::files::path_text;
use insecure_code_detector::report::sarif_uri;
use serde_json::{json, Value};

use crate::baseline::{Baseline, BaselineState};
use crate::report::{Finding, ScanReport, Verdict};
use crate::sources::{Gap, GapKind};
use crate::Failure;

/// The one rule: a function the model classifies insecure.
pub const RULE_ID: &str = "ICD001";

/// Notification ids: lines that could not be parsed, files that were not read.
const UNPARSED_ID: &str = "ICD-UNPARSED";
const SKIPPED_ID: &str = "ICD-SKIPPED";
const EXCLUDED_ID: &str = "ICD-EXCLUDED";

/// The base that relative artifact URIs are resolved against.
const SRCROOT: &str = "SRCROOT";

/// The `partialFingerprints` key of [`Finding::fingerprint`]; its version changes
/// whenever the fingerprint's definition does.
pub const FINGERPRINT_KEY: &str = "icdFunctionHash/v3";

/// The rule's help, in Markdown (GitHub shows it beside each alert); `help.text` is
/// the same without the markup.
const HELP_MARKDOWN: &str = "\
**What flagged this.** `icd` runs CodeBERT fine-tuned on CodeXGLUE defect detection \
(Devign: functions from FFmpeg and QEMU, label 1 = insecure) over each C/C++ function \
and reports the functions whose insecure probability is at or above the threshold \
(`--threshold`, 0.5 by default). The model was right on 65.3% of CodeXGLUE's test \
functions: about one finding in three is a false alarm, and it misses vulnerabilities \
too. It judges the whole function from its text; it does not name a bug or a line \
(`--explain` lists the lines it attended to most, which is not the same thing).

**How to review.** Read the function for the defects Devign labels: unchecked \
lengths and indices, integer overflow in sizes, use after free, double free, NULL \
dereferences, missing error checks, and races on shared state. Treat the score as a \
reason to look, not as a verdict.

**How to record a verdict.** After review, record it in the triage file beside the \
code, keyed by the function's fingerprint: \
`icd triage add FILE:LINE --verdict false-positive --reason \"lengths checked by caller\"` \
(or `accepted-risk`, with `--expires DATE`, or `true-positive`, which keeps the \
function a finding). A false-positive or accepted-risk entry suppresses the function \
until the function changes or the entry expires. A comment holding `icd: ignore` on \
the function's first line or on the line before it suppresses it too \
(`icd scan --no-ignore` reports those again). To see only what a change introduces, \
scan with `--baseline OLD.sarif` (an earlier report).";

/// `help.text`: [`HELP_MARKDOWN`] without its markup.
fn help_text() -> String {
    HELP_MARKDOWN.replace("**", "").replace('`', "")
}

/// GitHub's security severity (0.1 to 10.0; 4.0 and up is medium, 7.0 high, 9.0
/// critical) of an insecure probability: ten times it, one decimal.
fn security_severity(probability: f32) -> String {
    format!("{:.1}", (f64::from(probability) * 10.0).clamp(0.1, 10.0))
}

/// Where relative artifact URIs point: the current directory, as a `file:` URI
/// ending in `/` (SARIF §3.14.14).
fn srcroot() -> Result<(std::path::PathBuf, String), Failure> {
    let cwd = std::env::current_dir()
        .map_err(|e| Failure(format!("the current directory, for %SRCROOT%: {e}")))?;
    let mut uri = sarif_uri(&path_text(&cwd));
    if !uri.ends_with('/') {
        uri.push('/');
    }
    Ok((cwd, uri))
}

/// An `artifactLocation`: relative to `%SRCROOT%` when the file is under it, else an
/// absolute `file:` URI.
fn artifact(file: &str, root: &Path) -> Value {
    let path = Path::new(file);
    let relative = if path.is_absolute() {
        path.strip_prefix(root).ok()
    } else {
        Some(path)
    };
    match relative {
        Some(relative) => json!({
            "uri": sarif_uri(&relative.display().to_string()),
            "uriBaseId": SRCROOT,
        }),
        None => json!({ "uri": sarif_uri(file) }),
    }
}

/// One tool notification per file with lines that could not be parsed or that was not
/// read at all.
fn notifications(gaps: &[&Gap], root: &Path) -> Vec<Value> {
    gaps.iter()
        .map(|gap| {
            let artifact = artifact(&gap.file, root);
            let locations: Vec<Value> = match gap.lines() {
                [] => vec![json!({ "physicalLocation": { "artifactLocation": artifact } })],
                lines => lines
                    .iter()
                    .map(|r| {
                        json!({
                            "physicalLocation": {
                                "artifactLocation": artifact,
                                "region": { "startLine": r.start_line, "endLine": r.end_line }
                            }
                        })
                    })
                    .collect(),
            };
            let (id, level) = match gap.kind {
                GapKind::Skipped(_) => (SKIPPED_ID, "warning"),
                GapKind::Unparsed(_) => (UNPARSED_ID, "warning"),
                GapKind::Excluded(_) => (EXCLUDED_ID, "note"),
            };
            json!({
                "descriptor": { "id": id },
                "level": level,
                "message": { "text": gap.message() },
                "locations": locations,
            })
        })
        .collect()
}

/// One result: a finding, or a suppressed one with its suppression.
fn result(f: &Finding, root: &Path, model: &str, triage_file: Option<&Path>) -> Value {
    let p = f.prediction.insecure_probability;
    let (start, end) = f
        .window
        .map_or((f.start_line, f.end_line), |w| (w.start_line, w.end_line));
    let mut properties = json!({
        "insecureProbability": p,
        "security-severity": security_severity(p),
        "model": model,
        "tokens": f.prediction.tokens,
        "truncated": f.prediction.truncated,
    });
    if let Some(t) = &f.triage {
        properties["triage"] = json!(t.verdict.name());
        properties["triageReason"] = json!(t.reason);
        if let Some(expires) = &t.expires {
            properties["triageExpires"] = json!(expires);
        }
    }
    if let Some(w) = f.window {
        properties["windows"] = json!(w.windows);
        properties["functionStartLine"] = json!(f.start_line);
        properties["functionEndLine"] = json!(f.end_line);
    }
    let mut message = match &f.triage {
        Some(t) if f.verdict == Verdict::Confirmed => format!(
            "Function `{}` is confirmed insecure by the triage file ({}) (probability {p:.3}).",
            f.function, t.reason
        ),
        _ => format!(
            "Function `{}` is classified insecure (probability {p:.3}).",
            f.function
        ),
    };
    if let Some(top) = f.lines.first() {
        message += &format!(" The model attended most to line {}.", top.line);
    }
    let related: Vec<Value> = f
        .lines
        .iter()
        .enumerate()
        .map(|(id, l)| {
            json!({
                "id": id,
                "physicalLocation": {
                    "artifactLocation": artifact(&f.file, root),
                    "region": { "startLine": l.line }
                },
                "message": { "text": format!("attention score {:.3}", l.score) }
            })
        })
        .collect();
    let mut result = json!({
        "ruleId": RULE_ID,
        "ruleIndex": 0,
        "level": "warning",
        "rank": (f64::from(p) * 100.0 * 100.0).round() / 100.0,
        "message": { "text": message },
        "locations": [{
            "physicalLocation": {
                "artifactLocation": artifact(&f.file, root),
                "region": { "startLine": start, "endLine": end }
            },
            "logicalLocations": [{ "name": f.function, "kind": "function" }]
        }],
        // The fingerprint under GitHub's own key too, so that GitHub does not compute
        // one from the lines around the start line (which change when lines move).
        "partialFingerprints": {
            FINGERPRINT_KEY: f.fingerprint,
            "primaryLocationLineHash": f.fingerprint,
        },
        "properties": properties,
    });
    if !related.is_empty() {
        result["relatedLocations"] = json!(related);
    }
    if f.verdict == Verdict::Confirmed {
        result["level"] = json!("error");
    }
    let suppressions = suppressions(f, root, triage_file);
    if !suppressions.is_empty() {
        result["suppressions"] = json!(suppressions);
    }
    match f.baseline {
        Some(BaselineState::New) => result["baselineState"] = json!("new"),
        Some(BaselineState::Unchanged) => result["baselineState"] = json!("unchanged"),
        None => {}
    }
    result
}

/// What suppresses a result: its `icd: ignore` comment (`inSource`), its triage entry
/// (`external`, with the entry's reason and line), or both; nothing for a confirmed one.
fn suppressions(f: &Finding, root: &Path, triage_file: Option<&Path>) -> Vec<Value> {
    let mut out = Vec::new();
    if f.verdict == Verdict::Confirmed {
        return out;
    }
    if f.in_source {
        out.push(json!({ "kind": "inSource" }));
    }
    if let (Some(t), Some(file)) = (&f.triage, triage_file) {
        if t.verdict.suppresses() {
            out.push(json!({
                "kind": "external",
                "status": "accepted",
                "justification": format!("{}: {}", t.verdict.name(), t.reason),
                "location": {
                    "physicalLocation": {
                        "artifactLocation": artifact(&path_text(file), root),
                        "region": { "startLine": t.line }
                    }
                }
            }));
        }
    }
    out
}

/// The order of results: by file, then line, then function name and fingerprint.
fn sort_key(f: &Finding) -> (&str, usize, &str, &str) {
    (&f.file, f.start_line, &f.function, &f.fingerprint)
}

/// The log of [`log`], with the `--baseline` results that are absent now after this
/// scan's own, as text.
pub fn render(report: &ScanReport) -> Result<String, Failure> {
    let log = log(report)?;
    Ok(serde_json::to_string_pretty(&WithAbsent {
        log: &log,
        baseline: report.baseline.as_ref(),
    })? + "\n")
}

/// A log whose run's results are followed by a baseline's absent ones, each made as it
/// is written: a baseline as large as allowed is never held whole as JSON values.
struct WithAbsent<'a> {
    log: &'a Value,
    baseline: Option<&'a Baseline>,
}

impl serde::Serialize for WithAbsent<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        // `log`'s own shape: {..., "runs": [{..., "results": [...]}]}.
        struct Results<'a>(&'a Value, Option<&'a Baseline>);
        impl serde::Serialize for Results<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut seq = s.serialize_seq(None)?;
                for r in self.0.as_array().into_iter().flatten() {
                    seq.serialize_element(r)?;
                }
                for r in self.1.into_iter().flat_map(Baseline::absent) {
                    seq.serialize_element(&r)?;
                }
                seq.end()
            }
        }
        struct Run<'a>(&'a Value, Option<&'a Baseline>);
        impl serde::Serialize for Run<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let Some(run) = self.0.as_object() else {
                    return self.0.serialize(s);
                };
                let mut map = s.serialize_map(Some(run.len()))?;
                for (key, value) in run {
                    match key.as_str() {
                        "results" => map.serialize_entry(key, &Results(value, self.1))?,
                        _ => map.serialize_entry(key, value)?,
                    }
                }
                map.end()
            }
        }
        let Some(log) = self.log.as_object() else {
            return self.log.serialize(s);
        };
        let mut map = s.serialize_map(Some(log.len()))?;
        for (key, value) in log {
            match (key.as_str(), value.as_array()) {
                ("runs", Some(runs)) => {
                    let runs: Vec<Run> = runs.iter().map(|r| Run(r, self.baseline)).collect();
                    map.serialize_entry(key, &runs)?
                }
                _ => map.serialize_entry(key, value)?,
            }
        }
        map.end()
    }
}

/// SARIF 2.1.0: one result per function at or above the threshold or confirmed (those
/// suppressed with their suppressions), and one tool notification per part of the tree
/// that was not covered. A `--baseline`'s absent results are added by [`render`].
pub fn log(report: &ScanReport) -> Result<Value, Failure> {
    let (root, root_uri) = srcroot()?;
    let model = report.model_dir.display().to_string();
    let threshold = report.threshold;
    let triage_file = report.triage.as_ref().map(|t| t.path.as_path());
    let mut reported: Vec<&Finding> = report
        .findings
        .iter()
        .filter(|f| f.verdict != Verdict::Ok)
        .collect();
    reported.sort_by(|a, b| sort_key(a).cmp(&sort_key(b)));
    let results: Vec<Value> = reported
        .into_iter()
        .map(|f| result(f, &root, &model, triage_file))
        .collect();
    let mut gaps: Vec<&Gap> = report.gaps.iter().collect();
    gaps.sort_by(|a, b| a.file.cmp(&b.file));
    let help = help_text();
    let version = env!("CARGO_PKG_VERSION");
    Ok(json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "icd",
                    "fullName": "insecure-code-detector",
                    "version": version,
                    "semanticVersion": version,
                    "informationUri": "https://huggingface.co/mrm8488/codebert-base-finetuned-detect-insecure-code",
                    "rules": [{
                        "id": RULE_ID,
                        "name": "InsecureFunction",
                        "shortDescription": { "text": "Function classified insecure by CodeBERT." },
                        "fullDescription": {
                            "text": "CodeBERT fine-tuned on CodeXGLUE defect detection (Devign) rates this function as likely to contain a vulnerability. The model judges a whole function from its text; it does not point at a line."
                        },
                        "help": { "text": help, "markdown": HELP_MARKDOWN },
                        "defaultConfiguration": { "level": "warning" },
                        "properties": {
                            "tags": ["security", "machine-learning"],
                            "precision": "low",
                            "problem.severity": "warning",
                            "security-severity": security_severity(threshold),
                        }
                    }],
                    "notifications": [{
                        "id": UNPARSED_ID,
                        "name": "UnparsedLines",
                        "shortDescription": { "text": "Lines that could not be parsed into function definitions." },
                        "fullDescription": {
                            "text": "The parser read these lines of a file, under every selection of its preprocessor branches, as no function definition, declaration or other complete item. Functions there, if any, were not classified."
                        },
                        "help": {
                            "text": "Functions in these lines were not classified. Macros that hide a definition's syntax are the usual cause; scan the preprocessed file to cover them."
                        },
                        "defaultConfiguration": { "level": "warning" }
                    }, {
                        "id": SKIPPED_ID,
                        "name": "SkippedFile",
                        "shortDescription": { "text": "A source file that was not scanned." },
                        "fullDescription": {
                            "text": "The file was not read: a symbolic link (not followed), not a regular file, unreadable, binary, or larger than --max-file-size. Its functions were not classified."
                        },
                        "help": {
                            "text": "Its functions were not classified. Scan the link's target, make the file readable, or raise --max-file-size (up to 32 MiB, the most the parser reads of one file)."
                        },
                        "defaultConfiguration": { "level": "warning" }
                    }, {
                        "id": EXCLUDED_ID,
                        "name": "ExcludedFile",
                        "shortDescription": { "text": "A source file that the project's settings exclude." },
                        "fullDescription": {
                            "text": "The `exclude` list of the settings file (.icd.toml, or --config) names this file, so it was not read. Its functions were not classified."
                        },
                        "help": {
                            "text": "Review changes to the settings file's exclude list like code: a file excluded there is not scanned. --no-config scans it."
                        },
                        "defaultConfiguration": { "level": "note" }
                    }]
                }
            },
            "originalUriBaseIds": {
                SRCROOT: {
                    "uri": root_uri,
                    "description": { "text": "The directory icd ran in." }
                }
            },
            "invocations": [{
                "executionSuccessful": true,
                "toolExecutionNotifications": notifications(&gaps, &root),
            }],
            "results": results,
        }]
    }))
}
