//! `.icd-triage.toml`: a team's verdicts on functions, kept beside the code instead of
//! in it. One `[[function]]` entry per function fingerprint (the scan's
//! `fingerprint`, which survives moves and edits elsewhere in the file) holds a
//! verdict, the reason for it and an optional expiry date:
//!
//! ```toml
//! [[function]]
//! fingerprint = "9f2c4e0b7d1a53e8c6b4a2f01d3e5c7a:1"
//! verdict = "false-positive"
//! reason = "len is checked by every caller (parse_packet)"
//! expires = 2027-06-30
//! name = "copy_payload"
//! file = "src/net/packet.c"
//! ```
//!
//! In a scan, a `false-positive` or `accepted-risk` entry suppresses its function (an
//! external suppression in SARIF) and a `true-positive` keeps it a finding, marked
//! confirmed, whatever the threshold or baseline say. An entry stops applying on its
//! expiry date. `name` and `file` say where the function was when it was triaged, for
//! the people who read the file; matching is by fingerprint alone.
//!
//! The file lives in the scanned tree, like `.icd.toml`: a pull request's author can
//! add entries, which the diff shows and each scan counts; a gate can read the base
//! branch's copy with `--triage FILE`.

pub mod edit;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use insecure_code_detector::files::path_from_text;

use crate::Failure;

/// The file's name.
pub const FILE_NAME: &str = ".icd-triage.toml";

/// Largest triage file read: about 30,000 entries.
const LIMIT: u64 = 16 << 20;

/// A reviewer's verdict on a function.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TriageVerdict {
    /// The function is insecure: it stays a finding, marked confirmed.
    TruePositive,
    /// The model is wrong: the function is suppressed.
    FalsePositive,
    /// Insecure, but the risk is accepted (for now): the function is suppressed.
    AcceptedRisk,
}

impl TriageVerdict {
    /// Every verdict, in the order help and errors list them.
    pub const ALL: [TriageVerdict; 3] = [
        TriageVerdict::TruePositive,
        TriageVerdict::FalsePositive,
        TriageVerdict::AcceptedRisk,
    ];

    /// The verdict's name in the file and in every report.
    pub fn name(self) -> &'static str {
        match self {
            TriageVerdict::TruePositive => "true-positive",
            TriageVerdict::FalsePositive => "false-positive",
            TriageVerdict::AcceptedRisk => "accepted-risk",
        }
    }

    /// Whether an entry with this verdict suppresses its function in scans.
    pub fn suppresses(self) -> bool {
        self != TriageVerdict::TruePositive
    }

    /// The CodeXGLUE label (`target`) of a function with this verdict, if it has one.
    pub fn label(self) -> Option<u8> {
        match self {
            TriageVerdict::TruePositive => Some(1),
            TriageVerdict::FalsePositive => Some(0),
            TriageVerdict::AcceptedRisk => None,
        }
    }
}

impl std::str::FromStr for TriageVerdict {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        TriageVerdict::ALL
            .into_iter()
            .find(|v| v.name() == name)
            .ok_or_else(|| format!("{name:?} is not a verdict: {}", verdict_names()))
    }
}

/// "true-positive, false-positive or accepted-risk".
fn verdict_names() -> String {
    let names = TriageVerdict::ALL.map(TriageVerdict::name);
    format!("expected {}, {} or {}", names[0], names[1], names[2])
}

/// One entry of the file.
#[derive(Clone, Debug)]
pub struct Entry {
    pub fingerprint: String,
    pub verdict: TriageVerdict,
    pub reason: String,
    /// The first day the entry no longer applies.
    pub expires: Option<time::Date>,
    /// The function's name when it was triaged.
    pub name: Option<String>,
    /// The function's file when it was triaged, relative to the triage file.
    pub file: Option<String>,
    /// The entry's line in the triage file (its `fingerprint` key).
    pub line: usize,
}

impl Entry {
    /// Whether the entry has expired on `today`.
    pub fn expired(&self, today: time::Date) -> bool {
        self.expires.is_some_and(|day| today >= day)
    }
}

/// A triage file, read and checked whole.
pub struct Triage {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its entries, in file order.
    pub entries: Vec<Entry>,
    by_fingerprint: HashMap<String, usize>,
    /// Where the entries' `file`s are relative to, when not the file's directory: the
    /// current directory for a copy named with `--triage` (a base branch's copy kept
    /// outside the tree).
    files_root: Option<PathBuf>,
}

/// The fields of an entry as written; each checked by [`Triage::parse`], which names
/// the entry in every error.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryFields {
    fingerprint: Option<toml::Spanned<String>>,
    verdict: Option<String>,
    reason: Option<String>,
    expires: Option<toml::Value>,
    name: Option<String>,
    file: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFields {
    #[serde(default)]
    function: Vec<EntryFields>,
}

/// Whether `text` is a function fingerprint: 32 hex digits, `:` and the function's
/// occurrence (from 1) among equal functions of its file.
pub fn is_fingerprint(text: &str) -> bool {
    text.split_once(':').is_some_and(|(digest, n)| {
        digest.len() == 32
            && digest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            && !n.starts_with('0')
            && !n.is_empty()
            && n.len() <= 9
            && n.bytes().all(|b| b.is_ascii_digit())
    })
}

/// Whether a reason says nothing: no letter or digit in it (blank, punctuation alone, or
/// invisible characters such as U+200B).
pub fn is_blank(reason: &str) -> bool {
    !reason.chars().any(char::is_alphanumeric)
}

/// A TOML date (`2027-06-30`, no time of day) as a calendar date.
pub fn date_of(value: &toml::value::Datetime) -> Result<time::Date, String> {
    let (Some(date), None, None) = (value.date, value.time, value.offset) else {
        return Err(format!("{value} is not a date like 2027-06-30"));
    };
    let month = time::Month::try_from(date.month)
        .map_err(|_| format!("{value} is not a date: no month {}", date.month))?;
    time::Date::from_calendar_date(i32::from(date.year), month, date.day)
        .map_err(|_| format!("{value} is not a date: {month} has no day {}", date.day))
}

/// A date given on the command line, `YYYY-MM-DD`.
pub fn parse_date(text: &str) -> Result<time::Date, String> {
    let value: toml::value::Datetime = text
        .parse()
        .map_err(|_| format!("{text:?} is not a date like 2027-06-30"))?;
    date_of(&value)
}

/// A triage file's text: a regular file, UTF-8, of at most 16 MiB; with `found` (the
/// flag that names a file instead), only inside its directory (`tree_files`).
pub fn read_text(path: &Path, found: Option<&str>) -> Result<String, Failure> {
    if let Some(flag) = found {
        let dir = std::path::absolute(path)
            .unwrap_or_else(|_| path.to_path_buf())
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        crate::tree_files::confine(path, &dir, "triage file", flag)?;
    }
    Ok(insecure_code_detector::files::read_untrusted_text(
        path, LIMIT, FILE_NAME,
    )?)
}

/// Today's date, in UTC.
pub fn today() -> time::Date {
    time::OffsetDateTime::now_utc().date()
}

impl Triage {
    /// An empty triage file that will be written at `path`.
    pub fn empty(path: PathBuf) -> Triage {
        Triage {
            path,
            entries: Vec::new(),
            by_fingerprint: HashMap::new(),
            files_root: None,
        }
    }

    /// Reads and checks a triage file: every error names the file and the entry.
    /// `found`: the file was found in the tree rather than named on the command line
    /// (with the flag that names one), so it is read only inside its directory.
    pub fn read(path: &Path, found: Option<&str>) -> Result<Triage, Failure> {
        Triage::parse(path, &read_text(path, found)?)
    }

    /// Checks the text of a triage file read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Triage, Failure> {
        let at = path.display();
        let fields: FileFields = crate::tree_files::parse_toml(path, text)?;
        let newlines: Vec<usize> = text.match_indices('\n').map(|(at, _)| at).collect();
        let line_of = |byte: usize| 1 + newlines.partition_point(|&n| n < byte);
        let mut triage = Triage::empty(path.to_path_buf());
        for (n, e) in fields.function.into_iter().enumerate() {
            let entry = format!("{at}: function[{n}]");
            let Some(fingerprint) = e.fingerprint else {
                return Err(Failure(format!(
                    "{entry}: no `fingerprint` (the function's, from icd scan --format jsonl or sarif)"
                )));
            };
            let line = line_of(fingerprint.span().start);
            let fingerprint = fingerprint.into_inner();
            let entry = format!("{at}:{line}: function[{n}]");
            if !is_fingerprint(&fingerprint) {
                return Err(Failure(format!(
                    "{entry}: fingerprint {fingerprint:?} is not a function fingerprint (32 hex digits, `:`, a count from 1)"
                )));
            }
            let entry = format!("{entry} ({fingerprint})");
            let verdict = match e.verdict {
                None => {
                    return Err(Failure(format!(
                        "{entry}: no `verdict`: {}",
                        verdict_names()
                    )))
                }
                Some(name) => name
                    .parse::<TriageVerdict>()
                    .map_err(|e| Failure(format!("{entry}: verdict {e}")))?,
            };
            let reason = e.reason.unwrap_or_default();
            if is_blank(&reason) {
                return Err(Failure(format!(
                    "{entry}: no `reason`: say why the verdict holds, for whoever reads it next"
                )));
            }
            let expires = match e.expires {
                None => None,
                Some(toml::Value::Datetime(d)) => Some(
                    date_of(&d).map_err(|m| Failure(format!("{entry}: expires: {m}")))?,
                ),
                Some(toml::Value::String(_)) => {
                    return Err(Failure(format!(
                        "{entry}: expires is a string: write the date unquoted, as expires = 2027-06-30"
                    )))
                }
                Some(other) => {
                    return Err(Failure(format!(
                        "{entry}: expires: expected a date like 2027-06-30, found {}",
                        other.type_str()
                    )))
                }
            };
            if expires.is_some() && verdict == TriageVerdict::TruePositive {
                return Err(Failure(format!(
                    "{entry}: a true-positive entry does not expire (the finding would lapse): remove `expires`"
                )));
            }
            if let Some(&first) = triage.by_fingerprint.get(&fingerprint) {
                return Err(Failure(format!(
                    "{entry}: the function is triaged twice: function[{first}] (line {}) has it too",
                    triage.entries[first].line
                )));
            }
            triage.by_fingerprint.insert(fingerprint.clone(), n);
            triage.entries.push(Entry {
                fingerprint,
                verdict,
                reason,
                expires,
                name: e.name,
                file: e.file,
                line,
            });
        }
        Ok(triage)
    }

    /// The triage file for a scan of `paths`: `explicit` when given, none with `none`,
    /// else the nearest `.icd-triage.toml` in the first path's directory or above it.
    pub fn find(
        paths: &[PathBuf],
        explicit: Option<&Path>,
        none: bool,
    ) -> Result<Option<Triage>, Failure> {
        if none {
            return Ok(None);
        }
        match explicit {
            Some(path) => {
                let mut triage = Triage::read(path, None)?;
                triage.files_root = std::env::current_dir().ok();
                Ok(Some(triage))
            }
            None => paths
                .first()
                .and_then(|first| nearest(first))
                .map(|p| Triage::read(&p, Some("--triage FILE")))
                .transpose(),
        }
    }

    /// The entry for a function's fingerprint, expired or not.
    pub fn entry(&self, fingerprint: &str) -> Option<&Entry> {
        self.by_fingerprint
            .get(fingerprint)
            .map(|&i| &self.entries[i])
    }

    /// Whether `file` (a path as the scan found it) is the file `entry` names (relative
    /// to the triage file's directory, or for `--triage FILE` to the current
    /// directory), or the entry names none.
    pub fn names_file(&self, entry: &Entry, file: &str) -> bool {
        let Some(named) = &entry.file else {
            return true;
        };
        let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let root = self.files_root.clone().unwrap_or_else(|| self.root());
        canonical(&root.join(path_from_text(named))) == canonical(&path_from_text(file))
    }

    /// The directory its entries' `file`s are relative to, and `triage check` and
    /// `add` search.
    pub fn root(&self) -> PathBuf {
        let absolute = std::path::absolute(&self.path).unwrap_or_else(|_| self.path.clone());
        absolute.parent().map(Path::to_path_buf).unwrap_or_default()
    }
}

/// The nearest `.icd-triage.toml` (of any file type) in `start`'s directory (itself, if
/// a directory) or above it; relative to the current directory when it is under it, as reports name it.
pub fn nearest(start: &Path) -> Option<PathBuf> {
    let start = std::path::absolute(start).unwrap_or_else(|_| start.to_path_buf());
    let dir = if start.is_dir() {
        start
    } else {
        start.parent().map(Path::to_path_buf).unwrap_or(start)
    };
    let found = dir
        .ancestors()
        .map(|d| d.join(FILE_NAME))
        // The first of that name, whatever it is: one that cannot be read is an
        // error, not passed over for another further up.
        .find(|candidate| candidate.symlink_metadata().is_ok())?;
    let cwd = std::env::current_dir().ok();
    Some(
        match cwd.as_deref().and_then(|c| found.strip_prefix(c).ok()) {
            Some(relative) => relative.to_path_buf(),
            None => found,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str = "0123456789abcdef0123456789abcdef:1";

    fn parse(text: &str) -> Result<Triage, String> {
        Triage::parse(Path::new("t.toml"), text).map_err(|f| f.0)
    }

    #[test]
    fn fingerprints_are_checked() {
        assert!(is_fingerprint(FP));
        assert!(is_fingerprint("0123456789abcdef0123456789abcdef:12"));
        for bad in [
            "0123456789abcdef0123456789abcdef",
            "0123456789abcdef0123456789abcdef:0",
            "0123456789abcdef0123456789abcdef:01",
            "0123456789ABCDEF0123456789abcdef:1",
            "0123456789abcdef0123456789abcde:1",
            "0123456789abcdef0123456789abcdef:1x",
            "0123456789abcdef0123456789abcdef:",
        ] {
            assert!(!is_fingerprint(bad), "{bad}");
        }
    }

    #[test]
    fn dates_are_calendar_dates() {
        assert_eq!(
            parse_date("2028-02-29").unwrap(),
            time::Date::from_calendar_date(2028, time::Month::February, 29).unwrap()
        );
        for bad in [
            "2027-02-29",
            "2027-13-01",
            "tomorrow",
            "2027-06-30T12:00:00",
            "",
        ] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_entry_expires_on_its_date() {
        let triage = parse(&format!(
            "[[function]]\nfingerprint = \"{FP}\"\nverdict = \"accepted-risk\"\nreason = \"r\"\nexpires = 2027-01-01\n"
        ))
        .unwrap();
        let entry = triage.entry(FP).unwrap();
        assert_eq!(entry.line, 2);
        assert!(!entry.expired(parse_date("2026-12-31").unwrap()));
        assert!(entry.expired(parse_date("2027-01-01").unwrap()));
    }

    #[test]
    fn bad_entries_are_errors_naming_the_entry() {
        let entry = |body: &str| format!("[[function]]\nfingerprint = \"{FP}\"\n{body}");
        let cases = [
            (entry("verdict = \"false-positive\"\n"), "t.toml:2: function[0] (0123456789abcdef0123456789abcdef:1): no `reason`"),
            (entry("verdict = \"false-positive\"\nreason = \"  \"\n"), "no `reason`"),
            (entry("verdict = \"false-positive\"\nreason = \"\u{200b}\u{200b}\"\n"), "no `reason`"),
            (entry("reason = \"r\"\n"), "no `verdict`: expected true-positive, false-positive or accepted-risk"),
            (entry("verdict = \"fine\"\nreason = \"r\"\n"), "verdict \"fine\" is not a verdict"),
            (entry("verdict = \"false-positive\"\nreason = \"r\"\nexpires = 2027-02-30\n"), "t.toml:5:11: "),
            (entry("verdict = \"false-positive\"\nreason = \"r\"\nexpires = \"2027-06-30\"\n"), "expires is a string: write the date unquoted"),
            (entry("verdict = \"false-positive\"\nreason = \"r\"\nexpires = 3\n"), "expires: expected a date like 2027-06-30, found integer"),
            (entry("verdict = \"true-positive\"\nreason = \"r\"\nexpires = 2027-06-30\n"), "a true-positive entry does not expire"),
            (entry("verdict = \"false-positive\"\nreason = \"r\"\nexpires = 2027-06-30T10:00:00Z\n"), "is not a date like 2027-06-30"),
            (entry("verdict = \"false-positive\"\nreason = \"r\"\nowner = \"me\"\n"), "unknown field `owner`"),
            ("[[function]]\nverdict = \"false-positive\"\n".to_owned(), "t.toml: function[0]: no `fingerprint`"),
            ("[[function]]\nfingerprint = \"abc\"\n".to_owned(), "t.toml:2: function[0]: fingerprint \"abc\" is not a function fingerprint"),
            (
                format!("{}{}", entry("verdict = \"true-positive\"\nreason = \"r\"\n"), entry("verdict = \"false-positive\"\nreason = \"r\"\n")),
                "t.toml:6: function[1] (0123456789abcdef0123456789abcdef:1): the function is triaged twice: function[0] (line 2) has it too",
            ),
        ];
        for (text, want) in cases {
            let error = parse(&text)
                .err()
                .unwrap_or_else(|| panic!("accepted:\n{text}"));
            assert!(error.contains(want), "{error}\nwanted: {want}");
        }
    }
}
