//! `icd cache stats` and `icd cache clear`.

use insecure_code_detector::cache::{self, PredictionCache};
use insecure_code_detector::report::{printable, printable_path};

use crate::flags::CacheAction;
use crate::Failure;

/// `icd cache stats` and `icd cache clear`.
pub fn run(action: &CacheAction) -> Result<(), Failure> {
    let dir = PredictionCache::default_dir()
        .ok_or_else(|| Failure("no cache directory: set ICD_CACHE_DIR".to_owned()))?;
    let (mut store, warning) = PredictionCache::open(&dir, cache::DEFAULT_MAX_ENTRIES)?;
    if let Some(warning) = warning {
        eprintln!("icd: warning: {}", printable(&warning));
    }
    let path = printable_path(store.path()).into_owned();
    match action {
        CacheAction::Stats => {
            let stats = store.stats()?;
            println!("cache: {path}");
            println!("entries: {}", stats.entries);
            println!("models: {}", stats.models);
            println!("remembered file digests: {}", stats.files);
            println!(
                "size: {} bytes ({:.1} MiB)",
                stats.bytes,
                stats.bytes as f64 / (1 << 20) as f64
            );
        }
        CacheAction::Clear => {
            let removed = store.clear()?;
            println!("removed {removed} entries from {path}");
        }
    }
    Ok(())
}
