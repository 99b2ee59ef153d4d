//! `--baseline OLD.sarif`: the findings of an earlier `icd scan --format sarif`, matched
//! by fingerprint against this scan's.
//!
//! The log is kept as its text, with each result's place in it: a result is parsed on
//! its own, to read its fingerprint, and again only if it is absent now, as the new log
//! is written. A baseline so costs about its size in memory, not the thirty times a
//! parsed JSON tree of it costs.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::emit::sarif::{FINGERPRINT_KEY, RULE_ID};
use crate::Failure;

/// The findings of an earlier `icd scan --format sarif` (`--baseline`): how many times
/// each fingerprint occurs, and the results themselves, for those gone since.
pub struct Baseline {
    /// The log's text.
    text: String,
    /// Where in `text` the results not yet matched to a function of this scan are, by
    /// fingerprint; a fingerprint occurring twice (equal functions in two files) is
    /// matched twice.
    unmatched: BTreeMap<String, Vec<Range<usize>>>,
}

/// `baselineState` of a result (SARIF §3.27.24).
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum BaselineState {
    New,
    Unchanged,
}

/// The log's `runs`, unparsed.
#[derive(Deserialize)]
struct Log<'a> {
    #[serde(borrow)]
    runs: Option<&'a RawValue>,
}

impl Baseline {
    /// Largest baseline log read.
    const LIMIT: u64 = 512 << 20;

    /// Reads an earlier log of `icd scan --format sarif`; anything else is an error
    /// naming the file, never an empty baseline (which would pass every finding as new
    /// but could also hide a mistake in the workflow).
    pub fn read(path: &Path) -> Result<Baseline, Failure> {
        let at = path.display();
        let text = insecure_code_detector::files::read_untrusted_text(
            path,
            Self::LIMIT,
            "baseline SARIF log",
        )?;
        let not_sarif = |e: serde_json::Error| Failure(format!("{at}: not a SARIF log: {e}"));
        let log: Log = serde_json::from_str(&text).map_err(not_sarif)?;
        let runs: Vec<&RawValue> = match log.runs {
            Some(runs) if runs.get().starts_with('[') => {
                serde_json::from_str(runs.get()).map_err(not_sarif)?
            }
            _ => return Err(Failure(format!("{at}: not a SARIF log: no `runs` array"))),
        };
        let mut unmatched: BTreeMap<String, Vec<Range<usize>>> = Default::default();
        for (n, run) in runs.into_iter().enumerate() {
            // A run's members unparsed; one that is no object has none.
            let members: BTreeMap<String, &RawValue> =
                serde_json::from_str(run.get()).unwrap_or_default();
            let tool: Value = members
                .get("tool")
                .and_then(|t| serde_json::from_str(t.get()).ok())
                .unwrap_or_default();
            let tool = &tool["driver"]["name"];
            if tool != "icd" {
                return Err(Failure(format!(
                    "{at}: runs[{n}] is from {tool}, not icd: the baseline must be an earlier `icd scan --format sarif`"
                )));
            }
            let results: Vec<&RawValue> = members
                .get("results")
                .filter(|r| r.get().starts_with('['))
                .map(|r| serde_json::from_str(r.get()))
                .transpose()
                .map_err(not_sarif)?
                .unwrap_or_default();
            for (k, raw) in results.into_iter().enumerate() {
                // One result at a time as a tree, for the fields matching reads.
                let r: Value = serde_json::from_str(raw.get()).map_err(not_sarif)?;
                // Results gone before the earlier scan are not part of its findings.
                if r["baselineState"] == "absent" || r["ruleId"] != RULE_ID {
                    continue;
                }
                let fingerprint = r["partialFingerprints"][FINGERPRINT_KEY]
                    .as_str()
                    .ok_or_else(|| {
                        Failure(format!(
                            "{at}: runs[{n}].results[{k}] has no partialFingerprints.{FINGERPRINT_KEY} (made by an older icd? scan the base again)"
                        ))
                    })?;
                // `raw` borrows from `text`: its place there.
                let start = (raw.get().as_ptr() as usize)
                    .checked_sub(text.as_ptr() as usize)
                    .filter(|start| text.get(*start..start + raw.get().len()) == Some(raw.get()))
                    .ok_or_else(|| {
                        Failure(format!("{at}: runs[{n}].results[{k}] could not be placed"))
                    })?;
                unmatched
                    .entry(fingerprint.to_owned())
                    .or_default()
                    .push(start..start + raw.get().len());
            }
        }
        Ok(Baseline { text, unmatched })
    }

    /// Whether a finding with this fingerprint is new; an unchanged one uses up its
    /// match in the baseline.
    pub fn classify(&mut self, fingerprint: &str) -> BaselineState {
        match self.unmatched.get_mut(fingerprint).and_then(Vec::pop) {
            Some(_) => BaselineState::Unchanged,
            None => BaselineState::New,
        }
    }

    /// The baseline's results that matched no finding of this scan, marked absent, one
    /// at a time, each as the earlier log wrote it.
    pub fn absent(&self) -> impl Iterator<Item = Value> + '_ {
        self.unmatched.values().flatten().map(|place| {
            // Parsed once already, when read.
            let mut r: Value = serde_json::from_str(&self.text[place.clone()]).unwrap_or_default();
            r["baselineState"] = json!("absent");
            r
        })
    }
}
