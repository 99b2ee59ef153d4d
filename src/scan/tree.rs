//! Which files a scan of a tree reads, the function definitions in them, and what it
//! could not cover: what `icd scan` does, for embedders (the C API's
//! `icd_find_functions_under`, the Python package's `find_functions_under` and
//! `Detector.scan`).
//!
//! The tree comes from whoever opened the pull request, so its coverage must not be
//! something the tree itself can reduce:
//! - in a git work tree, every tracked C/C++ file (checked-out submodules' included)
//!   is scanned whatever ignore files say, and a submodule not checked out is a gap; `.gitignore` (and `.git/info/exclude`) only leave out untracked files, and
//!   `.ignore` files are honoured only with [`TreeOptions::dot_ignore`];
//! - hidden files and directories are scanned like any other (`.git` aside);
//! - every file that is not scanned (a link, not a regular file, unreadable, larger
//!   than [`TreeOptions::max_file_size`], binary, excluded by a rule) and every line
//!   that could not be parsed is a [`Gap`]; a path named by the caller that cannot be
//!   scanned is an error.
//!
//! ```no_run
//! use insecure_code_detector::scan::{find_functions_under, TreeOptions};
//!
//! let found = find_functions_under(&["src".into()], &TreeOptions::default(), None)?;
//! for (file, f) in &found.functions {
//!     println!("{file}:{}-{} {}", f.start_line, f.end_line, f.name);
//! }
//! for gap in &found.gaps {
//!     eprintln!("{}", gap.message());
//! }
//! # Ok::<(), insecure_code_detector::Error>(())
//! ```

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::{find_functions_in_bytes, FunctionSpan, Language, LineRange};
use crate::error::{Error, Result};
use crate::files::{path_from_bytes, path_text, read_untrusted, read_untrusted_walked};
use crate::report::{printable, printable_path};

/// Line ranges a message lists before it counts the rest (SARIF notifications carry
/// every range as a location).
const MAX_LISTED_RANGES: usize = 8;

/// How a tree is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeOptions {
    /// Largest source file read, in bytes, at most [`TreeOptions::MAX_FILE_SIZE`]; a
    /// larger one is a gap. The largest C files in common use (SQLite's amalgamation)
    /// are about 9 MiB.
    pub max_file_size: u64,
    /// Also honour `.ignore` files (as ripgrep does) for untracked files.
    pub dot_ignore: bool,
}

impl TreeOptions {
    /// [`TreeOptions::max_file_size`] by default: 16 MiB.
    pub const DEFAULT_MAX_FILE_SIZE: u64 = 16 << 20;

    /// The largest [`TreeOptions::max_file_size`]: the most the parser reads of one
    /// file ([`MAX_PARSED_BYTES`](super::MAX_PARSED_BYTES), 32 MiB), for the memory
    /// its trees take.
    pub const MAX_FILE_SIZE: u64 = super::MAX_PARSED_BYTES as u64;
}

impl Default for TreeOptions {
    fn default() -> Self {
        TreeOptions {
            max_file_size: Self::DEFAULT_MAX_FILE_SIZE,
            dot_ignore: false,
        }
    }
}

/// Files a caller leaves out by a rule of its own (`icd`'s `.icd.toml` excludes); each
/// is still named, as a gap.
pub trait Exclude {
    /// Whether `file` (as the walk found it) is left out.
    fn excludes(&self, file: &Path) -> bool;
    /// Where the rule comes from, named in the gap.
    fn source(&self) -> &Path;
}

/// A C or C++ file a walk found, or a caller named: what [`list_sources`] lists and
/// [`find_functions_in_sources`] reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The file, as the walk found it or the caller named it.
    pub path: PathBuf,
    /// How it is parsed: by its extension, C where a named file has none of C++'s.
    pub language: Language,
    /// Named by the caller: failing to read it is an error, not a gap.
    pub named: bool,
}

/// The files a scan of a tree would read, and the files found there that it would not
/// (links, not regular files, excluded): [`find_functions_under`] without the reading,
/// so that a corpus can be listed in one place and read in many.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// The files to read, as [`find_functions_under`] would read them, in its order.
    pub sources: Vec<Source>,
    /// What the walk found and will not be read.
    pub gaps: Vec<Gap>,
}

/// Part of the tree a scan did not cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// The file, as the walk found it, as [`path_text`] writes it (a byte that is not
    /// UTF-8 as `\xHH`).
    pub file: String,
    /// What was not covered.
    pub kind: GapKind,
}

/// What a [`Gap`] did not cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GapKind {
    /// The file was not read.
    Skipped(String),
    /// A rule of the caller's ([`Exclude`]) leaves the file out; where the rule comes
    /// from.
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
                printable_path(settings)
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
#[derive(Debug, Clone, Default)]
pub struct Found {
    /// Every function definition, with its file ([`path_text`]), in file order.
    pub functions: Vec<(String, FunctionSpan)>,
    /// The files read: the command's inputs.
    pub inputs: Vec<PathBuf>,
    /// What could not be covered.
    pub gaps: Vec<Gap>,
}

/// Every function definition under `paths` (files, or directories walked as the module
/// docs say), the files read, and what could not be covered, sorted by file. `exclude`
/// leaves files out by a rule of the caller's, each named as a gap.
pub fn find_functions_under(
    paths: &[PathBuf],
    options: &TreeOptions,
    exclude: Option<&dyn Exclude>,
) -> Result<Found> {
    check_max_file_size(options)?;
    let listing = list_sources(paths, options, exclude)?;
    let mut found = find_functions_in_sources(&listing.sources, options)?;
    found.gaps.extend(listing.gaps);
    found.gaps.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(found)
}

/// The files [`find_functions_under`] would read under `paths` and what it would not,
/// without reading any: a path named that does not exist is an error.
pub fn list_sources(
    paths: &[PathBuf],
    options: &TreeOptions,
    exclude: Option<&dyn Exclude>,
) -> Result<Listing> {
    let (sources, gaps) = collect(paths, options, exclude)?;
    Ok(Listing { sources, gaps })
}

/// The function definitions in `sources` (from [`list_sources`], here or in another
/// process), read as [`find_functions_under`] reads them: a file that cannot be read,
/// is larger than [`TreeOptions::max_file_size`] or is binary is a gap, or an error
/// where it was named by the caller.
pub fn find_functions_in_sources(sources: &[Source], options: &TreeOptions) -> Result<Found> {
    check_max_file_size(options)?;
    let mut gaps = Vec::new();
    let mut functions = Vec::new();
    let mut read = Vec::with_capacity(sources.len());
    for source in sources {
        let file = path_text(&source.path).into_owned();
        let read_file = match source.named {
            true => read_untrusted,
            false => read_untrusted_walked,
        };
        let bytes = match read_file(&source.path, options.max_file_size, "source file") {
            Ok(bytes) => bytes,
            Err(e) if source.named => return Err(e),
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
                return Err(Error::FileRefused {
                    path: source.path.clone(),
                    reason: format!("not scanned: {reason}"),
                });
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
        read.push(source.path.clone());
    }
    gaps.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(Found {
        functions,
        inputs: read,
        gaps,
    })
}

fn check_max_file_size(options: &TreeOptions) -> Result<()> {
    if options.max_file_size > TreeOptions::MAX_FILE_SIZE {
        return Err(Error::InvalidArgument {
            argument: "max_file_size",
            message: format!(
                "is {}, more than the {} bytes the parser reads of one file (its trees take up to 170 times a file's size in memory)",
                options.max_file_size,
                TreeOptions::MAX_FILE_SIZE
            ),
        });
    }
    Ok(())
}

/// The reason in an error of the untrusted reader, without the path it repeats.
fn skip_reason(e: &Error, path: &Path) -> String {
    let message = e.to_string();
    let prefix = format!("refusing {}: ", path.display());
    message.strip_prefix(&prefix).unwrap_or(&message).to_owned()
}

/// The C and C++ files under `paths`, and the files found there that cannot be
/// read as sources (links, FIFOs). A named file is taken as given, whatever its
/// extension (C unless it names C++), and a named path that does not exist or is not
/// a file or directory is an error.
fn collect(
    paths: &[PathBuf],
    options: &TreeOptions,
    exclude: Option<&dyn Exclude>,
) -> Result<(Vec<Source>, Vec<Gap>)> {
    let mut sources = Vec::new();
    let mut gaps = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
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
            // Git lists a submodule that is not checked out as its directory; one that
            // is, as its files.
            if std::fs::symlink_metadata(&tracked).is_ok_and(|m| m.is_dir()) {
                gaps.push(Gap {
                    file: path_text(&tracked).into_owned(),
                    kind: GapKind::Skipped(
                        "a git submodule that is not checked out (`git submodule update --init` checks it out)".into(),
                    ),
                });
                continue;
            }
            found.insert(tracked);
        }
        let walk = ignore::WalkBuilder::new(path)
            // .gitignore also outside a git checkout (an unpacked tarball); there it is
            // the only list of what belongs to the tree.
            .require_git(false)
            .ignore(options.dot_ignore)
            .hidden(false)
            .filter_entry(|entry| entry.file_name() != ".git")
            .build();
        for entry in walk {
            let entry = entry.map_err(|e| Error::Io {
                path: path.clone(),
                source: std::io::Error::other(e.to_string()),
            })?;
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
                        file: path_text(&file).into_owned(),
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
                        file: path_text(&file).into_owned(),
                        kind: GapKind::Skipped(e.to_string()),
                    });
                    continue;
                }
            };
            let kind = meta.file_type();
            if let Some(exclude) = exclude.filter(|e| e.excludes(&file)) {
                gaps.push(Gap {
                    file: path_text(&file).into_owned(),
                    kind: GapKind::Excluded(exclude.source().to_path_buf()),
                });
            } else if kind.is_file() {
                sources.push(Source {
                    path: file,
                    language,
                    named: false,
                });
            } else if kind.is_symlink() {
                gaps.push(Gap {
                    file: path_text(&file).into_owned(),
                    kind: GapKind::Skipped("a symbolic link (not followed)".into()),
                });
            } else if !kind.is_dir() {
                gaps.push(Gap {
                    file: path_text(&file).into_owned(),
                    kind: GapKind::Skipped("not a regular file".into()),
                });
            }
        }
    }
    // A file under two of the paths given (one repeated, or inside another) is read
    // once, as the first path found it.
    let mut seen = std::collections::HashSet::new();
    sources.retain(|s| seen.insert(s.path.clone()));
    let mut seen = std::collections::HashSet::new();
    gaps.retain(|g| seen.insert(g.file.clone()));
    Ok((sources, gaps))
}

/// The files git tracks under `dir` (as `dir.join(path)`), those of its checked-out
/// submodules included, when `dir` is inside a git work tree; `None` outside one. Inside one, git must run: falling back to the
/// ignore files alone would let the tree hide its own files.
fn git_tracked(dir: &Path) -> Result<Option<Vec<PathBuf>>> {
    let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    if !absolute.ancestors().any(|a| a.join(".git").exists()) {
        return Ok(None);
    }
    // The repository's own configuration may name a command git would run for
    // `ls-files` (core.fsmonitor): a tree from elsewhere must not run code here.
    let output = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        // Submodules' tracked files too: a submodule's ignore files cannot hide them.
        .args([
            "-c",
            "core.fsmonitor=false",
            "ls-files",
            "-z",
            "--cached",
            "--recurse-submodules",
            "--",
            ".",
        ])
        .output()
        .map_err(|e| Error::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::other(format!(
                "inside a git work tree, but git did not run ({e}): its tracked files cannot be listed"
            )),
        })?;
    if !output.status.success() {
        return Err(Error::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::other(format!(
                "inside a git work tree, but `git ls-files` failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )),
        });
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
