//! `--baseline OLD.sarif`: the findings of an earlier `icd scan --format sarif`, matched
//! by fingerprint against this scan's.

use std::path::Path;

use serde_json::{json, Value};

use crate::emit::sarif::{FINGERPRINT_KEY, RULE_ID};
use crate::Failure;

/// The findings of an earlier `icd scan --format sarif` (`--baseline`): how many times
/// each fingerprint occurs, and the results themselves, for those gone since.
pub struct Baseline {
    /// Results of the earlier log not yet matched to a function of this scan, by
    /// fingerprint; a fingerprint occurring twice (equal functions in two files) is
    /// matched twice.
    unmatched: std::collections::BTreeMap<String, Vec<Value>>,
}

/// `baselineState` of a result (SARIF §3.27.24).
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum BaselineState {
    New,
    Unchanged,
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
        let log: Value = serde_json::from_str(&text)
            .map_err(|e| Failure(format!("{at}: not a SARIF log: {e}")))?;
        let runs = log["runs"]
            .as_array()
            .ok_or_else(|| Failure(format!("{at}: not a SARIF log: no `runs` array")))?;
        let mut unmatched: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
        for (n, run) in runs.iter().enumerate() {
            let tool = &run["tool"]["driver"]["name"];
            if tool != "icd" {
                return Err(Failure(format!(
                    "{at}: runs[{n}] is from {tool}, not icd: the baseline must be an earlier `icd scan --format sarif`"
                )));
            }
            for (k, r) in run["results"].as_array().into_iter().flatten().enumerate() {
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
                unmatched
                    .entry(fingerprint.to_owned())
                    .or_default()
                    .push(r.clone());
            }
        }
        Ok(Baseline { unmatched })
    }

    /// Whether a finding with this fingerprint is new; an unchanged one uses up its
    /// match in the baseline.
    pub fn classify(&mut self, fingerprint: &str) -> BaselineState {
        match self.unmatched.get_mut(fingerprint).and_then(Vec::pop) {
            Some(_) => BaselineState::Unchanged,
            None => BaselineState::New,
        }
    }

    /// The baseline's results that matched no finding of this scan, marked absent.
    pub fn absent(&self) -> Vec<Value> {
        self.unmatched
            .values()
            .flatten()
            .map(|r| {
                let mut r = r.clone();
                r["baselineState"] = json!("absent");
                r
            })
            .collect()
    }
}
