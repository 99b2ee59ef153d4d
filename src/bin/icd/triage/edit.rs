//! `icd triage add`: a new or changed entry written into the triage file's text, every
//! other line kept as it was, and the comments of a changed entry kept on its keys.

use toml_edit::{ArrayOfTables, DocumentMut, Item, Table, Value};

use super::{Triage, TriageVerdict, FILE_NAME};
use crate::Failure;

/// The first lines of a new triage file.
const HEADER: &str = "\
# Verdicts on icd's findings, one [[function]] per function fingerprint: see
# `icd triage --help`. Review changes to this file like code: a false-positive or
# accepted-risk entry hides its function from every scan.
";

/// What a written entry's expiry becomes.
#[derive(Clone, Copy)]
pub enum Expiry {
    /// A new entry's: none; a changed entry's: as it was.
    Keep,
    Set(time::Date),
    Remove,
}

/// An entry to write.
pub struct NewEntry {
    pub fingerprint: String,
    pub verdict: TriageVerdict,
    pub reason: String,
    pub expires: Expiry,
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
    set(table, "fingerprint", entry.fingerprint.as_str().into());
    set(table, "verdict", entry.verdict.name().into());
    set(table, "reason", entry.reason.as_str().into());
    match entry.expires {
        Expiry::Set(day) => {
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
            set(table, "expires", date.into());
        }
        Expiry::Remove => {
            table.remove("expires");
        }
        Expiry::Keep => {}
    }
    set(table, "name", entry.name.as_str().into());
    set(table, "file", entry.file.as_str().into());
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

/// Sets `key` to `new`, keeping the comments and spacing around an old value.
fn set(table: &mut Table, key: &str, new: Value) {
    match table.get_mut(key).and_then(Item::as_value_mut) {
        Some(old) => {
            let decor = old.decor().clone();
            *old = new;
            *old.decor_mut() = decor;
        }
        None => {
            table.insert(key, Item::Value(new));
        }
    }
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
            expires: Expiry::Set(super::super::parse_date("2027-06-30").unwrap()),
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
        // Comments on the entry's keys and values stay; the expiry stays unless asked.
        let annotated = second
            .replacen("reason = ", "# why:\nreason = ", 1)
            .replacen(
                "expires = 2027-06-30",
                "expires = 2027-06-30 # until the rewrite",
                1,
            );
        let triage = Triage::parse(path, &annotated).unwrap();
        let mut changed = entry(A, TriageVerdict::AcceptedRisk);
        changed.reason = "accepted in #130".to_owned();
        changed.expires = Expiry::Keep;
        let third = add(&triage, Some(&annotated), &changed, true).unwrap();
        assert_eq!(
            third,
            annotated
                .replacen("\"false-positive\"", "\"accepted-risk\"", 1)
                .replacen("\"checked by the caller\"", "\"accepted in #130\"", 1)
        );
        let triage = Triage::parse(path, &third).unwrap();
        changed.verdict = TriageVerdict::TruePositive;
        changed.expires = Expiry::Remove;
        let fourth = add(&triage, Some(&third), &changed, true).unwrap();
        let triage = Triage::parse(path, &fourth).unwrap();
        assert_eq!(triage.entries.len(), 2);
        let a = triage.entry(A).unwrap();
        assert_eq!((a.verdict, a.expires), (TriageVerdict::TruePositive, None));
        assert!(
            fourth.contains("# reviewed in #123\n[[function]]"),
            "{fourth}"
        );
    }
}
