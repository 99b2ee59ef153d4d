//! `icd triage add`: a new or changed entry written into the triage file's text, every
//! other line (comments included) kept as it was.

use toml_edit::{value, ArrayOfTables, DocumentMut, Item, Table};

use super::{Triage, TriageVerdict, FILE_NAME};
use crate::Failure;

/// The first lines of a new triage file.
const HEADER: &str = "\
# Verdicts on icd's findings, one [[function]] per function fingerprint: see
# `icd triage --help`. Review changes to this file like code: a false-positive or
# accepted-risk entry hides its function from every scan.
";

/// An entry to write.
pub struct NewEntry {
    pub fingerprint: String,
    pub verdict: TriageVerdict,
    pub reason: String,
    pub expires: Option<time::Date>,
    pub name: String,
    /// Relative to the triage file, with `/` between components.
    pub file: String,
}

/// `text` (the file as read, or `None` for a new file) with `entry` added, or with
/// the entry for its fingerprint changed when `replace` is given. The result is read
/// back as [`Triage::parse`] reads it before it is returned.
pub fn add(
    triage: &Triage,
    text: Option<&str>,
    entry: &NewEntry,
    replace: bool,
) -> Result<String, Failure> {
    let at = triage.path.display();
    let mut doc: DocumentMut = match text {
        Some(text) => text
            .parse::<DocumentMut>()
            .map_err(|e| Failure(format!("{at}: {}", e.to_string().trim_end())))?,
        None => DocumentMut::new(),
    };
    let existing = triage
        .entries
        .iter()
        .position(|e| e.fingerprint == entry.fingerprint);
    if let (Some(i), false) = (existing, replace) {
        let old = &triage.entries[i];
        return Err(Failure(format!(
            "{at}:{}: {} is triaged already ({}: {}); give --replace to change the entry",
            old.line,
            entry.fingerprint,
            old.verdict.name(),
            old.reason
        )));
    }
    let functions = doc
        .entry("function")
        .or_insert(Item::ArrayOfTables(ArrayOfTables::new()))
        .as_array_of_tables_mut()
        .ok_or_else(|| {
            Failure(format!(
                "{at}: `function` is not an array of tables ([[function]])"
            ))
        })?;
    let table = match existing {
        Some(i) => functions
            .get_mut(i)
            .expect("the entry the file was read with"),
        None => {
            functions.push(Table::new());
            functions.get_mut(functions.len() - 1).expect("just pushed")
        }
    };
    table.insert("fingerprint", value(&entry.fingerprint));
    table.insert("verdict", value(entry.verdict.name()));
    table.insert("reason", value(&entry.reason));
    match entry.expires {
        Some(day) => {
            let date = toml_edit::Datetime {
                date: Some(toml_edit::Date {
                    year: u16::try_from(day.year()).map_err(|_| {
                        Failure(format!(
                            "--expires: the year {} is out of range",
                            day.year()
                        ))
                    })?,
                    month: u8::from(day.month()),
                    day: day.day(),
                }),
                time: None,
                offset: None,
            };
            table.insert("expires", value(date));
        }
        None => {
            table.remove("expires");
        }
    }
    table.insert("name", value(&entry.name));
    table.insert("file", value(&entry.file));
    // A comment alone in a document is its trailing text: the header goes on by hand.
    let out = match text {
        Some(_) => doc.to_string(),
        None => format!("{HEADER}\n{doc}"),
    };
    // What is written is what every scan will read.
    Triage::parse(&triage.path, &out)
        .map_err(|e| Failure(format!("{FILE_NAME} as it would be written: {}", e.0)))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn entry(fingerprint: &str, verdict: TriageVerdict) -> NewEntry {
        NewEntry {
            fingerprint: fingerprint.to_owned(),
            verdict,
            reason: "checked by the caller".to_owned(),
            expires: Some(super::super::parse_date("2027-06-30").unwrap()),
            name: "f".to_owned(),
            file: "src/a.c".to_owned(),
        }
    }

    const A: &str = "0123456789abcdef0123456789abcdef:1";
    const B: &str = "fedcba9876543210fedcba9876543210:2";

    #[test]
    fn adding_keeps_the_rest_of_the_file_and_replacing_needs_asking() {
        let path = Path::new("t.toml");
        let first = add(
            &Triage::empty(path.to_path_buf()),
            None,
            &entry(A, TriageVerdict::FalsePositive),
            false,
        )
        .unwrap();
        assert!(first.starts_with(HEADER), "{first}");
        assert!(first.contains("expires = 2027-06-30\n"), "{first}");
        // A comment of the team's, then a second entry: the comment stays.
        let commented = first.replacen("\n[[function]]", "\n# reviewed in #123\n[[function]]", 1);
        let triage = Triage::parse(path, &commented).unwrap();
        let second = add(
            &triage,
            Some(&commented),
            &entry(B, TriageVerdict::AcceptedRisk),
            false,
        )
        .unwrap();
        assert!(second.starts_with(&commented), "{second}");
        let triage = Triage::parse(path, &second).unwrap();
        assert_eq!(triage.entries.len(), 2);

        let refused = add(
            &triage,
            Some(&second),
            &entry(A, TriageVerdict::TruePositive),
            false,
        )
        .err()
        .unwrap()
        .0;
        assert!(
            refused.contains("t.toml:7: 0123456789abcdef0123456789abcdef:1 is triaged already (false-positive: checked by the caller); give --replace"),
            "{refused}"
        );
        let mut changed = entry(A, TriageVerdict::TruePositive);
        changed.expires = None;
        let third = add(&triage, Some(&second), &changed, true).unwrap();
        let triage = Triage::parse(path, &third).unwrap();
        assert_eq!(triage.entries.len(), 2);
        let a = triage.entry(A).unwrap();
        assert_eq!((a.verdict, a.expires), (TriageVerdict::TruePositive, None));
        assert!(
            third.contains("# reviewed in #123\n[[function]]"),
            "{third}"
        );
    }
}
