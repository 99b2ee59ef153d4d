//! `.icd.toml`: a project's settings for `icd scan` and `icd functions`, found upward
//! from the first scanned path (or named with `--config`); flags on the command line win.
//!
//! ```toml
//! threshold = 0.7
//! exclude = ["third_party/**", "**/*_test.c"]
//! precision = "int8"
//! window = true
//! stride = 128
//! top_lines = 5
//! cache = false
//! calibration = "calibration.json"
//! ```
//!
//! The file lives in the scanned tree, so in a pull request its author can edit it:
//! each file it excludes is still named in the report (a note in SARIF, a line on
//! stderr), and `--config FILE` (say, the base branch's copy) or `--no-config` keep a
//! gate's settings out of the change's hands.

use std::path::{Path, PathBuf};

use insecure_code_detector::Precision;
use serde::Deserialize;

use crate::{tree_files, Failure};

/// The file's name.
pub const FILE_NAME: &str = ".icd.toml";

/// Largest settings file read.
const LIMIT: u64 = 1 << 20;

/// What `.icd.toml` may set; anything else in it is an error naming the key.
#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct Fields {
    threshold: Option<f32>,
    #[serde(default)]
    exclude: Vec<String>,
    precision: Option<String>,
    window: Option<bool>,
    stride: Option<usize>,
    top_lines: Option<usize>,
    cache: Option<bool>,
    calibration: Option<PathBuf>,
}

/// Settings read from a project's `.icd.toml`.
#[derive(Default)]
pub struct Settings {
    /// The file they came from.
    pub path: Option<PathBuf>,
    pub threshold: Option<f32>,
    pub precision: Option<Precision>,
    pub window: Option<bool>,
    pub stride: Option<usize>,
    pub top_lines: Option<usize>,
    /// Whether `scan` uses the prediction cache (`--no-cache` wins).
    pub cache: Option<bool>,
    /// A calibration file from `icd calibrate`, relative to the settings file's
    /// directory (`--calibration` wins).
    pub calibration: Option<PathBuf>,
    /// The settings came from the scanned tree, not --config: the calibration file
    /// they name is read only inside their directory.
    pub from_tree: bool,
    /// Files (relative to the file's directory) not to scan.
    pub exclude: Option<Excludes>,
}

/// The `exclude` globs, matched against paths relative to the settings file's directory.
pub struct Excludes {
    root: PathBuf,
    globs: globset::GlobSet,
    /// The settings file, named in the report of each file it excludes.
    pub source: PathBuf,
}

impl insecure_code_detector::scan::Exclude for Excludes {
    /// Whether `file` (as found by the walk) is excluded.
    fn excludes(&self, file: &Path) -> bool {
        let absolute = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
        absolute
            .strip_prefix(&self.root)
            .is_ok_and(|relative| self.globs.is_match(relative))
    }

    fn source(&self) -> &Path {
        &self.source
    }
}

impl Settings {
    /// The settings for a scan of `paths`: from `config` when given, none with
    /// `no_config`, else from the nearest `.icd.toml` in the first path's directory or
    /// above it.
    pub fn find(
        paths: &[PathBuf],
        config: Option<&Path>,
        no_config: bool,
    ) -> Result<Settings, Failure> {
        if no_config {
            return Ok(Settings::default());
        }
        if let Some(path) = config {
            return Settings::read(path, false);
        }
        let found = paths.first().and_then(|first| {
                let start = std::path::absolute(first).unwrap_or_else(|_| first.clone());
                let start = if start.is_dir() {
                    start
                } else {
                    start.parent().map(Path::to_path_buf).unwrap_or(start)
                };
            start
                .ancestors()
                .map(|dir| dir.join(FILE_NAME))
                // The first of that name, whatever it is: one that cannot be read is
                // an error, not passed over for another further up.
                .find(|candidate| candidate.symlink_metadata().is_ok())
        });
        match found {
            Some(path) => Settings::read(&path, true),
            None => Ok(Settings::default()),
        }
    }

    /// Reads the settings at `path`; `from_tree`: found in the scanned tree rather than
    /// named with --config, so read only inside its directory (`tree_files`).
    fn read(path: &Path, from_tree: bool) -> Result<Settings, Failure> {
        let at = path.display();
        let dir = std::path::absolute(path)
            .unwrap_or_else(|_| path.to_path_buf())
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        if from_tree {
            tree_files::confine(path, &dir, "settings file", "--config FILE")?;
        }
        let text = insecure_code_detector::files::read_untrusted_text(path, LIMIT, FILE_NAME)?;
        let fields: Fields = tree_files::parse_toml(path, &text)?;
        if let Some(t) = fields.threshold {
            if !(0.0..=1.0).contains(&t) {
                return Err(Failure(format!("{at}: threshold is {t}, expected 0..=1")));
            }
        }
        let precision = fields
            .precision
            .map(|name| {
                name.parse::<Precision>()
                    .map_err(|e| Failure(format!("{at}: precision: {e}")))
            })
            .transpose()?;
        let calibration = fields.calibration.map(|c| dir.join(c));
        let exclude = match fields.exclude.is_empty() {
            true => None,
            false => {
                let mut builder = globset::GlobSetBuilder::new();
                for pattern in &fields.exclude {
                    let glob = globset::GlobBuilder::new(pattern)
                        .literal_separator(true)
                        .build()
                        .map_err(|e| Failure(format!("{at}: exclude {pattern:?}: {e}")))?;
                    builder.add(glob);
                }
                let root = std::path::absolute(path)
                    .unwrap_or_else(|_| path.to_path_buf())
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_default();
                Some(Excludes {
                    root,
                    globs: builder
                        .build()
                        .map_err(|e| Failure(format!("{at}: exclude: {e}")))?,
                    source: path.to_path_buf(),
                })
            }
        };
        Ok(Settings {
            path: Some(path.to_path_buf()),
            threshold: fields.threshold,
            precision,
            window: fields.window,
            stride: fields.stride,
            top_lines: fields.top_lines,
            cache: fields.cache,
            calibration,
            from_tree,
            exclude,
        })
    }
}
