//! Which files a scan reads (the library's `scan::find_functions_under`, whose docs
//! say what a tree cannot hide), and how what could not be covered is reported: each
//! gap on stderr, in the table's footer and as a SARIF notification.

use std::path::{Path, PathBuf};

use clap::Args;
use insecure_code_detector::report::printable_path;
use insecure_code_detector::scan::TreeOptions;
pub use insecure_code_detector::scan::{Found, Gap, GapKind};

use crate::settings::Excludes;
use crate::Failure;

/// Where to look for C and C++ functions.
#[derive(Args)]
pub struct SourceArgs {
    /// Files and directories to scan.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Largest source file read, in bytes, at most 33554432 (32 MiB, for the memory the
    /// parser's trees take); a larger one is skipped and reported. The largest C files
    /// in common use (SQLite's amalgamation) are about 9 MiB.
    #[arg(
        long,
        default_value_t = TreeOptions::DEFAULT_MAX_FILE_SIZE,
        value_name = "BYTES",
        value_parser = clap::value_parser!(u64).range(1..=TreeOptions::MAX_FILE_SIZE)
    )]
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
pub fn find_and_warn(args: &SourceArgs, excludes: Option<&Excludes>) -> Result<Found, Failure> {
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
            printable_path(&excludes.source)
        );
    }
    Ok(found)
}

/// The gaps as every report lists them: each file or line range not covered, in the
/// order found, and the excluded files counted per settings file (a project may
/// exclude thousands of vendored files).
pub struct NotCovered<'a> {
    /// The gaps other than exclusions.
    pub files: Vec<&'a Gap>,
    /// Excluded files, counted by the settings file that excludes them.
    pub excluded: std::collections::BTreeMap<&'a Path, usize>,
}

impl<'a> NotCovered<'a> {
    pub fn of(gaps: &'a [Gap]) -> Self {
        let mut not_covered = NotCovered {
            files: Vec::new(),
            excluded: Default::default(),
        };
        for gap in gaps {
            match &gap.kind {
                GapKind::Excluded(settings) => {
                    *not_covered.excluded.entry(settings.as_path()).or_default() += 1
                }
                _ => not_covered.files.push(gap),
            }
        }
        not_covered
    }
}

/// The gaps as a report's footer: a line each, but excluded files counted in one line
/// per settings file.
pub fn footer(gaps: &[Gap]) -> String {
    let mut out = String::new();
    let not_covered = NotCovered::of(gaps);
    for gap in not_covered.files {
        out += &gap.message();
        out.push('\n');
    }
    for (settings, n) in not_covered.excluded {
        out += &format!(
            "{n} files not scanned: excluded by {}\n",
            printable_path(settings)
        );
    }
    out
}
