//! `icd triage`: the verdicts of `.icd-triage.toml` (see `triage`): `add` records one,
//! `list` shows them, `check` finds those that no longer apply, `export` turns them
//! into CodeXGLUE labels.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use insecure_code_detector::files::{path_from_text, path_text};
use insecure_code_detector::report::{printable, printable_path};
use insecure_code_detector::scan::{FunctionSpan, Language, TreeOptions};
use serde_json::json;

use crate::flags::{TriageAction, TriageAddArgs, TriageArgs, TriageListFormat};
use crate::output::write_output;
use crate::sources::{find_and_warn, Found, SourceArgs};
use crate::triage::edit::{self, Expiry, NewEntry};
use crate::triage::{self, is_fingerprint, Entry, Triage, TriageVerdict, FILE_NAME};
use crate::Failure;

pub fn run(args: &TriageArgs) -> Result<ExitCode, Failure> {
    let done = |result: Result<(), Failure>| result.map(|()| ExitCode::SUCCESS);
    match &args.action {
        TriageAction::Add(add_args) => done(add(args.file.as_deref(), add_args)),
        TriageAction::List { format } => done(list(&open(args.file.as_deref())?, *format)),
        TriageAction::Check => check(&open(args.file.as_deref())?),
        TriageAction::Export { paths, output } => {
            done(export(&open(args.file.as_deref())?, paths, output))
        }
    }
}

/// `--file`, else the nearest triage file at or above the current directory.
fn located(file: Option<&Path>) -> Option<PathBuf> {
    file.map(Path::to_path_buf)
        .or_else(|| triage::nearest(Path::new(".")))
}

/// The flag that names a triage file, for the error refusing one found in the tree
/// that leads outside it.
const FILE_FLAG: &str = "--file FILE";

fn open(file: Option<&Path>) -> Result<Triage, Failure> {
    match located(file) {
        Some(path) => Triage::read(&path, file.is_none().then_some(FILE_FLAG)),
        None => Err(Failure(format!(
            "no {FILE_NAME} in the current directory or above it (`icd triage add` starts one; --file names one)"
        ))),
    }
}

/// Every function definition under `paths`, as `scan` finds them (no settings file:
/// a function its `exclude` leaves out still exists).
fn functions_under(paths: &[PathBuf]) -> Result<Found, Failure> {
    let args = SourceArgs {
        paths: paths.to_vec(),
        max_file_size: TreeOptions::DEFAULT_MAX_FILE_SIZE,
        dot_ignore: false,
        config: None,
        no_config: true,
    };
    find_and_warn(&args, None)
}

/// `file` relative to `root`, with `/` between its components; an error where it is
/// not under `root`.
fn relative_to(file: &str, root: &Path) -> Result<String, Failure> {
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let (file_at, root_at) = (canonical(&path_from_text(file)), canonical(root));
    let relative = file_at.strip_prefix(&root_at).map_err(|_| {
        Failure(format!(
            "{} is not under {}, the triage file's directory, where scans and `icd triage check` look for it",
            printable(file),
            printable_path(root)
        ))
    })?;
    let parts: Vec<String> = relative
        .components()
        .map(|c| path_text(Path::new(c.as_os_str())).into_owned())
        .collect();
    Ok(parts.join("/"))
}

/// The function `add` names: by fingerprint under `root`, or by a line of a file.
fn named_function(function: &str, root: &Path) -> Result<(String, FunctionSpan), Failure> {
    if is_fingerprint(function) {
        let found = functions_under(&[root.to_path_buf()])?;
        return found
            .functions
            .into_iter()
            .find(|(_, f)| f.fingerprint == function)
            .ok_or_else(|| {
                Failure(format!(
                    "no function under {} has the fingerprint {function} (icd scan --format jsonl gives each function's)",
                    printable_path(root)
                ))
            });
    }
    let location = function
        .rsplit_once(':')
        .and_then(|(file, line)| Some((file, line.parse::<usize>().ok()?)));
    let Some((file, line)) = location else {
        return Err(Failure(format!(
            "{:?} is neither a function fingerprint (32 hex digits, `:`, a count) nor FILE:LINE",
            printable(function)
        )));
    };
    if line == 0 {
        return Err(Failure(format!(
            "{}: line 0: lines count from 1",
            printable(file)
        )));
    }
    // A file, not a directory: which file's function would be ambiguous.
    if !Path::new(file).is_file() {
        return Err(Failure(format!(
            "{}: not a source file (FILE:LINE names a line of a file)",
            printable(file)
        )));
    }
    let found = functions_under(&[PathBuf::from(file)])?;
    // The innermost definition holding the line.
    found
        .functions
        .into_iter()
        .filter(|(_, f)| (f.start_line..=f.end_line).contains(&line))
        .min_by_key(|(_, f)| f.end_line - f.start_line)
        .ok_or_else(|| {
            Failure(format!(
                "{} has no function definition on line {line} (icd functions {} lists them)",
                printable(file),
                printable(file)
            ))
        })
}

fn add(file: Option<&Path>, args: &TriageAddArgs) -> Result<(), Failure> {
    let path = located(file).unwrap_or_else(|| PathBuf::from(FILE_NAME));
    if Language::from_path(&path).is_some() {
        return Err(Failure(format!(
            "{} is a C/C++ source file, not a triage file (TOML, named {FILE_NAME})",
            printable_path(&path)
        )));
    }
    let text = match path.symlink_metadata() {
        Ok(_) => Some(triage::read_text(
            &path,
            file.is_none().then_some(FILE_FLAG),
        )?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Failure(format!("{}: {e}", path.display()))),
    };
    let triage = match &text {
        Some(text) => Triage::parse(&path, text)?,
        None => Triage::empty(path.clone()),
    };
    let root = triage.root();
    let (file, f) = named_function(&args.function, &root)?;
    let expires = match (args.expires, args.no_expires) {
        (Some(day), _) => Expiry::Set(day),
        (None, true) => Expiry::Remove,
        (None, false) => Expiry::Keep,
    };
    let entry = NewEntry {
        fingerprint: f.fingerprint.clone(),
        verdict: args.verdict,
        reason: args.reason.clone(),
        expires,
        name: f.name.clone(),
        file: relative_to(&file, &root)?,
    };
    if let Some(day) = args.expires.filter(|&day| day <= triage::today()) {
        return Err(Failure(format!(
            "--expires {day} is not after today: the entry would never apply"
        )));
    }
    if args.expires.is_some() && args.verdict == TriageVerdict::TruePositive {
        return Err(Failure(
            "--expires with --verdict true-positive: a confirmed finding does not lapse".to_owned(),
        ));
    }
    if triage::is_blank(&entry.reason) {
        return Err(Failure(
            "--reason has no letter or digit: say why the verdict holds, for whoever reads it next".to_owned(),
        ));
    }
    let out = edit::add(&triage, text.as_deref(), &entry, args.replace)?;
    write_output(&path, &[Path::new(&file)], out.as_bytes())?;
    if text.is_none() {
        let at = std::path::absolute(&path).unwrap_or_else(|_| path.clone());
        eprintln!(
            "icd: started the triage file {}: scans read it for paths at or below its directory",
            printable_path(&at)
        );
    }
    eprintln!(
        "icd: {}:{}-{} `{}` ({}) is {} in {}",
        printable(&entry.file),
        f.start_line,
        f.end_line,
        printable(&f.name),
        f.fingerprint,
        args.verdict.name(),
        printable_path(&path)
    );
    Ok(())
}

/// `file: name`, or what of it the entry has.
fn where_triaged(e: &Entry) -> String {
    match (&e.file, &e.name) {
        (Some(file), Some(name)) => format!("{}: {}", printable(file), printable(name)),
        (Some(file), None) => printable(file).into_owned(),
        (None, Some(name)) => printable(name).into_owned(),
        (None, None) => "-".to_owned(),
    }
}

fn list(triage: &Triage, format: TriageListFormat) -> Result<(), Failure> {
    let today = triage::today();
    let out = match format {
        TriageListFormat::Json => {
            let entries: Vec<_> = triage
                .entries
                .iter()
                .map(|e| {
                    json!({
                        "fingerprint": e.fingerprint,
                        "verdict": e.verdict.name(),
                        "reason": e.reason,
                        "expires": e.expires.map(|d| d.to_string()),
                        "expired": e.expired(today),
                        "name": e.name,
                        "file": e.file,
                        "line": e.line,
                    })
                })
                .collect();
            serde_json::to_string_pretty(&entries)? + "\n"
        }
        TriageListFormat::Table => {
            let mut out = format!(
                "{:<15} {:<20} {:<40} {:<35} {}\n",
                "VERDICT", "EXPIRES", "FUNCTION", "FINGERPRINT", "REASON"
            );
            for e in &triage.entries {
                let expires = match e.expires {
                    Some(d) if e.expired(today) => format!("{d} (expired)"),
                    Some(d) => d.to_string(),
                    None => "-".to_owned(),
                };
                out += &format!(
                    "{:<15} {expires:<20} {:<40} {:<35} {}\n",
                    e.verdict.name(),
                    where_triaged(e),
                    e.fingerprint,
                    printable(&e.reason)
                );
            }
            out + &format!(
                "{} entries in {}\n",
                triage.entries.len(),
                printable_path(&triage.path)
            )
        }
    };
    std::io::stdout().write_all(out.as_bytes())?;
    Ok(())
}

fn check(triage: &Triage) -> Result<ExitCode, Failure> {
    let today = triage::today();
    let root = triage.root();
    let present: std::collections::HashSet<String> = functions_under(&[root.clone()])?
        .functions
        .into_iter()
        .map(|(_, f)| f.fingerprint)
        .collect();
    let at = triage.path.display().to_string();
    let mut out = String::new();
    let (mut expired, mut stale) = (0, 0);
    for e in &triage.entries {
        let entry = format!(
            "{}:{}: {} ({})",
            printable(&at),
            e.line,
            e.fingerprint,
            where_triaged(e)
        );
        if !present.contains(&e.fingerprint) {
            stale += 1;
            out += &format!(
                "{entry}: no function under {} has this fingerprint: it changed or was removed since it was triaged\n",
                printable_path(&root)
            );
        }
        if e.expired(today) {
            expired += 1;
            let day = e.expires.expect("an expired entry has a date");
            out += &format!("{entry}: expired on {day}: it no longer applies\n");
        }
    }
    out += &format!(
        "{} entries: {stale} without their function, {expired} expired\n",
        triage.entries.len()
    );
    std::io::stdout().write_all(out.as_bytes())?;
    Ok(match stale + expired {
        0 => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    })
}

fn export(triage: &Triage, paths: &[PathBuf], output: &Path) -> Result<(), Failure> {
    let found = functions_under(paths)?;
    let mut out = String::new();
    let mut seen = std::collections::HashSet::new();
    let (mut positives, mut negatives, mut accepted, mut expired) = (0, 0, 0, 0);
    let today = triage::today();
    for (file, f) in &found.functions {
        let Some(entry) = triage.entry(&f.fingerprint) else {
            continue;
        };
        // Equal functions (in two files) are one function, exported once.
        if !seen.insert(f.fingerprint.as_str()) {
            continue;
        }
        let Some(target) = entry.verdict.label() else {
            accepted += 1;
            continue;
        };
        match target {
            1 => positives += 1,
            _ => negatives += 1,
        }
        // Expiry ends a suppression, not the judgement of the code: still a label.
        expired += usize::from(entry.expired(today));
        out += &json!({
            "idx": positives + negatives - 1,
            "func": f.code,
            "target": target,
            "fingerprint": f.fingerprint,
            "file": file,
            "function": f.name,
        })
        .to_string();
        out.push('\n');
    }
    let rows = positives + negatives;
    let paths_named = paths
        .iter()
        .map(|p| printable_path(p).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    if rows == 0 {
        return Err(Failure(format!(
            "no function under {paths_named} has a true-positive or false-positive entry in {}: nothing to export",
            printable_path(&triage.path)
        )));
    }
    let mut inputs: Vec<&Path> = found.inputs.iter().map(PathBuf::as_path).collect();
    inputs.push(&triage.path);
    write_output(output, &inputs, out.as_bytes())?;
    let missing = triage.entries.len() - seen.len();
    eprintln!(
        "icd: {rows} labelled functions ({positives} true-positive, {negatives} false-positive, {expired} of them past their expiry) written to {}; {accepted} accepted-risk left out, {missing} entries not found under {paths_named}",
        printable_path(output)
    );
    Ok(())
}
