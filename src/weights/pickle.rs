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

/// A pickle larger than this is not a state dict's index (tensor data lives outside it).
const MAX_PICKLE_BYTES: u64 = 256 << 20;

/// Checks every pickle of a PyTorch checkpoint: the `data.pkl` entries of the zip
/// format, or the leading pickles of the legacy format.
pub fn check_pytorch_file(path: &Path) -> Result<()> {
    let file = std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let refuse = |message: String| Error::WeightsFormat {
        path: path.to_path_buf(),
        message,
    };
    let mut magic = [0u8; 4];
    let is_zip = {
        let mut f = &file;
        f.read(&mut magic).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })? == 4
            && magic == *b"PK\x03\x04"
    };
    if is_zip {
        let mut archive = zip::ZipArchive::new(&file)
            .map_err(|e| refuse(format!("not a readable zip archive: {e}")))?;
        let mut scanned = 0;
        for i in 0..archive.len() {
            let mut entry = archive
                .by_index(i)
                .map_err(|e| refuse(format!("zip entry {i}: {e}")))?;
            let name = entry
                .name()
                .map_err(|e| refuse(format!("zip entry {i}: {e}")))?
                .into_owned();
            if !name.ends_with(".pkl") {
                continue;
            }
            if entry.size() > MAX_PICKLE_BYTES {
                return Err(refuse(format!(
                    "pickle {name} is {} bytes, too large for a state dict",
                    entry.size()
                )));
            }
            let mut bytes = Vec::with_capacity(entry.size() as usize);
            entry
                .read_to_end(&mut bytes)
                .map_err(|e| refuse(format!("{name}: {e}")))?;
            scan(&bytes, 1).map_err(|e| refuse(format!("{name}: {e}")))?;
            scanned += 1;
        }
        if scanned == 0 {
            return Err(refuse("the zip archive holds no pickle (data.pkl)".into()));
        }
        Ok(())
    } else {
        // Legacy format: magic number, protocol, system info, the object, storage keys;
        // raw storage bytes follow, which are not pickle.
        let mut bytes = Vec::new();
        (&file)
            .take(MAX_PICKLE_BYTES)
            .read_to_end(&mut bytes)
            .map_err(|source| Error::Io {
                path: path.to_path_buf(),
                source,
            })?;
        scan(&bytes, 5).map_err(refuse)
    }
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
