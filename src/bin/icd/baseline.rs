//! `--baseline OLD.sarif`: the findings of an earlier `icd scan --format sarif`, matched
//! by fingerprint against this scan's.
//!
//! The log is read as a stream into the few fields a baseline needs (each result's
//! rule, state, fingerprint, and the rank, message and place an absent result
//! repeats), never whole into memory, and the absent results are made one at a time
//! as the new log is written: a baseline costs a few times its size in memory, not the
//! thirty times a parsed JSON tree costs.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::emit::sarif::{FINGERPRINT_KEY, RULE_ID};
use crate::Failure;

/// The findings of an earlier `icd scan --format sarif` (`--baseline`): how many times
/// each fingerprint occurs, and what an absent result repeats of each.
pub struct Baseline {
    /// Results of the earlier log not yet matched to a function of this scan, by
    /// fingerprint; a fingerprint occurring twice (equal functions in two files) is
    /// matched twice.
    unmatched: BTreeMap<String, Vec<OldResult>>,
}

/// `baselineState` of a result (SARIF §3.27.24).
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum BaselineState {
    New,
    Unchanged,
}

/// The parts of a SARIF log a baseline reads; serde skips the rest as it streams.
#[derive(Deserialize)]
struct Log {
    runs: Option<Vec<Run>>,
}

#[derive(Deserialize)]
struct Run {
    #[serde(default)]
    tool: Tool,
    #[serde(default)]
    results: Vec<OldResult>,
}

#[derive(Deserialize, Default)]
struct Tool {
    #[serde(default)]
    driver: Driver,
}

#[derive(Deserialize, Default)]
struct Driver {
    name: Option<String>,
}

/// One result of the earlier log: what matching reads, and what an absent result
/// repeats (its message, first place and function), no more.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OldResult {
    rule_id: Option<String>,
    baseline_state: Option<String>,
    /// `partialFingerprints`' own key ([`FINGERPRINT_KEY`]), the others skipped.
    #[serde(
        default,
        rename = "partialFingerprints",
        deserialize_with = "own_fingerprint"
    )]
    fingerprint: Option<String>,
    level: Option<String>,
    rank: Option<f64>,
    message: Option<Message>,
    #[serde(default, deserialize_with = "first_location")]
    locations: Option<Location>,
}

#[derive(Deserialize)]
struct Message {
    text: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Location {
    physical_location: Option<PhysicalLocation>,
    #[serde(default, deserialize_with = "first_logical")]
    logical_locations: Option<LogicalLocation>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PhysicalLocation {
    artifact_location: Option<ArtifactLocation>,
    region: Option<Region>,
}

#[derive(Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ArtifactLocation {
    #[serde(skip_serializing_if = "Option::is_none")]
    uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uri_base_id: Option<String>,
}

#[derive(Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Region {
    #[serde(skip_serializing_if = "Option::is_none")]
    start_line: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_line: Option<u64>,
}

#[derive(Deserialize)]
struct LogicalLocation {
    name: Option<String>,
}

impl Location {
    /// The location as an absent result repeats it.
    fn to_json(&self) -> Value {
        let mut location = json!({});
        if let Some(physical) = &self.physical_location {
            let mut p = json!({});
            if let Some(a) = &physical.artifact_location {
                p["artifactLocation"] = json!(a);
            }
            if let Some(r) = &physical.region {
                p["region"] = json!(r);
            }
            location["physicalLocation"] = p;
        }
        if let Some(name) = self
            .logical_locations
            .as_ref()
            .and_then(|l| l.name.as_ref())
        {
            location["logicalLocations"] = json!([{ "name": name, "kind": "function" }]);
        }
        location
    }
}

/// The first element of an array, the rest skipped unread into memory.
fn first<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    struct First<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for First<T> {
        type Value = Option<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an array")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let first = seq.next_element::<T>()?;
            while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
            Ok(first)
        }
    }
    d.deserialize_seq(First(std::marker::PhantomData))
}

/// The value under [`FINGERPRINT_KEY`] of a `partialFingerprints` object.
fn own_fingerprint<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct Own;
    impl<'de> serde::de::Visitor<'de> for Own {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object of fingerprints")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut own = None;
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if key == FINGERPRINT_KEY {
                    own = Some(map.next_value::<String>()?);
                } else {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
            Ok(own)
        }
    }
    d.deserialize_map(Own)
}

fn first_location<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Location>, D::Error> {
    first(d)
}

fn first_logical<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<LogicalLocation>, D::Error> {
    first(d)
}

impl Baseline {
    /// Largest baseline log read.
    const LIMIT: u64 = 512 << 20;

    /// Reads an earlier log of `icd scan --format sarif`; anything else is an error
    /// naming the file, never an empty baseline (which would pass every finding as new
    /// but could also hide a mistake in the workflow).
    pub fn read(path: &Path) -> Result<Baseline, Failure> {
        let at = path.display();
        let (file, _) =
            insecure_code_detector::files::open_untrusted(path, Self::LIMIT, "baseline SARIF log")?;
        // The limit holds for a file that grows while read, too.
        let reader = std::io::BufReader::new(file.take(Self::LIMIT));
        let log: Log = serde_json::from_reader(reader)
            .map_err(|e| Failure(format!("{at}: not a SARIF log: {e}")))?;
        let runs = log
            .runs
            .ok_or_else(|| Failure(format!("{at}: not a SARIF log: no `runs` array")))?;
        let mut unmatched: BTreeMap<String, Vec<OldResult>> = Default::default();
        for (n, run) in runs.into_iter().enumerate() {
            let tool = run.tool.driver.name.as_deref();
            if tool != Some("icd") {
                return Err(Failure(format!(
                    "{at}: runs[{n}] is from {}, not icd: the baseline must be an earlier `icd scan --format sarif`",
                    tool.map_or("an unnamed tool".to_owned(), |t| format!("{t:?}"))
                )));
            }
            for (k, mut r) in run.results.into_iter().enumerate() {
                // Results gone before the earlier scan are not part of its findings.
                if r.baseline_state.as_deref() == Some("absent")
                    || r.rule_id.as_deref() != Some(RULE_ID)
                {
                    continue;
                }
                let Some(fingerprint) = r.fingerprint.take() else {
                    return Err(Failure(format!(
                        "{at}: runs[{n}].results[{k}] has no partialFingerprints.{FINGERPRINT_KEY} (made by an older icd? scan the base again)"
                    )));
                };
                unmatched.entry(fingerprint).or_default().push(r);
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

    /// The baseline's results that matched no finding of this scan, marked absent, one
    /// at a time: each with its rule, level, rank, message, first place and
    /// fingerprints (not its properties, related locations or suppressions).
    pub fn absent(&self) -> impl Iterator<Item = Value> + '_ {
        self.unmatched
            .iter()
            .flat_map(|(fingerprint, results)| results.iter().map(move |r| (fingerprint, r)))
            .map(|(fingerprint, r)| {
                let mut result = json!({
                    "ruleId": RULE_ID,
                    "ruleIndex": 0,
                    "message": { "text": r.message.as_ref().and_then(|m| m.text.as_deref()).unwrap_or("") },
                    "partialFingerprints": {
                        FINGERPRINT_KEY: fingerprint,
                        "primaryLocationLineHash": fingerprint,
                    },
                    "baselineState": "absent",
                });
                if let Some(level) = &r.level {
                    result["level"] = json!(level);
                }
                if let Some(rank) = r.rank {
                    result["rank"] = json!(rank);
                }
                if let Some(location) = &r.locations {
                    result["locations"] = json!([location.to_json()]);
                }
                result
            })
    }
}
