//! A fine-tuned checkpoint written in the hub's layout, whole or not at all: every
//! file goes into a temporary directory beside the output, which is then renamed
//! into place.

use std::path::Path;

use serde::Serialize;

use super::{EpochRecord, TrainedModel, TrainingRecipe};
use crate::error::{Error, Result};

/// The base checkpoint's tokenizer files that are copied where it has them.
const TOKENIZER_FILES: [&str; 6] = [
    "vocab.json",
    "merges.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
];

/// What `training.json` records.
#[derive(Serialize)]
struct TrainingRecord<'a> {
    /// The layout of this record.
    format: &'static str,
    /// The library that trained the model.
    library: String,
    /// The checkpoint it started from.
    base_checkpoint: String,
    recipe: &'a TrainingRecipe,
    max_tokens: usize,
    total_steps: usize,
    /// The epoch whose model was written.
    kept_epoch: usize,
    epochs: &'a [EpochRecord],
    data: DataRecord<'a>,
}

#[derive(Serialize)]
struct DataRecord<'a> {
    train_sha256: &'a str,
    validation_sha256: Option<&'a str>,
}

/// Refuses an output that is a file or a directory with something in it, and one
/// beside which the checkpoint cannot be staged (a parent that is missing or not
/// writable, a name too long for the staging directory's): what
/// [`TrainedModel::save`] would refuse, for a caller to check before training.
pub fn check_output(output: &Path) -> Result<()> {
    check_empty(output)?;
    stage_beside(output).map(drop)
}

/// Refuses an output that is a file, or a directory with something in it.
fn check_empty(output: &Path) -> Result<()> {
    match std::fs::symlink_metadata(output) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Io {
            path: output.to_path_buf(),
            source,
        }),
        Ok(meta) if !meta.is_dir() => Err(Error::InvalidArgument {
            argument: "output",
            message: format!(
                "{} exists and is not a directory (a link is not followed)",
                output.display()
            ),
        }),
        Ok(_) => {
            let mut entries = std::fs::read_dir(output).map_err(|source| Error::Io {
                path: output.to_path_buf(),
                source,
            })?;
            if entries.next().is_some() {
                return Err(Error::InvalidArgument {
                    argument: "output",
                    message: format!(
                        "{} is not empty: a checkpoint is written only to a new or empty directory",
                        output.display()
                    ),
                });
            }
            Ok(())
        }
    }
}

/// A new directory beside `output` to write the checkpoint into, made as `mkdir` makes
/// one under the umask, and `output`'s parent directory.
fn stage_beside(output: &Path) -> Result<(tempfile::TempDir, std::path::PathBuf)> {
    let parent = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = output
        .file_name()
        .ok_or_else(|| Error::InvalidArgument {
            argument: "output",
            message: format!("{} names no directory", output.display()),
        })?
        .to_string_lossy()
        .into_owned();
    // The staging name adds 16 bytes to the output's, which a name near the file
    // system's limit of 255 has no room for: it is cut to leave that room.
    let mut cut = name.len().min(200);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    let prefix = format!(".{}.", &name[..cut]);
    let mut staging = tempfile::Builder::new();
    staging.prefix(&prefix).suffix(".partial");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        staging.permissions(std::fs::Permissions::from_mode(0o777));
    }
    let dir = staging.tempdir_in(&parent).map_err(|source| Error::Io {
        path: parent.clone(),
        source: std::io::Error::new(
            source.kind(),
            format!("cannot make a directory here to write the checkpoint into: {source}"),
        ),
    })?;
    Ok((dir, parent))
}

/// Writes `trained` to `output` (see [`TrainedModel::save`]).
pub(super) fn write(trained: &TrainedModel, output: &Path) -> Result<()> {
    check_empty(output)?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source: std::io::Error| Error::Io { path, source }
    };
    let (staging, parent) = stage_beside(output)?;
    let dir = staging.path();
    // Each file reaches the disk before the directory is renamed into place.
    let write = |file: &str, bytes: &[u8]| -> Result<()> {
        use std::io::Write;
        let path = dir.join(file);
        let mut out = std::fs::File::create(&path).map_err(io(&path))?;
        out.write_all(bytes)
            .and_then(|()| out.sync_all())
            .map_err(io(&path))
    };

    let base = &trained.base_dir;
    let copy = |file: &str| -> Result<()> {
        let from = base.join(file);
        let bytes = crate::files::read_untrusted(&from, crate::files::WEIGHTS_LIMIT, file)?;
        write(file, &bytes)
    };
    copy("config.json")?;
    for file in TOKENIZER_FILES {
        if base.join(file).exists() {
            copy(file)?;
        }
    }
    let weights = dir.join("model.safetensors");
    crate::weights::save_safetensors(&trained.model, &trained.config, &weights)?;
    std::fs::File::open(&weights)
        .and_then(|f| f.sync_all())
        .map_err(io(&weights))?;
    let record = TrainingRecord {
        format: "icd-training/1",
        library: format!("insecure-code-detector {}", env!("CARGO_PKG_VERSION")),
        base_checkpoint: crate::files::path_text(base).into_owned(),
        recipe: &trained.recipe,
        max_tokens: trained.max_tokens,
        total_steps: trained.total_steps,
        kept_epoch: trained.best_epoch,
        epochs: &trained.epochs,
        data: DataRecord {
            train_sha256: &trained.train_digest,
            validation_sha256: trained.validation_digest.as_deref(),
        },
    };
    let text = serde_json::to_string_pretty(&record).expect("the record serializes") + "\n";
    write("training.json", text.as_bytes())?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;

    // rename(2) replaces an empty directory in one step and fails on one that is not
    // empty (filled since the check above), leaving it as it was.
    let staged = staging.keep();
    std::fs::rename(&staged, output).map_err(|source| {
        let _ = std::fs::remove_dir_all(&staged);
        Error::Io {
            path: output.to_path_buf(),
            source,
        }
    })?;
    std::fs::File::open(&parent)
        .and_then(|d| d.sync_all())
        .map_err(io(&parent))
}
