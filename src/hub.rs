//! Finding a hub checkpoint in the local Hugging Face cache, without the network.
//!
//! The cache layout is the one `huggingface_hub` writes:
//! `$HF_HUB_CACHE` (else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`), then
//! `models--{owner}--{name}/refs/{revision}` holding a commit hash and
//! `models--{owner}--{name}/snapshots/{hash}/` holding the files.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The hub cache directory from the environment, as `huggingface_hub` resolves it.
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("HF_HUB_CACHE").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    if let Some(home) = std::env::var_os("HF_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(home).join("hub"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/huggingface/hub"))
}

/// The snapshot directory of `repo_id` at `revision` (a branch, tag or commit hash)
/// in `cache`, if it is there with a `config.json`.
pub fn cached_snapshot(cache: &Path, repo_id: &str, revision: &str) -> Result<Option<PathBuf>> {
    let (owner, name) = repo_id.split_once('/').ok_or_else(|| Error::InvalidArgument {
        argument: "repo_id",
        message: format!("{repo_id:?} is not of the form owner/name"),
    })?;
    if [owner, name, revision].iter().any(|part| part.is_empty() || part.contains(['/', '\\']) || *part == "..") {
        return Err(Error::InvalidArgument {
            argument: "repo_id",
            message: format!("{repo_id:?} at {revision:?} is not a valid hub model id and revision"),
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

/// The cached snapshot of `repo_id` at `main`, or an error that says how to supply
/// the model when it is not cached.
pub fn resolve_offline(repo_id: &str) -> Result<PathBuf> {
    let cache = cache_dir();
    if let Some(cache) = &cache {
        if let Some(snapshot) = cached_snapshot(cache, repo_id, "main")? {
            return Ok(snapshot);
        }
    }
    Err(Error::Io {
        path: cache.unwrap_or_default().join(format!("models--{}", repo_id.replace('/', "--"))),
        source: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!(
                "{repo_id} is not in the Hugging Face cache; on a machine with network run \
                 `huggingface-cli download {repo_id}` (set HF_HOME or HF_HUB_CACHE to choose the cache), \
                 or pass --model DIR with a checkpoint directory"
            ),
        ),
    })
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
        assert_eq!(cached_snapshot(cache.path(), "owner/model", "main").unwrap(), None, "no config.json yet");
        std::fs::write(snapshot.join("config.json"), "{}").unwrap();
        assert_eq!(cached_snapshot(cache.path(), "owner/model", "main").unwrap(), Some(snapshot.clone()));
        assert_eq!(cached_snapshot(cache.path(), "owner/model", "abc123").unwrap(), Some(snapshot));
        assert_eq!(cached_snapshot(cache.path(), "owner/other", "main").unwrap(), None);
        assert!(cached_snapshot(cache.path(), "no-slash", "main").is_err());
        assert!(cached_snapshot(cache.path(), "owner/model", "../x").is_err());
    }
}
