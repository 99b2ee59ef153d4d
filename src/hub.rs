//! Finding the hub checkpoint: the local Hugging Face cache first, then (with the
//! `download` feature, when the machine is online) the hub itself, into that cache.
//!
//! The cache layout is the one `huggingface_hub` writes:
//! `$HF_HUB_CACHE` (else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`), then
//! `models--{owner}--{name}/refs/{revision}` holding a commit hash and
//! `models--{owner}--{name}/snapshots/{hash}/` holding the files.
//!
//! Hub checkpoints that ship only `pytorch_model.bin` are converted to safetensors
//! once, into this library's own cache ([`crate::files::cache_dir`]), so that later loads
//! skip the pickle and the copy it implies.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::files::env_path;
use crate::weights::{convert_pytorch_to_safetensors, StorageDtype};

/// The hub cache directory from the environment, as `huggingface_hub` resolves it.
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(dir) = env_path("HF_HUB_CACHE") {
        return Some(dir);
    }
    if let Some(home) = env_path("HF_HOME") {
        return Some(home.join("hub"));
    }
    env_path("HOME").map(|home| home.join(".cache/huggingface/hub"))
}

/// `true` when `HF_HUB_OFFLINE` asks, as in `huggingface_hub`, never to touch the network.
pub fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    })
}

fn split_repo_id(repo_id: &str) -> Result<(&str, &str)> {
    let invalid = || Error::InvalidArgument {
        argument: "repo_id",
        message: format!("{repo_id:?} is not a hub model id of the form owner/name"),
    };
    let (owner, name) = repo_id.split_once('/').ok_or_else(invalid)?;
    if [owner, name]
        .iter()
        .any(|part| part.is_empty() || part.contains(['/', '\\']) || *part == "..")
    {
        return Err(invalid());
    }
    Ok((owner, name))
}

/// The snapshot directory of `repo_id` at `revision` (a branch, tag or commit hash)
/// in `cache`, if it is there with a `config.json`.
pub fn cached_snapshot(cache: &Path, repo_id: &str, revision: &str) -> Result<Option<PathBuf>> {
    let (owner, name) = split_repo_id(repo_id)?;
    if revision.is_empty() || revision.contains(['/', '\\']) || revision == ".." {
        return Err(Error::InvalidArgument {
            argument: "revision",
            message: format!("{revision:?} is not a valid hub revision"),
        });
    }
    let repo = cache.join(format!("models--{owner}--{name}"));
    let commit = match std::fs::read_to_string(repo.join("refs").join(revision)) {
        Ok(hash) => hash.trim().to_owned(),
        // A revision given as a commit hash has no ref file.
        Err(_) => revision.to_owned(),
    };
    let snapshot = repo.join("snapshots").join(commit);
    Ok(snapshot.join("config.json").is_file().then_some(snapshot))
}

/// `true` when the files `has` names make a checkpoint a detector can load: config,
/// tokenizer and weights.
fn has_checkpoint_files(has: impl Fn(&str) -> bool) -> bool {
    has("config.json")
        && (has("tokenizer.json") || (has("vocab.json") && has("merges.txt")))
        && (has("model.safetensors") || has("pytorch_model.bin"))
}

fn is_complete(dir: &Path) -> bool {
    has_checkpoint_files(|name| dir.join(name).is_file())
}

/// The cached snapshot of `repo_id` at `main`, or an error that says how to supply
/// the model when it is not cached.
pub fn resolve_offline(repo_id: &str) -> Result<PathBuf> {
    let cache = cache_dir();
    if let Some(cache) = &cache {
        if let Some(snapshot) =
            cached_snapshot(cache, repo_id, "main")?.filter(|dir| is_complete(dir))
        {
            return Ok(snapshot);
        }
    }
    Err(not_available(repo_id, cache.as_deref(), None))
}

fn not_available(repo_id: &str, cache: Option<&Path>, download_error: Option<String>) -> Error {
    let why = match download_error {
        Some(reason) => {
            format!("{repo_id} is not in the Hugging Face cache and was not downloaded ({reason})")
        }
        None => format!("{repo_id} is not in the Hugging Face cache"),
    };
    Error::Io {
        path: cache
            .unwrap_or(Path::new(""))
            .join(format!("models--{}", repo_id.replace('/', "--"))),
        source: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!(
                "{why}; on a machine with network run `huggingface-cli download {repo_id}` \
                 (set HF_HOME or HF_HUB_CACHE to choose the cache) and copy the cache here, \
                 or pass --model DIR with a checkpoint directory"
            ),
        ),
    }
}

/// The snapshot of `repo_id` at `main`: from the cache when it is complete there,
/// else downloaded into the cache (unless `HF_HUB_OFFLINE` is set). `HF_ENDPOINT`
/// chooses the hub's address, as in `huggingface_hub`.
///
/// Fetched: `config.json`, the tokenizer files the repository has, and one weight
/// file, `model.safetensors` where the repository has it, else `pytorch_model.bin`.
#[cfg(feature = "download")]
pub fn resolve(repo_id: &str, progress: bool) -> Result<PathBuf> {
    if let Ok(snapshot) = resolve_offline(repo_id) {
        return Ok(snapshot);
    }
    split_repo_id(repo_id)?;
    let Some(cache) = cache_dir() else {
        return Err(not_available(
            repo_id,
            None,
            Some("no cache directory: set HF_HUB_CACHE or HF_HOME".to_owned()),
        ));
    };
    if offline() {
        return Err(not_available(
            repo_id,
            Some(&cache),
            Some("HF_HUB_OFFLINE is set".to_owned()),
        ));
    }
    // hf-hub asserts on a few invariants of the cache; a panic there is an error here.
    let fetched = std::panic::catch_unwind(|| download(repo_id, &cache, progress))
        .unwrap_or_else(|_| Err("the download stopped on an internal error".to_owned()));
    fetched.map_err(|error| not_available(repo_id, Some(&cache), Some(error)))
}

#[cfg(feature = "download")]
fn download(repo_id: &str, cache: &Path, progress: bool) -> std::result::Result<PathBuf, String> {
    use hf_hub::api::sync::ApiBuilder;

    let mut builder =
        ApiBuilder::from_cache(hf_hub::Cache::new(cache.to_path_buf())).with_progress(progress);
    if let Ok(endpoint) = std::env::var("HF_ENDPOINT") {
        builder = builder.with_endpoint(endpoint.trim_end_matches('/').to_owned());
    }
    let api = builder.build().map_err(|e| e.to_string())?;
    let repo = api.model(repo_id.to_owned());
    let listed: Vec<String> = repo
        .info()
        .map_err(|e| e.to_string())?
        .siblings
        .into_iter()
        .map(|s| s.rfilename)
        .collect();
    let has = |name: &str| listed.iter().any(|f| f == name);
    if !has_checkpoint_files(has) {
        return Err(
            "the repository lacks config.json, its tokenizer files or its weights".to_owned(),
        );
    }
    let weights = if has("model.safetensors") {
        "model.safetensors"
    } else {
        "pytorch_model.bin"
    };
    let wanted = [
        "config.json",
        "tokenizer.json",
        "vocab.json",
        "merges.txt",
        "tokenizer_config.json",
        "special_tokens_map.json",
    ];
    let mut snapshot = None;
    for name in wanted.into_iter().filter(|name| has(name)).chain([weights]) {
        let path = repo.get(name).map_err(|e| format!("{name}: {e}"))?;
        snapshot = path.parent().map(Path::to_path_buf);
    }
    snapshot.ok_or_else(|| "nothing was downloaded".to_owned())
}

/// The safetensors weights of a hub `snapshot`: its own `model.safetensors`, else
/// its `pytorch_model.bin` converted (f32, hub tensor names) once into
/// `converted_root/models--{owner}--{name}/{commit}/model.safetensors` and reused
/// from there. Returns the file and whether it was converted by this call.
///
/// The conversion refuses pickles that name anything beyond plain tensors, and writes
/// through a temporary file so that an interrupted run leaves nothing half-written.
pub fn safetensors_weights(snapshot: &Path, converted_root: &Path) -> Result<(PathBuf, bool)> {
    let own = snapshot.join("model.safetensors");
    if own.is_file() {
        return Ok((own, false));
    }
    let bin = snapshot.join("pytorch_model.bin");
    if !bin.is_file() {
        return Err(Error::NoWeights {
            dir: snapshot.to_path_buf(),
        });
    }
    // snapshots/{commit} inside models--{owner}--{name}.
    let commit = snapshot.file_name();
    let repo = snapshot
        .parent()
        .and_then(Path::parent)
        .and_then(Path::file_name);
    let (Some(commit), Some(repo)) = (commit, repo) else {
        return Err(Error::InvalidArgument {
            argument: "snapshot",
            message: format!(
                "{} is not a hub cache snapshot directory",
                snapshot.display()
            ),
        });
    };
    let dir = converted_root.join(repo).join(commit);
    let converted = dir.join("model.safetensors");
    if converted.is_file() {
        return Ok((converted, false));
    }
    std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
        path: dir.clone(),
        source,
    })?;
    let partial = dir.join(format!("model.safetensors.{}.partial", std::process::id()));
    let result = convert_pytorch_to_safetensors(&bin, &partial, StorageDtype::F32).and_then(|()| {
        std::fs::rename(&partial, &converted).map_err(|source| Error::Io {
            path: converted.clone(),
            source,
        })
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result.map(|()| (converted, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_refs_and_commit_hashes() {
        let cache = tempfile::tempdir().unwrap();
        let repo = cache.path().join("models--owner--model");
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), "abc123\n").unwrap();
        let snapshot = repo.join("snapshots/abc123");
        std::fs::create_dir_all(&snapshot).unwrap();
        assert_eq!(
            cached_snapshot(cache.path(), "owner/model", "main").unwrap(),
            None,
            "no config.json yet"
        );
        std::fs::write(snapshot.join("config.json"), "{}").unwrap();
        assert_eq!(
            cached_snapshot(cache.path(), "owner/model", "main").unwrap(),
            Some(snapshot.clone())
        );
        assert_eq!(
            cached_snapshot(cache.path(), "owner/model", "abc123").unwrap(),
            Some(snapshot)
        );
        assert_eq!(
            cached_snapshot(cache.path(), "owner/other", "main").unwrap(),
            None
        );
        assert!(cached_snapshot(cache.path(), "no-slash", "main").is_err());
        assert!(cached_snapshot(cache.path(), "owner/model", "../x").is_err());
    }

    #[test]
    fn converts_a_cached_bin_once_and_reuses_it() {
        let fixture =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/roberta-1-label-old-config");
        let cache = tempfile::tempdir().unwrap();
        let snapshot = cache.path().join("models--owner--model/snapshots/abc123");
        std::fs::create_dir_all(&snapshot).unwrap();
        std::fs::copy(
            fixture.join("pytorch_model.bin"),
            snapshot.join("pytorch_model.bin"),
        )
        .unwrap();
        let converted = tempfile::tempdir().unwrap();

        let (path, fresh) = safetensors_weights(&snapshot, converted.path()).unwrap();
        assert!(fresh);
        assert_eq!(
            path,
            converted
                .path()
                .join("models--owner--model/abc123/model.safetensors")
        );
        let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
        let (again, fresh) = safetensors_weights(&snapshot, converted.path()).unwrap();
        assert_eq!((again, fresh), (path.clone(), false));
        assert_eq!(
            std::fs::metadata(&path).unwrap().modified().unwrap(),
            modified,
            "converted twice"
        );
        // Nothing but the converted file is left behind.
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );

        // A snapshot with its own safetensors is used as it is.
        std::fs::write(snapshot.join("model.safetensors"), b"x").unwrap();
        assert_eq!(
            safetensors_weights(&snapshot, converted.path()).unwrap(),
            (snapshot.join("model.safetensors"), false)
        );

        let empty = cache.path().join("models--owner--model/snapshots/def456");
        std::fs::create_dir_all(&empty).unwrap();
        assert!(matches!(
            safetensors_weights(&empty, converted.path()),
            Err(Error::NoWeights { .. })
        ));
    }
}
