//! Which files a scan reads, and what it could not cover.
//!
//! The tree comes from whoever opened the pull request, so its coverage must not be
//! something the tree itself can reduce:
//! - in a git work tree, every tracked C/C++ file is scanned whatever ignore files
//!   say; `.gitignore` (and `.git/info/exclude`) only leave out untracked files, and
//!   `.ignore` files are honoured only with `--dot-ignore`;
//! - hidden files and directories are scanned like any other (`.git` aside);
//! - every file that is not scanned (a link, not a regular file, unreadable, larger
//!   than `--max-file-size`, binary) and every line that could not be parsed is a [`Gap`],
//!   reported on stderr, in the table's footer and as a SARIF notification; a path
//!   named on the command line that cannot be scanned is an error.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::Args;
use insecure_code_detector::files::read_untrusted;
use insecure_code_detector::scan::{find_functions_in_bytes, FunctionSpan, Language, LineRange};

use insecure_code_detector::report::printable;

use crate::settings::Excludes;
use crate::Failure;

/// Line ranges a message lists before it counts the rest (SARIF notifications carry
/// every range as a location).
const MAX_LISTED_RANGES: usize = 8;

/// Where to look for C and C++ functions.
#[derive(Args)]
pub struct SourceArgs {
    /// Files and directories to scan.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Largest source file read, in bytes; a larger one is skipped and reported. The
    /// largest C files in common use (SQLite's amalgamation) are about 9 MiB.
    #[arg(long, default_value_t = 16 << 20, value_name = "BYTES")]
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

/// A C or C++ file to read.
pub struct Source {
    pub path: PathBuf,
    pub language: Language,
    /// Named on the command line: failing to read it is an error, not a gap.
    pub named: bool,
}

/// Part of the tree a scan did not cover.
pub struct Gap {
    pub file: String,
    pub kind: GapKind,
}

pub enum GapKind {
    /// The file was not read.
    Skipped(String),
    /// The settings file's `exclude` names the file.
    Excluded(PathBuf),
    /// These lines parsed into no definition or other whole item.
    Unparsed(Vec<LineRange>),
}

impl Gap {
    /// One line for a terminal, a log or a SARIF message.
    pub fn message(&self) -> String {
        let file = printable(&self.file);
        match &self.kind {
            GapKind::Skipped(reason) => format!("{file} was not scanned: {reason}"),
            GapKind::Excluded(settings) => format!(
                "{file} was not scanned: excluded by {}",
                printable(&settings.display().to_string())
            ),
            GapKind::Unparsed(lines) => {
                let count: usize = lines.iter().map(|r| r.end_line - r.start_line + 1).sum();
                let mut ranges: Vec<String> = lines
                    .iter()
                    .take(MAX_LISTED_RANGES)
                    .map(|r| match r.end_line == r.start_line {
                        true => r.start_line.to_string(),
                        false => format!("{}-{}", r.start_line, r.end_line),
                    })
                    .collect();
                if lines.len() > MAX_LISTED_RANGES {
                    ranges.push(format!(
                        "and {} more ranges",
                        lines.len() - MAX_LISTED_RANGES
                    ));
                }
                let plural = if count == 1 { "" } else { "s" };
                format!(
                    "{count} line{plural} of {file} could not be parsed (line{plural} {}); functions there are not scanned",
                    ranges.join(", ")
                )
            }
        }
    }

    /// The lines the gap covers, for SARIF regions (none for a skipped file).
    pub fn lines(&self) -> &[LineRange] {
        match &self.kind {
            GapKind::Skipped(_) | GapKind::Excluded(_) => &[],
            GapKind::Unparsed(lines) => lines,
        }
    }
}

/// What a search of the sources found.
pub struct Found {
    /// Every function definition, with its file, in file order.
    pub functions: Vec<(String, FunctionSpan)>,
    /// The files read: the command's inputs.
    pub inputs: Vec<PathBuf>,
    /// What could not be covered.
    pub gaps: Vec<Gap>,
}

/// Every function definition under `args.paths`, the files read, and what could not
/// be covered (each gap also warned about on stderr).
pub fn find_functions_under(
    args: &SourceArgs,
    excludes: Option<&Excludes>,
) -> Result<Found, Failure> {
    let (sources, mut gaps) = collect(args, excludes)?;
    let mut functions = Vec::new();
    let mut read = Vec::with_capacity(sources.len());
    for source in sources {
        let file = source.path.display().to_string();
        let bytes = match read_untrusted(&source.path, args.max_file_size, "source file") {
            Ok(bytes) => bytes,
            Err(e) if source.named => return Err(Failure(e.to_string())),
            Err(e) => {
                gaps.push(Gap {
                    file,
                    kind: GapKind::Skipped(skip_reason(&e, &source.path)),
                });
                continue;
            }
        };
        // C and C++ source never holds a NUL byte; a binary file is no source, and
        // parsing megabytes of one costs gigabytes.
        if let Some(at) = bytes.iter().position(|&b| b == 0) {
            let reason = format!("a binary file (a NUL byte at offset {at})");
            if source.named {
                return Err(Failure(format!("{file}: not scanned: {reason}")));
            }
            gaps.push(Gap {
                file,
                kind: GapKind::Skipped(reason),
            });
            continue;
        }
        let result = find_functions_in_bytes(&bytes, source.language);
        if !result.unparsed_lines.is_empty() {
            gaps.push(Gap {
                file: file.clone(),
                kind: GapKind::Unparsed(result.unparsed_lines),
            });
        }
        functions.extend(result.functions.into_iter().map(|f| (file.clone(), f)));
        read.push(source.path);
    }
    gaps.sort_by(|a, b| a.file.cmp(&b.file));
    let mut excluded = 0;
    for gap in &gaps {
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
    Ok(Found {
        functions,
        inputs: read,
        gaps,
    })
}

/// The reason in an error of the untrusted reader, without the path it repeats.
fn skip_reason(e: &insecure_code_detector::Error, path: &Path) -> String {
    let message = e.to_string();
    let prefix = format!("refusing {}: ", path.display());
    message.strip_prefix(&prefix).unwrap_or(&message).to_owned()
}

/// The C and C++ files under `args.paths`, and the files found there that cannot be
/// read as sources (links, FIFOs). A named file is taken as given, whatever its
/// extension (C unless it names C++), and a named path that does not exist or is not
/// a file or directory is an error.
fn collect(
    args: &SourceArgs,
    excludes: Option<&Excludes>,
) -> Result<(Vec<Source>, Vec<Gap>), Failure> {
    let mut sources = Vec::new();
    let mut gaps = Vec::new();
    for path in &args.paths {
        let meta =
            std::fs::metadata(path).map_err(|e| Failure(format!("{}: {e}", path.display())))?;
        if !meta.is_dir() {
            // A named non-regular file (a FIFO, a device) is refused when read.
            sources.push(Source {
                path: path.clone(),
                language: Language::from_path(path).unwrap_or(Language::C),
                named: true,
            });
            continue;
        }
        let mut found = BTreeSet::new();
        for tracked in git_tracked(path)?.unwrap_or_default() {
            found.insert(tracked);
        }
        let walk = ignore::WalkBuilder::new(path)
            // .gitignore also outside a git checkout (an unpacked tarball); there it is
            // the only list of what belongs to the tree.
            .require_git(false)
            .ignore(args.dot_ignore)
            .hidden(false)
            .filter_entry(|entry| entry.file_name() != ".git")
            .build();
        for entry in walk {
            let entry = entry.map_err(|e| Failure(format!("{}: {e}", path.display())))?;
            if entry.depth() > 0 {
                found.insert(entry.into_path());
            }
        }
        for file in found {
            let Some(language) = Language::from_path(&file) else {
                // A linked directory is a part of the tree that is not walked.
                let linked_dir = std::fs::symlink_metadata(&file).is_ok_and(|m| m.is_symlink())
                    && std::fs::metadata(&file).is_ok_and(|m| m.is_dir());
                if linked_dir {
                    gaps.push(Gap {
                        file: file.display().to_string(),
                        kind: GapKind::Skipped(
                            "a symbolic link to a directory (not followed)".into(),
                        ),
                    });
                }
                continue;
            };
            let meta = match std::fs::symlink_metadata(&file) {
                Ok(meta) => meta,
                // Tracked, but deleted from the work tree.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    gaps.push(Gap {
                        file: file.display().to_string(),
                        kind: GapKind::Skipped(e.to_string()),
                    });
                    continue;
                }
            };
            let kind = meta.file_type();
            if let Some(excludes) = excludes.filter(|e| e.matches(&file)) {
                gaps.push(Gap {
                    file: file.display().to_string(),
                    kind: GapKind::Excluded(excludes.source.clone()),
                });
            } else if kind.is_file() {
                sources.push(Source {
                    path: file,
                    language,
                    named: false,
                });
            } else if kind.is_symlink() {
                gaps.push(Gap {
                    file: file.display().to_string(),
                    kind: GapKind::Skipped("a symbolic link (not followed)".into()),
                });
            } else if !kind.is_dir() {
                gaps.push(Gap {
                    file: file.display().to_string(),
                    kind: GapKind::Skipped("not a regular file".into()),
                });
            }
        }
    }
    Ok((sources, gaps))
}

/// The files git tracks under `dir` (as `dir.join(path)`), when `dir` is inside a git
/// work tree; `None` outside one. Inside one, git must run: falling back to the
/// ignore files alone would let the tree hide its own files.
fn git_tracked(dir: &Path) -> Result<Option<Vec<PathBuf>>, Failure> {
    let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    if !absolute.ancestors().any(|a| a.join(".git").exists()) {
        return Ok(None);
    }
    // The repository's own configuration may name a command git would run for
    // `ls-files` (core.fsmonitor): a tree from elsewhere must not run code here.
    let output = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "core.fsmonitor=false", "ls-files", "-z", "--cached", "--", "."])
        .output()
        .map_err(|e| {
            Failure(format!(
                "{}: inside a git work tree, but git did not run ({e}): its tracked files cannot be listed",
                dir.display()
            ))
        })?;
    if !output.status.success() {
        return Err(Failure(format!(
            "{}: inside a git work tree, but `git ls-files` failed: {}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(Some(
        output
            .stdout
            .split(|&b| b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| dir.join(path_from_bytes(p)))
            .collect(),
    ))
}

#[cfg(unix)]
fn path_from_bytes(bytes: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
}

#[cfg(not(unix))]
fn path_from_bytes(bytes: &[u8]) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(bytes).into_owned())
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
