//! The prediction cache: what a detector said of a function's text, kept on disk and
//! keyed by everything that decides it, so that a rescan of unchanged code makes no
//! model call.
//!
//! One SQLite file, [`FILE_NAME`] in the cache directory, in write-ahead-log mode:
//! several processes read and write it at once, each write is one transaction, and a
//! process that dies mid-write leaves the last committed state. SQLite rather than a
//! single-writer store because a CI machine runs several `icd` at once on one cache,
//! and a second process must neither wait for the first to finish nor fail to open the
//! file. A file that is damaged (not a database, a failed integrity check, another
//! program's or version's layout, a link or a device in its place) is deleted and made
//! anew, with a warning, under a lock so that two processes never both do it: the
//! cache holds nothing that cannot be computed again. A directory in its place is an
//! error (nothing under it is deleted).
//!
//! A key is the SHA-256 of
//! - the model's key ([`PredictionCache::model_key`]): this crate's version, the digest
//!   of each file the detector reads ([`DetectorBuilder::checkpoint_files`]: config,
//!   weights, tokenizer) and the settings that decide its results
//!   ([`DetectorBuilder::settings`]: backend, execution plan, precision, preprocessing,
//!   token limit);
//! - the request (`predict`, `explain`, `windows stride=255`, ...), chosen by the
//!   caller, which also chooses what the stored value is;
//! - the function's text.
//!
//! A weight file is hashed once and its digest remembered by path, size, modification
//! and change times, inode and device, so that a model of 500 MB is not read again on
//! each run.
//!
//! The number of entries is bounded: past the bound, the least recently used go.
//!
//! ```no_run
//! use insecure_code_detector::cache::{CacheKey, PredictionCache};
//! use insecure_code_detector::Detector;
//!
//! let builder = Detector::builder("models/codebert-insecure");
//! let (mut cache, _warning) = PredictionCache::open("/tmp/icd-cache".as_ref(), 100_000)?;
//! let model = cache.model_key(&builder)?;
//! let code = "int f(int *a, int i) { return a[i]; }";
//! let key = CacheKey::new(&model, "predict", code);
//! let probability: f32 = match cache.get(&[key])?.remove(0) {
//!     Some(bytes) => serde_json::from_slice(&bytes).unwrap(),
//!     None => {
//!         let p = builder.build()?.predict(code)?.insecure_probability;
//!         cache.put(&model, &[(key, serde_json::to_vec(&p).unwrap())])?;
//!         p
//!     }
//! };
//! # Ok::<(), insecure_code_detector::Error>(())
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior};
use sha2::{Digest, Sha256};

use crate::detector::DetectorBuilder;
use crate::error::{Error, Result};

mod stored;

pub use stored::{Restored, StoredClassification, PREDICT_REQUEST};

/// The cache's file in its directory.
pub const FILE_NAME: &str = "predictions.sqlite3";

/// Held while a process checks (and where need be remakes) the cache file.
const LOCK_FILE_NAME: &str = "predictions.lock";

/// Entries kept by default: about 30 MB of predictions.
pub const DEFAULT_MAX_ENTRIES: u64 = 100_000;

/// The layout of the tables (`PRAGMA user_version`); a file with another is made anew.
const SCHEMA_VERSION: i64 = 1;

/// `PRAGMA application_id` of this cache's files ("ICDc"): a database of another
/// program's with the same `user_version` is not taken for one.
const APPLICATION_ID: i64 = 0x4943_4463;

/// The tables and index of a cache file, as this version makes them.
const SCHEMA: &str = "\
CREATE TABLE IF NOT EXISTS predictions (
    key BLOB PRIMARY KEY, model BLOB NOT NULL, value BLOB NOT NULL,
    used INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS predictions_by_use ON predictions (used);
CREATE TABLE IF NOT EXISTS files (
    path BLOB PRIMARY KEY, stat BLOB NOT NULL, digest BLOB NOT NULL
) WITHOUT ROWID;";

/// Every schema object of a database: type, name and SQL (whitespace collapsed), in
/// type and name order.
fn schema_objects(conn: &Connection) -> rusqlite::Result<Vec<(String, String, Option<String>)>> {
    let mut select = conn.prepare("SELECT type, name, sql FROM sqlite_master ORDER BY type, name")?;
    let rows = select.query_map([], |r| {
        let sql: Option<String> = r.get(2)?;
        let sql = sql.map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "));
        Ok((r.get(0)?, r.get(1)?, sql))
    })?;
    rows.collect()
}

/// [`schema_objects`] of a database made with [`SCHEMA`] alone.
fn expected_schema_objects() -> rusqlite::Result<Vec<(String, String, Option<String>)>> {
    let conn = Connection::open_in_memory()?;
    conn.execute_batch(SCHEMA)?;
    schema_objects(&conn)
}

/// How long a process waits for another's write to finish before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// The identity of a detector's results: which model, read how (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ModelKey([u8; 32]);

/// The key of one cached result: a model, a request and a function's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey([u8; 32]);

impl CacheKey {
    /// The key of what `model` gives for `request` (a name the caller chooses for the
    /// kind of result it stores) on `text`.
    pub fn new(model: &ModelKey, request: &str, text: &str) -> Self {
        let mut hash = Sha256::new();
        hash.update(model.0);
        // Lengths first, so that no two (request, text) pairs hash the same bytes.
        hash.update((request.len() as u64).to_le_bytes());
        hash.update(request.as_bytes());
        hash.update((text.len() as u64).to_le_bytes());
        hash.update(text.as_bytes());
        CacheKey(hash.finalize().into())
    }
}

/// What [`PredictionCache::stats`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheStats {
    /// The cache file.
    pub path: PathBuf,
    /// Results stored.
    pub entries: u64,
    /// Distinct model keys among them (a model under two precisions counts twice).
    pub models: u64,
    /// Weight and tokenizer files whose digest is remembered.
    pub files: u64,
    /// Bytes on disk: the database and its write-ahead log.
    pub bytes: u64,
    /// The bound on `entries`.
    pub max_entries: u64,
}

/// An open prediction cache (see the module docs). One per thread: open another for
/// another thread or process; they share the file safely.
#[derive(Debug)]
pub struct PredictionCache {
    conn: Connection,
    path: PathBuf,
    max_entries: u64,
}

/// Why a store could not be used: it is damaged (and is made anew), or something
/// else failed (reported).
enum OpenFailure {
    Damaged(String),
    Other(String),
}

impl From<rusqlite::Error> for OpenFailure {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
                OpenFailure::Damaged(e.to_string())
            }
            _ => OpenFailure::Other(e.to_string()),
        }
    }
}

impl PredictionCache {
    /// The default cache directory: `$ICD_CACHE_DIR`, else
    /// `$XDG_CACHE_HOME/insecure-code-detector`, else `~/.cache/insecure-code-detector`
    /// (where converted hub checkpoints are kept too).
    pub fn default_dir() -> Option<PathBuf> {
        crate::files::cache_dir()
    }

    /// Opens (or creates) the cache in `dir`, keeping at most `max_entries` results.
    /// A damaged file is deleted and made anew: the second value is then the warning
    /// to show.
    pub fn open(dir: &Path, max_entries: u64) -> Result<(Self, Option<String>)> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(FILE_NAME);
        // One process at a time checks the file and, where need be, makes it anew, so
        // that two never both delete it. Where the lock file cannot be made (a
        // read-only directory), nothing can be made anew either, and none is taken.
        let lock = open_lock_file(&dir.join(LOCK_FILE_NAME));
        if let Some(lock) = &lock {
            let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
            loop {
                match lock.try_lock() {
                    Ok(()) => break,
                    Err(std::fs::TryLockError::WouldBlock)
                        if std::time::Instant::now() < deadline =>
                    {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    Err(e) => return Err(cache_error(&path, format!("cannot lock it: {e}"))),
                }
            }
        }
        match Self::open_checked(&path, max_entries) {
            Ok(cache) => Ok((cache, None)),
            Err(OpenFailure::Damaged(why)) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut file = path.clone().into_os_string();
                    file.push(suffix);
                    match std::fs::remove_file(&file) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                            return Err(cache_error(&path, format!("damaged ({why}), and {e}")))
                        }
                        _ => {}
                    }
                }
                let cache = Self::open_checked(&path, max_entries).map_err(|f| match f {
                    OpenFailure::Damaged(why) | OpenFailure::Other(why) => cache_error(&path, why),
                })?;
                let warning = format!(
                    "the prediction cache {} was damaged ({why}); it was made anew",
                    path.display()
                );
                Ok((cache, Some(warning)))
            }
            Err(OpenFailure::Other(why)) => Err(cache_error(&path, why)),
        }
    }

    fn open_checked(path: &Path, max_entries: u64) -> Result<Self, OpenFailure> {
        // A link or device in its place is not this cache's file: it is replaced,
        // never followed (the link's target is never written). A directory there fails
        // to be removed, and the cache is not used.
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_file() {
                return Err(OpenFailure::Damaged("not a regular file".to_owned()));
            }
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::default() | OpenFlags::SQLITE_OPEN_NOFOLLOW,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // Reading the header is where a file that is not a database shows.
        let mode: String =
            retry_busy(|| conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(OpenFailure::Other(format!(
                "cannot turn on write-ahead logging (journal_mode stays {mode})"
            )));
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let check: String = retry_busy(|| conn.query_row("PRAGMA quick_check", [], |r| r.get(0)))?;
        if check != "ok" {
            return Err(OpenFailure::Damaged(check));
        }
        // The layout is this version's when `application_id` and `user_version` say
        // so; a new file (no schema objects at all) is given both; anything else is
        // another program's or another version's file.
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let application: i64 = conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
        let objects: i64 =
            conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
        match (application, version, objects) {
            // Only the objects this version makes: a trigger or view planted in the
            // file could rewrite results as they are written or read.
            (APPLICATION_ID, SCHEMA_VERSION, _) => {
                let (found, expected) = (schema_objects(&conn)?, expected_schema_objects()?);
                if found != expected {
                    // Named: what is there and should not be, and what is changed or
                    // missing.
                    let foreign: Vec<String> = found
                        .iter()
                        .filter(|o| !expected.contains(o))
                        .map(|(kind, name, _)| format!("{kind} {name}"))
                        .chain(
                            expected
                                .iter()
                                .filter(|o| !found.contains(o))
                                .map(|(kind, name, _)| format!("no {kind} {name} as made")),
                        )
                        .collect();
                    return Err(OpenFailure::Damaged(format!(
                        "schema objects other than this version's: {}",
                        foreign.join(", ")
                    )));
                }
            }
            (0, 0, 0) => retry_busy(|| {
                conn.execute_batch(&format!(
                    "BEGIN IMMEDIATE;
                     {SCHEMA}
                     PRAGMA user_version = {SCHEMA_VERSION};
                     PRAGMA application_id = {APPLICATION_ID};
                     COMMIT;"
                ))
            })?,
            _ => {
                return Err(OpenFailure::Damaged(format!(
                    "not this version's layout: application_id {application:#x}, user_version \
                     {version}, {objects} schema objects; this version writes application_id \
                     {APPLICATION_ID:#x}, user_version {SCHEMA_VERSION}"
                )))
            }
        }
        Ok(Self {
            conn,
            path: path.to_path_buf(),
            max_entries: max_entries.max(1),
        })
    }

    /// The cache file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The key of the results of the detector `builder` would build, from its files'
    /// digests and its settings, without loading it.
    pub fn model_key(&mut self, builder: &DetectorBuilder) -> Result<ModelKey> {
        let mut hash = Sha256::new();
        hash.update(concat!(
            "insecure-code-detector ",
            env!("CARGO_PKG_VERSION"),
            "\n"
        ));
        for file in builder.checkpoint_files()? {
            let name = file.file_name().unwrap_or_default().to_string_lossy();
            hash.update(format!("{name}\n"));
            hash.update(self.file_digest(&file)?);
        }
        hash.update(builder.settings()?);
        Ok(ModelKey(hash.finalize().into()))
    }

    /// The SHA-256 of a file's contents, remembered by its path and metadata.
    pub fn file_digest(&mut self, path: &Path) -> Result<[u8; 32]> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let canonical = std::fs::canonicalize(path).map_err(io)?;
        let before = file_stat(&canonical).map_err(io)?;
        let name = canonical.as_os_str().as_encoded_bytes();
        let remembered: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT digest FROM files WHERE path = ?1 AND stat = ?2",
                params![name, before],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.error(e))?;
        if let Some(digest) = remembered.and_then(|d| <[u8; 32]>::try_from(d).ok()) {
            return Ok(digest);
        }
        // As at load: a FIFO or device is refused at once, not waited on or read
        // forever.
        use std::io::Read;
        let (file, _) = crate::files::open_untrusted(
            &canonical,
            crate::files::WEIGHTS_LIMIT,
            "checkpoint file",
        )?;
        let mut hash = Sha256::new();
        std::io::copy(&mut file.take(crate::files::WEIGHTS_LIMIT), &mut hash).map_err(io)?;
        let digest: [u8; 32] = hash.finalize().into();
        // A file that changed while it was read is not remembered.
        if file_stat(&canonical).map_err(io)? == before {
            self.write(|conn| {
                conn.execute(
                    "INSERT OR REPLACE INTO files VALUES (?1, ?2, ?3)",
                    params![name, before, digest],
                )
                .map(drop)
            })?;
        }
        Ok(digest)
    }

    /// The stored values of `keys`, in order (`None` where there is none). Marks the
    /// ones found as used now, where the file can be written (a read-only cache still
    /// answers).
    pub fn get(&mut self, keys: &[CacheKey]) -> Result<Vec<Option<Vec<u8>>>> {
        let values = {
            // One read transaction: one consistent state, no writer waited for.
            let tx = self
                .conn
                .unchecked_transaction()
                .map_err(|e| self.error(e))?;
            let mut select = tx
                .prepare("SELECT value FROM predictions WHERE key = ?1")
                .map_err(|e| self.error(e))?;
            let mut values = Vec::with_capacity(keys.len());
            for key in keys {
                let value: Option<Vec<u8>> = select
                    .query_row([&key.0[..]], |r| r.get(0))
                    .optional()
                    .map_err(|e| self.error(e))?;
                values.push(value);
            }
            values
        };
        let now = now();
        let found: Vec<&CacheKey> = keys
            .iter()
            .zip(&values)
            .filter_map(|(key, value)| value.as_ref().map(|_| key))
            .collect();
        if !found.is_empty() {
            // Eviction order only: a cache that cannot record it still serves.
            let _ = self.write(|conn| {
                let mut touch = conn.prepare("UPDATE predictions SET used = ?2 WHERE key = ?1")?;
                for key in found {
                    touch.execute(params![&key.0[..], now])?;
                }
                Ok(())
            });
        }
        Ok(values)
    }

    /// Stores `entries` (key, value) of `model`, replacing any under the same keys,
    /// then drops the least recently used entries past the bound.
    pub fn put(&mut self, model: &ModelKey, entries: &[(CacheKey, Vec<u8>)]) -> Result<()> {
        let now = now();
        let max = self.max_entries;
        self.write(|conn| {
            let mut insert =
                conn.prepare("INSERT OR REPLACE INTO predictions VALUES (?1, ?2, ?3, ?4)")?;
            for (key, value) in entries {
                insert.execute(params![&key.0[..], &model.0[..], value, now])?;
            }
            let count: i64 =
                conn.query_row("SELECT count(*) FROM predictions", [], |r| r.get(0))?;
            let count = count as u64;
            if count > max {
                conn.execute(
                    "DELETE FROM predictions WHERE key IN \
                     (SELECT key FROM predictions ORDER BY used LIMIT ?1)",
                    [(count - max) as i64],
                )?;
            }
            Ok(())
        })
    }

    /// What the cache holds.
    pub fn stats(&self) -> Result<CacheStats> {
        let count = |sql: &str| -> Result<u64> {
            self.conn
                .query_row(sql, [], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
                .map_err(|e| self.error(e))
        };
        let size = |suffix: &str| {
            let mut file = self.path.clone().into_os_string();
            file.push(suffix);
            std::fs::metadata(file).map(|m| m.len()).unwrap_or(0)
        };
        Ok(CacheStats {
            path: self.path.clone(),
            entries: count("SELECT count(*) FROM predictions")?,
            models: count("SELECT count(DISTINCT model) FROM predictions")?,
            files: count("SELECT count(*) FROM files")?,
            bytes: size("") + size("-wal"),
            max_entries: self.max_entries,
        })
    }

    /// Removes every entry and remembered digest, and gives the space back; returns how
    /// many entries there were.
    pub fn clear(&mut self) -> Result<u64> {
        let removed = self.write(|conn| {
            let n = conn.execute("DELETE FROM predictions", [])?;
            conn.execute("DELETE FROM files", [])?;
            Ok(n as u64)
        })?;
        self.conn
            .execute_batch("VACUUM; PRAGMA wal_checkpoint(TRUNCATE);")
            .map_err(|e| self.error(e))?;
        Ok(removed)
    }

    /// Runs `f` in one write transaction, taken at its start so that two processes
    /// never both read and then both try to write.
    fn write<T>(&mut self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let path = self.path.clone();
        let failed = |e: rusqlite::Error| cache_error(&path, e.to_string());
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(failed)?;
        let value = f(&tx).map_err(failed)?;
        tx.commit().map_err(failed)?;
        Ok(value)
    }

    fn error(&self, e: rusqlite::Error) -> Error {
        cache_error(&self.path, e.to_string())
    }
}

fn cache_error(path: &Path, message: String) -> Error {
    Error::Cache {
        path: path.to_path_buf(),
        message,
    }
}

/// The lock file, opened without following a link in its place (whose target would
/// be created or written); `None` where it cannot be opened.
fn open_lock_file(path: &Path) -> Option<std::fs::File> {
    let mut options = std::fs::File::options();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW);
    }
    options.open(path).ok()
}

/// Retries `f` while another process holds a lock that the busy timeout does not
/// cover (SQLite gives up at once on some, such as switching to WAL mode).
fn retry_busy<T>(mut f: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let mut tries = 0;
    loop {
        match f() {
            Err(e)
                if tries < 200
                    && matches!(
                        e.sqlite_error_code(),
                        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
                    ) =>
            {
                tries += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// Size, times, inode and device: what changes when a file's contents may have.
fn file_stat(path: &Path) -> std::io::Result<Vec<u8>> {
    let meta = std::fs::metadata(path)?;
    let mut stat = meta.len().to_le_bytes().to_vec();
    let nanos = |t: std::io::Result<SystemTime>| {
        t.ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos())
    };
    stat.extend(nanos(meta.modified()).to_le_bytes());
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        for field in [
            meta.ctime() as u64,
            meta.ctime_nsec() as u64,
            meta.ino(),
            meta.dev(),
        ] {
            stat.extend(field.to_le_bytes());
        }
    }
    Ok(stat)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(n: u8) -> ModelKey {
        ModelKey([n; 32])
    }

    #[test]
    fn values_come_back_by_key_and_persist_across_opens() {
        let dir = tempfile::tempdir().unwrap();
        let (mut cache, warning) = PredictionCache::open(dir.path(), 10).unwrap();
        assert_eq!(warning, None);
        let a = CacheKey::new(&model(1), "predict", "int f(void) { return 0; }");
        let b = CacheKey::new(&model(2), "predict", "int f(void) { return 0; }");
        let c = CacheKey::new(&model(1), "explain", "int f(void) { return 0; }");
        assert_ne!(a, b);
        assert_ne!(a, c);
        cache.put(&model(1), &[(a, b"one".to_vec())]).unwrap();
        assert_eq!(
            cache.get(&[a, b, c]).unwrap(),
            vec![Some(b"one".to_vec()), None, None]
        );
        drop(cache);
        let (mut again, warning) = PredictionCache::open(dir.path(), 10).unwrap();
        assert_eq!(warning, None);
        assert_eq!(again.get(&[a]).unwrap(), vec![Some(b"one".to_vec())]);
        let stats = again.stats().unwrap();
        assert_eq!((stats.entries, stats.models, stats.max_entries), (1, 1, 10));
        assert_eq!(again.clear().unwrap(), 1);
        assert_eq!(again.get(&[a]).unwrap(), vec![None]);
    }

    #[test]
    fn the_least_recently_used_entries_go_past_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let (mut cache, _) = PredictionCache::open(dir.path(), 3).unwrap();
        let keys: Vec<CacheKey> = (0..5)
            .map(|i| CacheKey::new(&model(1), "predict", &format!("f{i}")))
            .collect();
        for key in &keys[..3] {
            cache.put(&model(1), &[(*key, vec![1])]).unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
        // Using the first makes the second the least recently used.
        assert!(cache.get(&keys[..1]).unwrap()[0].is_some());
        std::thread::sleep(Duration::from_millis(2));
        cache.put(&model(1), &[(keys[3], vec![1])]).unwrap();
        let found: Vec<bool> = cache
            .get(&keys[..4])
            .unwrap()
            .iter()
            .map(Option::is_some)
            .collect();
        assert_eq!(found, [true, false, true, true]);
        assert_eq!(cache.stats().unwrap().entries, 3);
    }

    #[test]
    fn a_file_that_is_not_a_database_is_made_anew_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), vec![0x5a; 10_000]).unwrap();
        let (mut cache, warning) = PredictionCache::open(dir.path(), 10).unwrap();
        let warning = warning.expect("a warning");
        assert!(
            warning.contains(FILE_NAME) && warning.contains("made anew"),
            "{warning}"
        );
        let key = CacheKey::new(&model(1), "predict", "x");
        cache.put(&model(1), &[(key, vec![7])]).unwrap();
        assert_eq!(cache.get(&[key]).unwrap(), vec![Some(vec![7])]);
    }

    #[test]
    fn a_file_digest_is_remembered_until_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let (mut cache, _) = PredictionCache::open(&dir.path().join("cache"), 10).unwrap();
        let file = dir.path().join("weights");
        std::fs::write(&file, b"first").unwrap();
        let first = cache.file_digest(&file).unwrap();
        assert_eq!(first, <[u8; 32]>::from(Sha256::digest(b"first")));
        assert_eq!(cache.stats().unwrap().files, 1);
        assert_eq!(cache.file_digest(&file).unwrap(), first);
        std::fs::write(&file, b"second, longer").unwrap();
        assert_eq!(
            cache.file_digest(&file).unwrap(),
            <[u8; 32]>::from(Sha256::digest(b"second, longer"))
        );
    }
}
