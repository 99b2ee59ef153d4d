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
    /// These lines parsed into no definition or other whole item.
    Unparsed(Vec<LineRange>),
}

impl Gap {
    /// One line for a terminal, a log or a SARIF message.
    pub fn message(&self) -> String {
        let file = printable(&self.file);
        match &self.kind {
            GapKind::Skipped(reason) => format!("{file} was not scanned: {reason}"),
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
            GapKind::Skipped(_) => &[],
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
pub fn find_functions_under(args: &SourceArgs) -> Result<Found, Failure> {
    let (sources, mut gaps) = collect(args)?;
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
    for gap in &gaps {
        eprintln!("icd: warning: {}", gap.message());
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
fn collect(args: &SourceArgs) -> Result<(Vec<Source>, Vec<Gap>), Failure> {
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
            if kind.is_file() {
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
