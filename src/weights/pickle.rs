//! Refuses PyTorch checkpoints whose pickle names anything beyond plain tensors.
//!
//! A `pytorch_model.bin` is a pickle: a program for Python's unpickler, which may call
//! any importable function (`os.system`, say) through its GLOBAL, STACK_GLOBAL and
//! INST opcodes. burn-store's reader never calls them, but it does skip them quietly,
//! so a hostile or foreign file would surface as a "missing tensor" far from the
//! cause. This scan walks every opcode of every pickle in the file before it is read
//! and refuses, by name, any global outside the short list that `torch.save` of a
//! state dict uses.

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// What a state dict saved by `torch.save` may reference.
const ALLOWED_GLOBALS: &[(&str, &str)] = &[
    ("collections", "OrderedDict"),
    ("torch._utils", "_rebuild_tensor"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch", "FloatStorage"),
    ("torch", "HalfStorage"),
    ("torch", "BFloat16Storage"),
    ("torch", "DoubleStorage"),
    ("torch", "LongStorage"),
    ("torch", "IntStorage"),
    ("torch", "ShortStorage"),
    ("torch", "CharStorage"),
    ("torch", "ByteStorage"),
    ("torch", "BoolStorage"),
];

/// A pickle larger than this is not a state dict's index (tensor data lives outside
/// it); the reader's own limit on `data.pkl`. Decompression stops there whatever the
/// archive declares.
const MAX_PICKLE_BYTES: u64 = 100 << 20;

/// Where the legacy format's magic number is looked for, and how it is spelled: the
/// reader's (`pytorch-reader`) detection, mirrored so that this check sees a file as
/// the reader will.
const LEGACY_MAGIC_SEARCH: usize = 64;
const LEGACY_MAGIC_BYTES: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
const LEGACY_MAGIC_TEXT: &[u8] = b"119547037146038801333356";
const TAR_MAGIC_OFFSET: usize = 257;

/// The formats burn-store's PyTorch reader tells apart, by the same rules.
#[derive(Debug, PartialEq)]
enum Format {
    Zip,
    Tar,
    Legacy,
    Pickle,
    Unknown,
}

fn detect_format(header: &[u8]) -> Format {
    let window = &header[..header.len().min(LEGACY_MAGIC_SEARCH)];
    let legacy = window
        .windows(LEGACY_MAGIC_BYTES.len())
        .any(|w| w == LEGACY_MAGIC_BYTES)
        || window
            .windows(LEGACY_MAGIC_TEXT.len())
            .any(|w| w == LEGACY_MAGIC_TEXT);
    if header.starts_with(b"PK\x03\x04") || header.starts_with(b"PK\x05\x06") {
        Format::Zip
    } else if header.get(TAR_MAGIC_OFFSET..TAR_MAGIC_OFFSET + 5) == Some(b"ustar") {
        Format::Tar
    } else if legacy {
        Format::Legacy
    } else if matches!(header.first(), Some(0x80 | b'(' | b'}' | b']' | b'c')) {
        Format::Pickle
    } else {
        Format::Unknown
    }
}

/// Checks every pickle of a PyTorch checkpoint that the reader will parse, after
/// telling its format apart from byte 0 exactly as the reader does:
/// - zip (`torch.save` since 1.6): the archive must hold exactly one pickle, the
///   `data.pkl` the reader reads (under the shortest root); any other `.pkl` entry is
///   refused by name, as the reader would skip it while `torch.load` might not;
/// - legacy (1.5 and before): the five pickles at the start of the file, from byte 0;
/// - a plain pickle: the whole file;
/// - tar (before 0.1.10) and anything else: refused.
///
/// At most [`MAX_PICKLE_BYTES`] are decompressed or read, whatever sizes the file
/// declares.
pub fn check_pytorch_file(path: &Path) -> Result<()> {
    let file = std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let refuse = |message: String| Error::WeightsFormat {
        path: path.to_path_buf(),
        message,
    };
    let io_error = |source: std::io::Error| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    // Every read below starts from an explicit offset (0): the handle's cursor is shared.
    let read_prefix = |limit: u64| -> Result<Vec<u8>> {
        use std::io::Seek;
        let mut f = &file;
        f.seek(std::io::SeekFrom::Start(0)).map_err(io_error)?;
        let mut bytes = Vec::new();
        f.take(limit).read_to_end(&mut bytes).map_err(io_error)?;
        Ok(bytes)
    };
    match detect_format(&read_prefix(TAR_MAGIC_OFFSET as u64 + 5)?) {
        Format::Zip => check_zip(&file, refuse),
        Format::Legacy => {
            // Magic number, protocol, system info, the object, storage keys; raw
            // storage bytes follow, which are not pickle.
            scan(&read_prefix(MAX_PICKLE_BYTES)?, 5).map_err(refuse)
        }
        Format::Pickle => {
            let bytes = read_prefix(MAX_PICKLE_BYTES + 1)?;
            if bytes.len() as u64 > MAX_PICKLE_BYTES {
                return Err(refuse(format!(
                    "a plain pickle of more than {MAX_PICKLE_BYTES} bytes, too large for a state dict"
                )));
            }
            scan(&bytes, 1).map_err(refuse)
        }
        Format::Tar => Err(refuse(
            "a tar checkpoint (torch.save before PyTorch 0.1.10) is not read; save it again with a current torch"
                .into(),
        )),
        Format::Unknown => Err(refuse(
            "not a PyTorch checkpoint: no zip, legacy or pickle header at byte 0".into(),
        )),
    }
}

/// The zip format: exactly one pickle, the `data.pkl` the reader picks, checked.
fn check_zip(file: &std::fs::File, refuse: impl Fn(String) -> Error) -> Result<()> {
    let mut archive = zip::ZipArchive::new(file)
        .map_err(|e| refuse(format!("not a readable zip archive: {e}")))?;
    let names: Vec<String> = archive
        .file_names()
        .map(|n| n.map(|n| n.into_owned()))
        .collect::<zip::result::ZipResult<_>>()
        .map_err(|e| refuse(format!("zip entry names: {e}")))?;
    // The reader's choice: the shortest root holding a data.pkl.
    let Some(data_pkl) = names
        .iter()
        .filter(|n| {
            n.strip_suffix("data.pkl")
                .is_some_and(|root| root.is_empty() || root.ends_with('/'))
        })
        .min_by_key(|n| n.len())
        .cloned()
    else {
        return Err(refuse("the zip archive holds no data.pkl".into()));
    };
    if let Some(other) = names
        .iter()
        .find(|n| n.ends_with(".pkl") && **n != data_pkl)
    {
        return Err(refuse(format!(
            "refused: the zip archive holds the pickle {other} beside {data_pkl}; a state dict has one, and the reader would skip this one"
        )));
    }
    let entry = archive
        .by_name(&data_pkl)
        .map_err(|e| refuse(format!("{data_pkl}: {e}")))?;
    let mut bytes = Vec::new();
    entry
        .take(MAX_PICKLE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| refuse(format!("{data_pkl}: {e}")))?;
    if bytes.len() as u64 > MAX_PICKLE_BYTES {
        return Err(refuse(format!(
            "pickle {data_pkl} holds more than {MAX_PICKLE_BYTES} bytes, too large for a state dict"
        )));
    }
    scan(&bytes, 1).map_err(|e| refuse(format!("{data_pkl}: {e}")))
}

/// Walks `count` consecutive pickles at the start of `bytes`, refusing any global that
/// is not allowed and any opcode this scan does not know.
fn scan(bytes: &[u8], count: usize) -> std::result::Result<(), String> {
    let mut r = Cursor { bytes, pos: 0 };
    for _ in 0..count {
        scan_one(&mut r)?;
    }
    Ok(())
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| {
                format!(
                    "pickle truncated at byte {} (needs {n} more bytes)",
                    self.pos
                )
            })?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self) -> std::result::Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn len(&mut self, width: usize) -> std::result::Result<usize, String> {
        let raw = self.take(width)?;
        let mut buf = [0u8; 8];
        buf[..width].copy_from_slice(raw);
        usize::try_from(u64::from_le_bytes(buf)).map_err(|_| "length overflows".to_owned())
    }

    fn line(&mut self) -> std::result::Result<&'a str, String> {
        let rest = &self.bytes[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("unterminated text line in pickle")?;
        self.pos += end + 1;
        std::str::from_utf8(&rest[..end]).map_err(|_| "text line in pickle is not UTF-8".to_owned())
    }
}

fn check_global(module: &str, name: &str) -> std::result::Result<(), String> {
    if ALLOWED_GLOBALS
        .iter()
        .any(|&(m, n)| m == module && n == name)
    {
        Ok(())
    } else {
        Err(format!(
            "refused: the pickle references `{module}.{name}`, which is not part of a plain tensor state dict \
             (loading it in Python would import and possibly call it)"
        ))
    }
}

fn scan_one(r: &mut Cursor) -> std::result::Result<(), String> {
    // The last two strings pushed, for STACK_GLOBAL, and strings kept in the memo.
    let mut recent: [Option<String>; 2] = [None, None];
    // Every memo entry is kept (None for non-strings) so that MEMOIZE's implicit index,
    // the memo's size, stays right.
    let mut memo: std::collections::HashMap<u64, Option<String>> = std::collections::HashMap::new();
    let push = |recent: &mut [Option<String>; 2], value: Option<String>| {
        recent[0] = recent[1].take();
        recent[1] = value;
    };
    loop {
        let op = r.u8()?;
        let mut pushed: Option<Option<String>> = Some(None);
        match op {
            b'.' => return Ok(()),
            // No argument.
            b'(' | b'0' | b'1' | b'2' | b'N' | b'Q' | b'R' | b'a' | b'b' | b'd' | b'}' | b'e'
            | b'l' | b']' | b'o' | b's' | b't' | b')' | b'u' | 0x81 | 0x85 | 0x86 | 0x87 | 0x88
            | 0x89 | 0x8f | 0x90 | 0x91 | 0x92 | 0x97 | 0x98 => {}
            // Text-line arguments.
            b'F' | b'I' | b'L' | b'P' | b'S' => {
                r.line()?;
            }
            b'V' => pushed = Some(Some(r.line()?.to_owned())),
            // Fixed-width arguments.
            b'K' | b'h' | b'q' | 0x80 => {
                let arg = r.take(1)?[0] as u64;
                match op {
                    b'h' => pushed = Some(memo.get(&arg).cloned().flatten()),
                    b'q' => {
                        memo.insert(arg, recent[1].clone());
                        pushed = None;
                    }
                    0x80 => pushed = None,
                    _ => {}
                }
            }
            b'M' => {
                r.take(2)?;
            }
            b'J' | b'j' | b'r' => {
                let arg = r.len(4)? as u64;
                match op {
                    b'j' => pushed = Some(memo.get(&arg).cloned().flatten()),
                    b'r' => {
                        memo.insert(arg, recent[1].clone());
                        pushed = None;
                    }
                    _ => {}
                }
            }
            b'G' => {
                r.take(8)?;
            }
            0x95 => {
                r.take(8)?;
                pushed = None;
            }
            b'g' => {
                let idx: u64 = r.line()?.trim().parse().map_err(|_| "bad GET index")?;
                pushed = Some(memo.get(&idx).cloned().flatten());
            }
            b'p' => {
                let idx: u64 = r.line()?.trim().parse().map_err(|_| "bad PUT index")?;
                memo.insert(idx, recent[1].clone());
                pushed = None;
            }
            0x94 => {
                // MEMOIZE: stores the top of the stack at the next memo index.
                let idx = memo.len() as u64;
                memo.insert(idx, recent[1].clone());
                pushed = None;
            }
            // Length-prefixed data.
            b'T' | b'B' => {
                let n = r.len(4)?;
                r.take(n)?;
            }
            b'U' | b'C' | 0x8a => {
                let n = r.len(1)?;
                r.take(n)?;
            }
            0x8b => {
                let n = r.len(4)?;
                r.take(n)?;
            }
            0x8e | 0x96 => {
                let n = r.len(8)?;
                r.take(n)?;
            }
            b'X' => {
                let n = r.len(4)?;
                pushed = Some(Some(String::from_utf8_lossy(r.take(n)?).into_owned()));
            }
            0x8c => {
                let n = r.len(1)?;
                pushed = Some(Some(String::from_utf8_lossy(r.take(n)?).into_owned()));
            }
            0x8d => {
                let n = r.len(8)?;
                pushed = Some(Some(String::from_utf8_lossy(r.take(n)?).into_owned()));
            }
            // Globals.
            b'c' | b'i' => {
                let module = r.line()?;
                let name = r.line()?;
                check_global(module, name)?;
            }
            0x93 => match (&recent[0], &recent[1]) {
                (Some(module), Some(name)) => check_global(module, name)?,
                _ => {
                    return Err(
                        "refused: a STACK_GLOBAL whose module and name are not plain strings"
                            .into(),
                    )
                }
            },
            0x82..=0x84 => {
                return Err("refused: the pickle uses the extension registry (EXT opcodes)".into())
            }
            other => {
                return Err(format!(
                    "unknown pickle opcode 0x{other:02x} at byte {}",
                    r.pos - 1
                ))
            }
        }
        if let Some(value) = pushed {
            push(&mut recent, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYSTEM: &[u8] =
        b"\x80\x02cposix\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03.";

    fn file_with(bytes: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pytorch_model.bin");
        std::fs::write(&path, bytes).unwrap();
        (dir, path)
    }

    #[test]
    fn formats_are_told_apart_as_the_reader_does() {
        assert_eq!(detect_format(b"PK\x03\x04rest"), Format::Zip);
        assert_eq!(detect_format(b"PK\x05\x06rest"), Format::Zip);
        let mut legacy = b"\x80\x02\x8a\x0a".to_vec();
        legacy.extend_from_slice(&LEGACY_MAGIC_BYTES);
        assert_eq!(detect_format(&legacy), Format::Legacy);
        assert_eq!(detect_format(b"\x80\x02}q\x00."), Format::Pickle);
        let mut tar = vec![0u8; 300];
        tar[257..262].copy_from_slice(b"ustar");
        assert_eq!(detect_format(&tar), Format::Tar);
        assert_eq!(detect_format(b"{\"not\": 1}"), Format::Unknown);
    }

    #[test]
    fn legacy_and_plain_pickles_are_checked_from_their_first_byte() {
        // A legacy file: the magic number's pickle, then one naming posix.system.
        let mut legacy = b"\x80\x02\x8a\x0a".to_vec();
        legacy.extend_from_slice(&LEGACY_MAGIC_BYTES);
        legacy.push(b'.');
        legacy.extend_from_slice(SYSTEM);
        let (_dir, path) = file_with(&legacy);
        let error = check_pytorch_file(&path).unwrap_err().to_string();
        assert!(error.contains("`posix.system`"), "{error}");
        // A legacy file of plain values passes the magic number's pickle (a
        // protocol-2 LONG1), the four after it being read from byte 0 on.
        let mut plain = legacy[..15].to_vec();
        for _ in 0..4 {
            plain.extend_from_slice(b"\x80\x02}q\x00.");
        }
        let (_dir, path) = file_with(&plain);
        check_pytorch_file(&path).unwrap();
        // A plain pickle.
        let (_dir, path) = file_with(SYSTEM);
        let error = check_pytorch_file(&path).unwrap_err().to_string();
        assert!(error.contains("`posix.system`"), "{error}");
    }

    fn zip_of(entries: &[(&str, &[u8])], prefix: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut cursor = std::io::Cursor::new(Vec::new());
        {
            let mut zip = zip::ZipWriter::new(&mut cursor);
            let options = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored);
            for (name, bytes) in entries {
                zip.start_file(*name, options).unwrap();
                zip.write_all(bytes).unwrap();
            }
            zip.finish().unwrap();
        }
        let mut out = prefix.to_vec();
        out.extend_from_slice(&cursor.into_inner());
        out
    }

    #[test]
    fn zips_hold_one_pickle_the_one_read_whatever_their_prefix() {
        let state = b"\x80\x02}q\x00.";
        let (_dir, path) = file_with(&zip_of(&[("m/data.pkl", state), ("m/version", b"3")], b""));
        check_pytorch_file(&path).unwrap();
        // posix.system in data.pkl, behind an end-of-directory record that makes the
        // reader take the file for a zip: refused, not skipped.
        let mut eocd = b"PK\x05\x06".to_vec();
        eocd.extend_from_slice(&[0u8; 18]);
        let (_dir, path) = file_with(&zip_of(&[("m/data.pkl", SYSTEM)], &eocd));
        let error = check_pytorch_file(&path).unwrap_err().to_string();
        assert!(
            error.contains("`posix.system`") || error.contains("not a readable zip"),
            "{error}"
        );
        // A second pickle, which the reader would skip: refused by name.
        let (_dir, path) = file_with(&zip_of(
            &[("m/data.pkl", state), ("m/extra.pkl", SYSTEM)],
            b"",
        ));
        let error = check_pytorch_file(&path).unwrap_err().to_string();
        assert!(error.contains("m/extra.pkl"), "{error}");
        // Two roots: the shortest is the reader's, and the other pickle is refused.
        let (_dir, path) = file_with(&zip_of(&[("b/data.pkl", SYSTEM), ("data.pkl", state)], b""));
        let error = check_pytorch_file(&path).unwrap_err().to_string();
        assert!(error.contains("b/data.pkl beside data.pkl"), "{error}");
    }

    #[test]
    fn plain_globals_pass_and_others_are_named() {
        assert!(scan(b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01.", 1).is_ok());
        let err = scan(
            b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03.",
            1,
        )
        .unwrap_err();
        assert!(err.contains("`os.system`"), "{err}");
        // Protocol 4: STACK_GLOBAL from two memoized strings.
        let err = scan(b"\x80\x04\x8c\x08builtins\x94\x8c\x04eval\x94\x93\x94.", 1).unwrap_err();
        assert!(err.contains("`builtins.eval`"), "{err}");
        let ok = scan(
            b"\x80\x04\x8c\x0bcollections\x94\x8c\x0bOrderedDict\x94\x93\x94)R\x94.",
            1,
        );
        assert!(ok.is_ok(), "{ok:?}");
        // The same strings fetched back from the memo.
        let err = scan(
            b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94h\x00h\x01\x93.",
            1,
        )
        .unwrap_err();
        assert!(err.contains("`os.system`"), "{err}");
    }

    #[test]
    fn truncated_and_unknown_pickles_are_errors() {
        assert!(scan(b"\x80\x02ccollections\nOrderedDict", 1)
            .unwrap_err()
            .contains("unterminated"));
        assert!(scan(b"\x80\x02X\xff\xff\xff\x7f", 1)
            .unwrap_err()
            .contains("truncated"));
        assert!(scan(b"\xff", 1)
            .unwrap_err()
            .contains("unknown pickle opcode 0xff"));
        assert!(scan(b"\x80\x02\x82\x01.", 1)
            .unwrap_err()
            .contains("extension registry"));
    }
}
