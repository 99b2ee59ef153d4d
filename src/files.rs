//! Reading untrusted files within bounds, and writing outputs so that a planted link
//! or a failure cannot clobber anything.
//!
//! A checkpoint directory and a source tree may come from whoever opened a pull
//! request. Every such file is read by [`read_untrusted`]: regular files only (a FIFO
//! or a device is refused without blocking on it), at most a limit per kind of file,
//! named in the error.
//!
//! `icd` writes reports into trees that pull requests control, and converted weights
//! into checkpoint directories that may be shared. An output is written to a fresh
//! temporary file beside its target and renamed into place once whole: a symbolic
//! link at the target is replaced, never written through; a failed write leaves the
//! target as it was and no partial file; and a target that is one of the command's
//! inputs is refused before anything is written.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Most bytes of a JSON configuration file (`config.json`, `tokenizer_config.json`):
/// the hub's are a few KiB.
pub const CONFIG_LIMIT: u64 = 1 << 20;

/// Most bytes of a tokenizer file (`tokenizer.json`, `vocab.json`, `merges.txt`):
/// RoBERTa's `tokenizer.json` is 2 MiB, the largest vocabularies' tens of MiB.
pub const TOKENIZER_LIMIT: u64 = 64 << 20;

/// Most bytes of a weight file: two billion parameters (the most `config.json` may
/// describe) in f64, with room for the header.
pub const WEIGHTS_LIMIT: u64 = 17 << 30;

/// Opens `path` for reading if it is a regular file (links followed) of at most
/// `limit` bytes, and returns it with its length; `kind` names the file in errors
/// ("config.json", "source file"). A FIFO is opened without blocking, then refused.
pub fn open_untrusted(path: &Path, limit: u64, kind: &str) -> Result<(std::fs::File, u64)> {
    open_checked(path, limit, kind, true)
}

/// [`open_untrusted`] with `follow_links` false: a symbolic link in `path`'s last
/// component is refused (on Unix), for a file a walk found as a regular file, which
/// may have been replaced by a link since.
fn open_checked(
    path: &Path,
    limit: u64,
    kind: &str,
    follow_links: bool,
) -> Result<(std::fs::File, u64)> {
    let io_error = |source: std::io::Error| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Opening a FIFO for reading would wait for a writer.
        let no_follow = if follow_links { 0 } else { libc::O_NOFOLLOW };
        options.custom_flags(libc::O_NONBLOCK | no_follow);
    }
    let file = match options.open(path) {
        Ok(file) => file,
        #[cfg(unix)]
        Err(e) if !follow_links && e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(Error::FileRefused {
                path: path.to_path_buf(),
                reason: format!("{kind} is a symbolic link (not followed)"),
            })
        }
        Err(e) => return Err(io_error(e)),
    };
    let meta = file.metadata().map_err(io_error)?;
    if !meta.is_file() {
        return Err(Error::FileRefused {
            path: path.to_path_buf(),
            reason: format!("{kind} is {}, not a regular file", file_type_name(&meta)),
        });
    }
    if meta.len() > limit {
        return Err(too_large(path, kind, meta.len(), limit));
    }
    Ok((file, meta.len()))
}

/// The bytes of `path`, a regular file of at most `limit` bytes (see
/// [`open_untrusted`]). A file that grows past the limit while read is refused too.
pub fn read_untrusted(path: &Path, limit: u64, kind: &str) -> Result<Vec<u8>> {
    read_opened(path, limit, kind, open_untrusted(path, limit, kind)?)
}

/// [`read_untrusted`] for a file a walk found: a symbolic link is refused rather than
/// followed, as the walk would have refused it.
pub fn read_untrusted_walked(path: &Path, limit: u64, kind: &str) -> Result<Vec<u8>> {
    read_opened(path, limit, kind, open_checked(path, limit, kind, false)?)
}

fn read_opened(
    path: &Path,
    limit: u64,
    kind: &str,
    (file, len): (std::fs::File, u64),
) -> Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if bytes.len() as u64 > limit {
        return Err(too_large(path, kind, bytes.len() as u64, limit));
    }
    Ok(bytes)
}

/// [`read_untrusted`] as UTF-8 text.
pub fn read_untrusted_text(path: &Path, limit: u64, kind: &str) -> Result<String> {
    String::from_utf8(read_untrusted(path, limit, kind)?).map_err(|e| Error::FileRefused {
        path: path.to_path_buf(),
        reason: format!(
            "{kind} is not UTF-8 (at byte {})",
            e.utf8_error().valid_up_to()
        ),
    })
}

fn too_large(path: &Path, kind: &str, size: u64, limit: u64) -> Error {
    Error::FileRefused {
        path: path.to_path_buf(),
        reason: format!("{kind} holds {size} bytes or more, past its limit of {limit} bytes"),
    }
}

/// "a directory", "a FIFO", ... for an error message.
fn file_type_name(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    "not a regular file"
}

/// Writes `target` whole or not at all. `write` fills the temporary file at the path
/// it is given (a new, empty file in `target`'s directory); the file is then synced
/// and renamed onto `target`, replacing what is there (a symbolic link itself, not
/// what it points to). A `target` that is a stream rather than a file (a character
/// device such as `/dev/stdout` or `/dev/null`, a FIFO, a socket; links followed)
/// is written to as it is, once the output is whole; a directory is refused. On any failure the temporary file is removed and `target` is
/// untouched. A `target` that is the same file as one of `inputs` (by device and
/// inode, links followed) is refused with [`Error::OutputIsInput`].
///
/// The new file gets the permissions of the regular file it replaces, else `0644`.
///
/// ```
/// use insecure_code_detector::files::write_atomically;
///
/// let dir = tempfile::tempdir()?;
/// let report = dir.path().join("report.txt");
/// write_atomically(&report, &[], |tmp| {
///     std::fs::write(tmp, "no findings\n").map_err(|source| insecure_code_detector::Error::Io {
///         path: tmp.to_path_buf(),
///         source,
///     })
/// })?;
/// assert_eq!(std::fs::read_to_string(&report)?, "no findings\n");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_atomically(
    target: &Path,
    inputs: &[&Path],
    write: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source: std::io::Error| Error::Io { path, source }
    };
    for input in inputs {
        if same_file(target, input) {
            return Err(Error::OutputIsInput {
                output: target.to_path_buf(),
                input: input.to_path_buf(),
            });
        }
    }
    // A stream named as the output (`/dev/stdout`, `/dev/null`, a FIFO, a terminal,
    // also through a link) is written to as it is: it is no file to clobber, and
    // renaming over it would put a regular file in its place.
    let stream = match std::fs::metadata(target) {
        Ok(meta) if meta.is_dir() => {
            return Err(Error::InvalidArgument {
                argument: "output",
                message: format!("{} is a directory", target.display()),
            })
        }
        Ok(meta) => !meta.is_file(),
        Err(_) => false,
    };
    let dir = match target.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = target
        .file_name()
        .ok_or_else(|| Error::InvalidArgument {
            argument: "output",
            message: format!("{} names no file", target.display()),
        })?
        .to_string_lossy()
        .into_owned();
    let temporary = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".partial")
        .tempfile_in(&dir)
        .map_err(io_error(&dir))?;
    write(temporary.path())?;
    if stream {
        let mut output = open_stream(target)?;
        let mut written =
            std::fs::File::open(temporary.path()).map_err(io_error(temporary.path()))?;
        std::io::copy(&mut written, &mut output).map_err(io_error(target))?;
        return Ok(());
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(temporary.path())
        .map_err(io_error(temporary.path()))?;
    file.sync_all().map_err(io_error(temporary.path()))?;
    set_permissions_like(target, temporary.path()).map_err(io_error(temporary.path()))?;
    temporary
        .persist(target)
        .map_err(|e| io_error(target)(e.error))?;
    Ok(())
}

/// How long a FIFO named as the output waits for a process to read it.
const FIFO_READER_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Opens a stream named as the output (links followed) for writing: a block device is
/// refused, being no place for a report, and a FIFO that no process reads is an error
/// after [`FIFO_READER_WAIT`], not a wait for ever.
fn open_stream(target: &Path) -> Result<std::fs::File> {
    let io_error = |source| Error::Io {
        path: target.to_path_buf(),
        source,
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
        use std::os::unix::io::AsRawFd;
        let kind = std::fs::metadata(target).map_err(io_error)?.file_type();
        if kind.is_block_device() {
            return Err(Error::InvalidArgument {
                argument: "output",
                message: format!(
                    "{} is a block device: reports go to files and streams, not disks",
                    target.display()
                ),
            });
        }
        if kind.is_fifo() {
            let started = std::time::Instant::now();
            loop {
                // Without a reader, a non-blocking open fails (ENXIO) instead of waiting.
                match std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(target)
                {
                    Ok(file) => {
                        // SAFETY: `file` owns this open descriptor for the duration of
                        // both calls; F_GETFL and F_SETFL take no pointers.
                        let blocking = unsafe {
                            let fd = file.as_raw_fd();
                            let flags = libc::fcntl(fd, libc::F_GETFL);
                            flags >= 0
                                && libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) == 0
                        };
                        if !blocking {
                            return Err(io_error(std::io::Error::last_os_error()));
                        }
                        return Ok(file);
                    }
                    Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                        if started.elapsed() >= FIFO_READER_WAIT {
                            return Err(Error::InvalidArgument {
                                argument: "output",
                                message: format!(
                                    "{} is a FIFO that no process reads (waited {} s)",
                                    target.display(),
                                    FIFO_READER_WAIT.as_secs()
                                ),
                            });
                        }
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                    Err(e) => return Err(io_error(e)),
                }
            }
        }
    }
    std::fs::OpenOptions::new()
        .write(true)
        .open(target)
        .map_err(io_error)
}

/// True when both paths name one existing file (links followed; hard links are one
/// file).
pub fn same_file(a: &Path, b: &Path) -> bool {
    let (Ok(a), Ok(b)) = (std::fs::metadata(a), std::fs::metadata(b)) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        a.dev() == b.dev() && a.ino() == b.ino()
    }
    #[cfg(not(unix))]
    {
        let _ = (a, b);
        false
    }
}

/// Gives `temporary` the permissions of the regular file at `target` (not of what a
/// link there points to), else `0644` (the temporary file starts as `0600`).
fn set_permissions_like(target: &Path, temporary: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(target) {
        Ok(meta) if meta.is_file() => std::fs::set_permissions(temporary, meta.permissions()),
        _ => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(temporary, std::fs::Permissions::from_mode(0o644))
            }
            #[cfg(not(unix))]
            Ok(())
        }
    }
}

/// A path's name as text, one text per path: a name in UTF-8 is itself, unless it holds
/// `\x`; otherwise each byte of an invalid sequence is written `\xHH` and each backslash
/// `\\`. Two names that differ only in bytes that are not UTF-8 stay two names (where
/// [`Path::display`] makes both `\u{fffd}`), every real name is unchanged, and
/// [`path_bytes`] reads the text back.
pub fn path_text(path: &Path) -> std::borrow::Cow<'_, str> {
    let bytes = path_as_bytes(path);
    match std::str::from_utf8(bytes) {
        Ok(text) if !text.contains("\\x") => text.into(),
        _ => {
            let mut text = String::with_capacity(bytes.len() + 8);
            for chunk in bytes.utf8_chunks() {
                text.push_str(&chunk.valid().replace('\\', "\\\\"));
                for byte in chunk.invalid() {
                    text.push_str(&format!("\\x{byte:02x}"));
                }
            }
            text.into()
        }
    }
}

/// The bytes of the name [`path_text`] wrote.
pub fn path_bytes(text: &str) -> Vec<u8> {
    if !text.contains("\\x") {
        return text.as_bytes().to_vec();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'\\').then(|| bytes.get(i + 1)).flatten();
        match (escaped, escaped_byte(bytes, i)) {
            (Some(b'\\'), _) => {
                out.push(b'\\');
                i += 2;
            }
            (Some(b'x'), Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

/// The byte that `\xHH` at `at` in `text` stands for, as [`path_text`] writes it: two
/// lowercase hex digits.
pub(crate) fn escaped_byte(text: &[u8], at: usize) -> Option<u8> {
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    match text.get(at..at + 4)? {
        [b'\\', b'x', high, low] => Some(digit(*high)? << 4 | digit(*low)?),
        _ => None,
    }
}

/// The path whose name [`path_text`] wrote.
pub fn path_from_text(text: &str) -> PathBuf {
    path_from_bytes(&path_bytes(text))
}

#[cfg(unix)]
fn path_as_bytes(path: &Path) -> &[u8] {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str().as_bytes()
}

#[cfg(not(unix))]
fn path_as_bytes(path: &Path) -> &[u8] {
    path.as_os_str().as_encoded_bytes()
}

/// A path from the bytes a program printed for it (`git ls-files -z`, `git diff`): any
/// bytes on Unix, UTF-8 (invalid sequences replaced) elsewhere.
#[cfg(unix)]
pub fn path_from_bytes(bytes: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
}

/// This library's cache directory, where converted checkpoints, the prediction cache
/// and CUDA's compiled kernels are kept: `$ICD_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/insecure-code-detector`, else `~/.cache/insecure-code-detector`.
pub fn cache_dir() -> Option<PathBuf> {
    env_path("ICD_CACHE_DIR")
        .or_else(|| env_path("XDG_CACHE_HOME").map(|dir| dir.join("insecure-code-detector")))
        .or_else(|| env_path("HOME").map(|home| home.join(".cache/insecure-code-detector")))
}

/// The environment variable `name` as a path, where it is set and not empty.
pub(crate) fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// A path from the bytes a program printed for it (`git ls-files -z`, `git diff`): any
/// bytes on Unix, UTF-8 (invalid sequences replaced) elsewhere.
#[cfg(not(unix))]
pub fn path_from_bytes(bytes: &[u8]) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(unix)]
    fn path_texts_tell_every_name_apart_and_read_back() {
        let names: [&[u8]; 7] = [
            b"a.c",
            b"caf\xc3\xa9.c",
            b"a\xff.c",
            b"a\xfe.c",
            b"a\\xff.c",
            b"a\\b.c",
            b"a\\x\xff\\\\.c",
        ];
        let texts: Vec<String> = names
            .iter()
            .map(|n| path_text(&path_from_bytes(n)).into_owned())
            .collect();
        assert_eq!(texts[..4], ["a.c", "caf\u{e9}.c", "a\\xff.c", "a\\xfe.c"]);
        // A real name is itself unless it holds `\x`.
        assert_eq!(texts[5], "a\\b.c");
        assert_eq!(texts[4], "a\\\\xff.c");
        let distinct: std::collections::BTreeSet<&String> = texts.iter().collect();
        assert_eq!(distinct.len(), names.len(), "{texts:?}");
        for (name, text) in names.iter().zip(&texts) {
            assert_eq!(path_bytes(text), *name, "{text}");
        }
    }

    #[test]
    fn untrusted_reads_take_regular_files_within_their_limit() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.json");
        std::fs::write(&file, "{}").unwrap();
        assert_eq!(read_untrusted(&file, 2, "config.json").unwrap(), b"{}");
        let error = read_untrusted(&file, 1, "config.json")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("config.json holds 2 bytes") && error.contains("limit of 1"),
            "{error}"
        );
        let error = read_untrusted(dir.path(), 10, "config.json")
            .unwrap_err()
            .to_string();
        assert!(error.contains("is a directory"), "{error}");
        std::fs::write(&file, [0xff, 0xfe]).unwrap();
        let error = read_untrusted_text(&file, 10, "config.json")
            .unwrap_err()
            .to_string();
        assert!(error.contains("not UTF-8"), "{error}");
    }

    #[cfg(unix)]
    #[test]
    fn devices_and_fifos_are_refused_without_blocking() {
        let error = read_untrusted(Path::new("/dev/zero"), 1 << 20, "config.json")
            .unwrap_err()
            .to_string();
        assert!(error.contains("a character device"), "{error}");
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let error = read_untrusted(&fifo, 10, "config.json")
            .unwrap_err()
            .to_string();
        assert!(error.contains("a FIFO"), "{error}");
    }

    fn write_text(text: &'static str) -> impl FnOnce(&Path) -> Result<()> {
        move |tmp| {
            std::fs::write(tmp, text).map_err(|source| Error::Io {
                path: tmp.to_path_buf(),
                source,
            })
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_link_at_the_target_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let target = dir.path().join("report.sarif");
        std::os::unix::fs::symlink(&victim, &target).unwrap();
        write_atomically(&target, &[], write_text("report")).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert!(!std::fs::symlink_metadata(&target).unwrap().is_symlink());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "report");
    }

    #[test]
    fn a_failed_write_leaves_the_target_and_no_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.txt");
        std::fs::write(&target, "old").unwrap();
        let result = write_atomically(&target, &[], |tmp| {
            std::fs::write(tmp, "half").unwrap();
            Err(Error::Inference("disk full".into()))
        });
        assert!(result.is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "old");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["out.txt"]);
    }

    #[test]
    fn an_input_is_never_written_over() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("pytorch_model.bin");
        std::fs::write(&input, "weights").unwrap();
        let error = write_atomically(&input, &[&input], write_text("x")).unwrap_err();
        assert!(matches!(error, Error::OutputIsInput { .. }), "{error}");
        assert!(error.to_string().contains("pytorch_model.bin"), "{error}");
        #[cfg(unix)]
        {
            // Nor through a link to it.
            let link = dir.path().join("model.safetensors");
            std::os::unix::fs::symlink(&input, &link).unwrap();
            let error = write_atomically(&link, &[&input], write_text("x")).unwrap_err();
            assert!(matches!(error, Error::OutputIsInput { .. }), "{error}");
        }
        assert_eq!(std::fs::read_to_string(&input).unwrap(), "weights");
    }

    #[cfg(unix)]
    #[test]
    fn streams_are_written_to_and_stay_streams() {
        let dir = tempfile::tempdir().unwrap();
        let null = dir.path().join("null");
        std::os::unix::fs::symlink("/dev/null", &null).unwrap();
        write_atomically(&null, &[], write_text("gone")).unwrap();
        assert!(std::fs::symlink_metadata(&null).unwrap().is_symlink());
        write_atomically(Path::new("/dev/null"), &[], write_text("gone")).unwrap();
        use std::os::unix::fs::FileTypeExt;
        assert!(std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device());
        // A FIFO gets the bytes, read at its other end.
        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
        };
        write_atomically(&fifo, &[], write_text("through the pipe")).unwrap();
        assert_eq!(reader.join().unwrap(), "through the pipe");
        assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
        // A FIFO nobody reads, even through a link: an error, not a wait for ever.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&fifo, &link).unwrap();
        let started = std::time::Instant::now();
        let error = write_atomically(&link, &[], write_text("x")).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("is a FIFO that no process reads"),
            "{error}"
        );
        assert!(started.elapsed() < FIFO_READER_WAIT * 2);
        std::fs::remove_file(&link).unwrap();
        // A block device, where the machine has one: refused.
        let block = std::fs::read_dir("/dev").unwrap().flatten().find(|e| {
            use std::os::unix::fs::FileTypeExt;
            e.file_type().is_ok_and(|t| t.is_block_device())
        });
        match block {
            Some(device) => {
                std::os::unix::fs::symlink(device.path(), &link).unwrap();
                let error = write_atomically(&link, &[], write_text("x")).unwrap_err();
                assert!(error.to_string().contains("is a block device"), "{error}");
                std::fs::remove_file(&link).unwrap();
            }
            None => eprintln!("SKIPPING the block device case: no block device in /dev"),
        }
        let error = write_atomically(dir.path(), &[], write_text("x")).unwrap_err();
        assert!(error.to_string().contains("is a directory"), "{error}");
        // Nothing left behind.
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["fifo", "null"]);
    }

    #[cfg(unix)]
    #[test]
    fn permissions_follow_the_replaced_file_else_0644() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("fresh");
        write_atomically(&fresh, &[], write_text("a")).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&fresh), 0o644);
        std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(0o600)).unwrap();
        write_atomically(&fresh, &[], write_text("b")).unwrap();
        assert_eq!(mode(&fresh), 0o600);
    }
}
