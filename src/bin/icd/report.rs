//! What a scan found, typed once for every report format (`emit`): one [`Finding`] per
//! classified function with its [`Verdict`], and the parts of the tree not covered.
//! The jsonl format is this type's serde serialization.

use std::path::Path;

use insecure_code_detector::scan::FunctionSpan;
use insecure_code_detector::{LineScore, Prediction};
use serde::Serialize;

use crate::baseline::{Baseline, BaselineState};
use crate::classification::Classified;
use crate::sources::Gap;
use crate::triage::{Triage, TriageVerdict};

/// The one rule for what is a finding: an insecure probability at or above the
/// threshold. The reports and the exit status ask it; `evaluate` compares the same f32
/// values.
pub fn is_finding(p: &Prediction, threshold: f32) -> bool {
    p.insecure_probability >= threshold
}

/// What a scan says of one function.
#[derive(Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// At or above the threshold: a finding.
    Insecure,
    /// Triaged true-positive: a finding whatever the threshold and the baseline say.
    Confirmed,
    /// At or above the threshold, but suppressed in the source or triaged
    /// false-positive or accepted-risk: not a finding.
    Suppressed,
    /// At or above the threshold, and in the `--baseline` already: not a new finding.
    Baseline,
    /// Below the threshold.
    Ok,
}

impl Verdict {
    /// The verdict's name in every format.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Insecure => "insecure",
            Verdict::Confirmed => "confirmed",
            Verdict::Suppressed => "suppressed",
            Verdict::Baseline => "baseline",
            Verdict::Ok => "ok",
        }
    }
}

/// With `--window`: the lines of the worst window in the file, and the number of
/// windows.
#[derive(Clone, Copy, Serialize)]
pub struct WindowLines {
    pub start_line: usize,
    pub end_line: usize,
    pub windows: usize,
}

/// One classified function of a scanned file. Serialized, it is a jsonl row.
#[derive(Serialize)]
pub struct Finding {
    pub file: String,
    pub function: String,
    pub start_line: usize,
    pub end_line: usize,
    pub verdict: Verdict,
    /// An `icd: ignore` comment (unless `--no-ignore` is given) or a false-positive or
    /// accepted-risk entry of the triage file suppresses the function; a true-positive
    /// entry overrules a comment.
    pub suppressed: bool,
    /// An `icd: ignore` comment suppresses the function, and `--no-ignore` is not given.
    #[serde(skip)]
    pub in_source: bool,
    /// The triage file's entry for the function, unless it has expired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub triage: Option<TriageMark>,
    /// [`FunctionSpan::fingerprint`].
    pub fingerprint: String,
    #[serde(flatten)]
    pub prediction: Prediction,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowLines>,
    /// With --explain: the top lines (file line numbers), highest score first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<LineScore>,
    /// With --explain: every scored line (file line numbers), for reports that shade
    /// the source.
    #[serde(skip)]
    pub line_scores: Vec<LineScore>,
    /// The definition's text, for reports that show the source; its first line is
    /// `start_line`.
    #[serde(skip)]
    pub code: String,
    /// With --baseline, for a function at or above the threshold: whether the
    /// baseline has it.
    #[serde(skip)]
    pub baseline: Option<BaselineState>,
}

impl Finding {
    /// The finding for function `f` of `file`, classified as `classified`, with its
    /// `top_lines` best lines; its verdict is set by [`ScanReport::new`].
    pub fn new(
        file: &str,
        f: FunctionSpan,
        classified: Classified,
        top_lines: usize,
        no_ignore: bool,
    ) -> Finding {
        // The window's lines in the file: of its first byte and of its last (a window
        // that ends with a newline ends on that newline's line).
        let window = classified.window.map(|(bytes, windows)| {
            let line_of = |byte: usize| f.start_line + f.code[..byte].matches('\n').count();
            let ends_with_newline =
                bytes.end > bytes.start && f.code[..bytes.end].ends_with('\n');
            let last = line_of(bytes.end) - usize::from(ends_with_newline);
            WindowLines {
                start_line: line_of(bytes.start),
                end_line: last,
                windows,
            }
        });
        let line_scores: Vec<LineScore> = classified
            .lines
            .iter()
            .map(|l| LineScore {
                line: f.start_line + l.line - 1,
                score: l.score,
            })
            .collect();
        let lines = line_scores.iter().take(top_lines).copied().collect();
        Finding {
            file: file.to_owned(),
            function: f.name,
            start_line: f.start_line,
            end_line: f.end_line,
            verdict: Verdict::Ok,
            prediction: classified.prediction,
            window,
            lines,
            line_scores,
            fingerprint: f.fingerprint,
            suppressed: f.suppressed && !no_ignore,
            in_source: f.suppressed && !no_ignore,
            triage: None,
            baseline: None,
            code: f.code,
        }
    }
}

/// A triage entry, as reports show it.
#[derive(Clone, Serialize)]
pub struct TriageMark {
    pub verdict: TriageVerdict,
    pub reason: String,
    /// `YYYY-MM-DD`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// The entry's line in the triage file.
    #[serde(skip)]
    pub line: usize,
}

/// What the triage file did in a scan.
pub struct TriageUse {
    /// The file.
    pub path: std::path::PathBuf,
    /// Functions suppressed (at or above the threshold), by verdict.
    pub false_positive: usize,
    pub accepted_risk: usize,
    /// Functions confirmed.
    pub confirmed: usize,
    /// Functions whose entry has expired, so that it no longer applies.
    pub expired: usize,
    /// Suppressed functions outside the file their entry names: copies or moves of a
    /// triaged function, whose verdict may not hold where they are now.
    pub elsewhere: usize,
}

impl TriageUse {
    /// The functions it suppressed.
    pub fn suppressed(&self) -> usize {
        self.false_positive + self.accepted_risk
    }
}

/// A whole scan, as every report format renders it.
pub struct ScanReport<'a> {
    /// Every classified function, in the order found.
    pub findings: Vec<Finding>,
    pub threshold: f32,
    /// Files and lines that were not covered.
    pub gaps: &'a [Gap],
    /// The checkpoint directory.
    pub model_dir: &'a Path,
    /// The calibration file, where one is used.
    pub calibration: Option<&'a Path>,
    /// With `--baseline`: its results that no function of this scan matched are left.
    pub baseline: Option<Baseline>,
    /// With a triage file: what it did.
    pub triage: Option<TriageUse>,
}

impl<'a> ScanReport<'a> {
    /// The report of `findings`: each given its triage entry (unless expired on
    /// `today`), matched against the baseline (in report order, so that which of two
    /// equal functions is "new" is stable), then given its verdict.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        mut findings: Vec<Finding>,
        threshold: f32,
        gaps: &'a [Gap],
        model_dir: &'a Path,
        mut baseline: Option<Baseline>,
        triage: Option<&Triage>,
        today: time::Date,
    ) -> Self {
        let mut used = triage.map(|t| TriageUse {
            path: t.path.clone(),
            false_positive: 0,
            accepted_risk: 0,
            confirmed: 0,
            expired: 0,
            elsewhere: 0,
        });
        if let (Some(triage), Some(used)) = (triage, &mut used) {
            for f in &mut findings {
                let Some(entry) = triage.entry(&f.fingerprint) else {
                    continue;
                };
                if entry.expired(today) {
                    used.expired += 1;
                    continue;
                }
                f.triage = Some(TriageMark {
                    verdict: entry.verdict,
                    reason: entry.reason.clone(),
                    expires: entry.expires.map(|d| d.to_string()),
                    line: entry.line,
                });
                f.suppressed = entry.verdict.suppresses();
                if f.suppressed && is_finding(&f.prediction, threshold) && !triage.names_file(entry, &f.file) {
                    used.elsewhere += 1;
                }
            }
        }
        if let Some(baseline) = &mut baseline {
            // Confirmed functions below the threshold are reported too, so they claim
            // their baseline result as the others do.
            let mut order: Vec<&mut Finding> = findings
                .iter_mut()
                .filter(|f| {
                    is_finding(&f.prediction, threshold)
                        || f.triage.as_ref().map(|t| t.verdict) == Some(TriageVerdict::TruePositive)
                })
                .collect();
            order.sort_by(|a, b| {
                (&a.file, a.start_line, &a.function).cmp(&(&b.file, b.start_line, &b.function))
            });
            for f in order {
                f.baseline = Some(baseline.classify(&f.fingerprint));
            }
        }
        for f in &mut findings {
            let triaged = f.triage.as_ref().map(|t| t.verdict);
            f.verdict = if triaged == Some(TriageVerdict::TruePositive) {
                Verdict::Confirmed
            } else if !is_finding(&f.prediction, threshold) {
                Verdict::Ok
            } else if f.suppressed {
                Verdict::Suppressed
            } else if f.baseline == Some(BaselineState::Unchanged) {
                Verdict::Baseline
            } else {
                Verdict::Insecure
            };
            if let Some(used) = &mut used {
                match (f.verdict, triaged) {
                    (Verdict::Confirmed, _) => used.confirmed += 1,
                    (Verdict::Suppressed, Some(TriageVerdict::FalsePositive)) => {
                        used.false_positive += 1
                    }
                    (Verdict::Suppressed, Some(TriageVerdict::AcceptedRisk)) => {
                        used.accepted_risk += 1
                    }
                    _ => {}
                }
            }
        }
        ScanReport {
            findings,
            threshold,
            gaps,
            model_dir,
            calibration: None,
            baseline,
            triage: used,
        }
    }

    /// The functions with this verdict.
    pub fn count(&self, verdict: Verdict) -> usize {
        self.findings.iter().filter(|f| f.verdict == verdict).count()
    }

    /// Functions the triage file suppressed.
    pub fn suppressed_by_triage(&self) -> usize {
        self.triage.as_ref().map_or(0, |t| t.suppressed())
    }

    /// Functions an `icd: ignore` comment (alone) suppressed.
    pub fn suppressed_in_source(&self) -> usize {
        self.count(Verdict::Suppressed) - self.suppressed_by_triage()
    }

    /// The findings that set the exit status: insecure and confirmed functions.
    pub fn findings_count(&self) -> usize {
        self.count(Verdict::Insecure) + self.count(Verdict::Confirmed)
    }
}
