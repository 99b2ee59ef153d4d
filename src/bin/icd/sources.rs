//! Which files a scan reads (the library's `scan::find_functions_under`, whose docs
//! say what a tree cannot hide), the lines changed since a git revision, and how what
//! could not be covered is reported: each gap on stderr, in the table's footer and as a
//! SARIF notification.

use std::path::{Path, PathBuf};

use clap::Args;
pub use insecure_code_detector::scan::{Found, Gap, GapKind};
use insecure_code_detector::scan::{FunctionSpan, LineRange, TreeOptions};

use insecure_code_detector::files::path_from_bytes;
use insecure_code_detector::report::printable;

use crate::settings::Excludes;
use crate::Failure;

/// Where to look for C and C++ functions.
#[derive(Args)]
pub struct SourceArgs {
    /// Files and directories to scan.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Largest source file read, in bytes; a larger one is skipped and reported. The
    /// largest C files in common use (SQLite's amalgamation) are about 9 MiB.
    #[arg(long, default_value_t = TreeOptions::DEFAULT_MAX_FILE_SIZE, value_name = "BYTES")]
    pub max_file_size: u64,
    /// Also honour `.ignore` files (as ripgrep does) for untracked files.
    #[arg(long)]
    pub dot_ignore: bool,
    /// Settings from this file instead of the nearest `.icd.toml` at or above the
    /// first PATH.
    #[arg(long, value_name = "FILE", conflicts_with = "no_config")]
    pub config: Option<PathBuf>,
    /// Read no `.icd.toml`.
    #[arg(long)]
    pub no_config: bool,
}

/// Every function definition under `args.paths` (`scan::find_functions_under`), each
/// gap also warned about on stderr.
pub fn find_and_warn(
    args: &SourceArgs,
    excludes: Option<&Excludes>,
) -> Result<Found, Failure> {
    let options = TreeOptions {
        max_file_size: args.max_file_size,
        dot_ignore: args.dot_ignore,
    };
    let exclude = excludes.map(|e| e as &dyn insecure_code_detector::scan::Exclude);
    let found = insecure_code_detector::scan::find_functions_under(&args.paths, &options, exclude)?;
    let mut excluded = 0;
    for gap in &found.gaps {
        match gap.kind {
            GapKind::Excluded(_) => excluded += 1,
            _ => eprintln!("icd: warning: {}", gap.message()),
        }
    }
    if let Some(excludes) = excludes.filter(|_| excluded > 0) {
        eprintln!(
            "icd: note: {excluded} files not scanned: excluded by {}",
            printable(&excludes.source.display().to_string())
        );
    }
    Ok(found)
}

/// The lines changed between a git revision and the work tree (`--changed-since`): per
/// file (canonical path), the changed line ranges of its current text, or `None` for
/// a file that is new whole (added since the revision, or untracked and not ignored).
pub struct ChangedLines {
    files: std::collections::HashMap<PathBuf, Option<Vec<LineRange>>>,
}

impl ChangedLines {
    /// Asks git, in the repository holding the current directory. Diff drivers, text
    /// conversions and fsmonitor commands that the repository's configuration may
    /// name are turned off: a tree from elsewhere must not run code here.
    pub fn since(rev: &str) -> Result<ChangedLines, Failure> {
        if rev.starts_with('-') || rev.is_empty() {
            return Err(Failure(format!(
                "--changed-since {rev:?}: expected a git revision"
            )));
        }
        let top = git(&["rev-parse", "--show-toplevel"], rev)?;
        let top = PathBuf::from(String::from_utf8_lossy(&top).trim_end_matches('\n'));
        let mut files = std::collections::HashMap::new();
        let diff = git(
            &[
                "-C",
                &top.display().to_string(),
                "diff",
                "--no-ext-diff",
                "--no-textconv",
                "--no-color",
                "--unified=0",
                rev,
                "--",
            ],
            rev,
        )?;
        let mut current: Option<PathBuf> = None;
        for line in diff.split(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(line);
            if let Some(path) = line.strip_prefix("+++ ") {
                current = match path {
                    "/dev/null" => None,
                    path => {
                        let path = unquote(path);
                        let path = path.strip_prefix("b/").unwrap_or(&path);
                        Some(canonical(&top.join(path)))
                    }
                };
                if let Some(file) = &current {
                    files.insert(file.clone(), Some(Vec::new()));
                }
            } else if let (Some(hunk), Some(file)) = (line.strip_prefix("@@ "), &current) {
                let Some(range) = new_side(hunk) else {
                    return Err(Failure(format!(
                        "--changed-since {rev}: unexpected hunk header from git diff: {line}"
                    )));
                };
                if let Some(Some(ranges)) = files.get_mut(file) {
                    ranges.push(range);
                }
            }
        }
        // A file added since the revision has one hunk covering it whole; untracked
        // files (which `icd scan` reads too) are not in the diff.
        let untracked = git(
            &[
                "-C",
                &top.display().to_string(),
                "ls-files",
                "-z",
                "--others",
                "--exclude-standard",
            ],
            rev,
        )?;
        for path in untracked.split(|&b| b == 0) {
            if !path.is_empty() {
                files.insert(canonical(&top.join(path_from_bytes(path))), None);
            }
        }
        Ok(ChangedLines { files })
    }

    /// Whether the function's lines in `file` overlap a change.
    pub fn touches(&self, file: &Path, f: &FunctionSpan) -> bool {
        match self.files.get(&canonical(file)) {
            None => false,
            Some(None) => true,
            Some(Some(ranges)) => ranges
                .iter()
                .any(|r| r.start_line <= f.end_line && f.start_line <= r.end_line),
        }
    }
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Runs git with the repository's own commands turned off; its stdout.
fn git(args: &[&str], rev: &str) -> Result<Vec<u8>, Failure> {
    let output = std::process::Command::new("git")
        .args(["-c", "core.fsmonitor=false", "-c", "core.quotePath=true"])
        .args(args)
        .output()
        .map_err(|e| Failure(format!("--changed-since {rev}: git did not run: {e}")))?;
    if !output.status.success() {
        return Err(Failure(format!(
            "--changed-since {rev}: `git {}` failed: {}",
            args.iter()
                .filter(|a| !a.starts_with('/'))
                .cloned()
                .collect::<Vec<_>>()
                .join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(output.stdout)
}

/// The lines of the new side of a hunk header's `-a,b +c,d @@`. A deletion (`d` = 0)
/// marks the lines on either side of where it was, so that the function it was cut
/// from counts as changed.
fn new_side(hunk: &str) -> Option<LineRange> {
    let plus = hunk.split(' ').find_map(|part| part.strip_prefix('+'))?;
    let (start, count) = match plus.split_once(',') {
        Some((s, c)) => (s.parse::<usize>().ok()?, c.parse::<usize>().ok()?),
        None => (plus.parse::<usize>().ok()?, 1),
    };
    Some(match count {
        0 => LineRange {
            start_line: start.max(1),
            end_line: start + 1,
        },
        n => LineRange {
            start_line: start,
            end_line: start + n - 1,
        },
    })
}

/// A path as git writes it in a diff header: as is, or C-quoted (`"a\tb.c"`, with
/// octal escapes for other bytes).
fn unquote(path: &str) -> String {
    let Some(inner) = path.strip_prefix('"').and_then(|p| p.strip_suffix('"')) else {
        return path.to_owned();
    };
    let bytes = inner.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' || i + 1 == bytes.len() {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let c = bytes[i + 1];
        i += 2;
        out.push(match c {
            b'n' => b'\n',
            b't' => b'\t',
            b'r' => b'\r',
            b'a' => 7,
            b'b' => 8,
            b'f' => 12,
            b'v' => 11,
            b'0'..=b'7' => {
                let digits = &inner[i - 1..(i + 2).min(inner.len())];
                i += 2;
                u8::from_str_radix(digits, 8).unwrap_or(b'?')
            }
            other => other,
        });
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The gaps as a report's footer: a line each, but excluded files counted in one line
/// per settings file (a project may exclude thousands of vendored files).
pub fn footer(gaps: &[Gap]) -> String {
    let mut out = String::new();
    let mut excluded: std::collections::BTreeMap<&Path, usize> = Default::default();
    for gap in gaps {
        match &gap.kind {
            GapKind::Excluded(settings) => *excluded.entry(settings.as_path()).or_default() += 1,
            _ => {
                out += &gap.message();
                out.push('\n');
            }
        }
    }
    for (settings, n) in excluded {
        out += &format!(
            "{n} files not scanned: excluded by {}\n",
            printable(&settings.display().to_string())
        );
    }
    out
}
