//! `--changed-since REV`: the lines of each scanned file that differ from the file in
//! the revision's tree.
//!
//! The repository is the pull request's, so git's diff machinery is not asked: its
//! attributes (`-diff`, `binary`, `filter=`, diff drivers), configuration
//! (`diff.mnemonicPrefix`, `filter.<x>.clean`, external diffs, text conversions) and
//! output format (quoted names, `++ ` lines) are all the repository's to bend. Git
//! only lists the revision's tree (`ls-tree -z`) and hands over its blobs as stored
//! (`cat-file --batch`, no filters); the lines are compared here. A file that is not
//! in the tree (added, untracked, in a submodule) is new whole.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use insecure_code_detector::files::path_from_bytes;
use insecure_code_detector::report::printable_path;
use insecure_code_detector::scan::{lf_line_end_bytes, FunctionSpan, LineRange};

use crate::Failure;

/// How long the line comparison of one file may search for the smallest difference
/// before it settles for a larger one (which marks more lines changed, never fewer).
const DIFF_DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);

/// Per scanned file (canonical path): the changed line ranges of its current text, or
/// `None` for a file that is new whole.
pub struct ChangedLines {
    files: HashMap<PathBuf, Option<Vec<LineRange>>>,
}

impl ChangedLines {
    /// The changed lines of `files` (as the scan found them, each once) since `rev`, in the
    /// repository holding the current directory. A file outside that repository is an
    /// error: nothing could be said of its lines.
    pub fn since(rev: &str, files: &[&Path]) -> Result<ChangedLines, Failure> {
        if rev.starts_with('-') || rev.is_empty() {
            return Err(Failure(format!(
                "--changed-since {rev:?}: expected a git revision"
            )));
        }
        let top = git(&["rev-parse", "--show-toplevel"], None, rev)?;
        let top = path_from_bytes(top.strip_suffix(b"\n").unwrap_or(&top));
        let top = canonical(&top);
        let tree = git(
            &[
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("{rev}^{{tree}}"),
            ],
            None,
            rev,
        )?;
        let tree = String::from_utf8_lossy(&tree).trim().to_owned();
        let top_arg = top.display().to_string();
        let listing = git(
            &["-C", &top_arg, "ls-tree", "-r", "-z", "--full-tree", &tree],
            None,
            rev,
        )?;
        // The tree's regular files, by path; links and submodules are not files a scan
        // reads.
        let mut blobs: HashMap<PathBuf, String> = HashMap::new();
        for record in listing.split(|&b| b == 0).filter(|r| !r.is_empty()) {
            let Some(tab) = record.iter().position(|&b| b == b'\t') else {
                return Err(Failure(format!(
                    "--changed-since {rev}: unexpected git ls-tree output"
                )));
            };
            let fields: Vec<&[u8]> = record[..tab].split(|&b| b == b' ').collect();
            if let [mode, b"blob", id] = fields[..] {
                if mode == b"100644" || mode == b"100755" {
                    let path = top.join(path_from_bytes(&record[tab + 1..]));
                    blobs.insert(path, String::from_utf8_lossy(id).into_owned());
                }
            }
        }
        let mut changed = ChangedLines {
            files: HashMap::new(),
        };
        let mut compare: Vec<(PathBuf, String)> = Vec::new();
        for file in files {
            let path = canonical(file);
            if !path.starts_with(&top) {
                return Err(Failure(format!(
                    "--changed-since {rev}: {} is not in the repository at {}",
                    printable_path(file),
                    printable_path(&top)
                )));
            }
            match blobs.get(&path) {
                Some(id) => compare.push((path, id.clone())),
                None => {
                    changed.files.insert(path, None);
                }
            }
        }
        let input: String = compare.iter().map(|(_, id)| format!("{id}\n")).collect();
        let output = git(&["-C", &top_arg, "cat-file", "--batch"], Some(input), rev)?;
        let mut rest = &output[..];
        for (path, id) in compare {
            let (old, after) = next_blob(rest, &id).ok_or_else(|| {
                Failure(format!(
                    "--changed-since {rev}: git cat-file did not give blob {id}"
                ))
            })?;
            rest = after;
            let new =
                std::fs::read(&path).map_err(|e| Failure(format!("{}: {e}", path.display())))?;
            changed.files.insert(path, Some(changed_ranges(old, &new)));
        }
        Ok(changed)
    }

    /// Whether the function's lines in `file` overlap a change.
    pub fn touches(&self, file: &Path, f: &FunctionSpan) -> bool {
        match self.files.get(&canonical(file)) {
            None => false,
            Some(None) => true,
            Some(Some(ranges)) => ranges
                .iter()
                .any(|r| r.start_line <= f.end_line && f.start_line <= r.end_line),
        }
    }
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// One blob of `git cat-file --batch` output (`<id> blob <size>\n<bytes>\n`): its bytes
/// and what follows.
fn next_blob<'a>(output: &'a [u8], id: &str) -> Option<(&'a [u8], &'a [u8])> {
    let end = output.iter().position(|&b| b == b'\n')?;
    let header = std::str::from_utf8(&output[..end]).ok()?;
    let mut fields = header.split(' ');
    let (found, kind, size) = (fields.next()?, fields.next()?, fields.next()?);
    if found != id || kind != "blob" {
        return None;
    }
    let size: usize = size.parse().ok()?;
    let body = output.get(end + 1..end + 1 + size)?;
    let rest = output.get(end + 2 + size..)?;
    Some((body, rest))
}

/// The lines of `new` (1-based ranges) that differ from `old`, lines ending at an LF or
/// a lone CR as the scanner counts them ([`lf_line_end_bytes`]). A deletion marks the
/// lines on either side of where it was, so that the function it was cut from counts
/// as changed.
fn changed_ranges(old: &[u8], new: &[u8]) -> Vec<LineRange> {
    if old == new {
        return Vec::new();
    }
    let (old, new) = (&*lf_line_end_bytes(old), &*lf_line_end_bytes(new));
    let lines = |text: &[u8]| -> Vec<Vec<u8>> {
        text.split_inclusive(|&b| b == b'\n')
            .map(<[u8]>::to_vec)
            .collect()
    };
    let (old, new) = (lines(old), lines(new));
    let deadline = std::time::Instant::now() + DIFF_DEADLINE;
    similar::capture_diff_slices_deadline(similar::Algorithm::Myers, &old, &new, Some(deadline))
        .into_iter()
        .filter_map(|op| match op {
            similar::DiffOp::Equal { .. } => None,
            similar::DiffOp::Delete { new_index, .. } => Some(LineRange {
                start_line: new_index.max(1),
                end_line: new_index + 1,
            }),
            similar::DiffOp::Insert {
                new_index, new_len, ..
            }
            | similar::DiffOp::Replace {
                new_index, new_len, ..
            } => Some(LineRange {
                start_line: new_index + 1,
                end_line: new_index + new_len,
            }),
        })
        .collect()
}

/// Runs git with nothing of the repository's that runs code (fsmonitor), no pager and
/// no replacement objects; its stdout. `input` is written to its stdin.
fn git(args: &[&str], input: Option<String>, rev: &str) -> Result<Vec<u8>, Failure> {
    let failed =
        |e: std::io::Error| Failure(format!("--changed-since {rev}: git did not run: {e}"));
    let mut child = Command::new("git")
        // Replacement objects (refs/replace) would let the repository show another
        // tree or blob in the revision's place.
        .args([
            "-c",
            "core.fsmonitor=false",
            "--no-pager",
            "--no-replace-objects",
        ])
        .env("GIT_NO_REPLACE_OBJECTS", "1")
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(failed)?;
    // Written from another thread, so that a full stdout pipe cannot stall both ends.
    let writer = input.map(|text| {
        let mut stdin = child.stdin.take().expect("piped");
        std::thread::spawn(move || stdin.write_all(text.as_bytes()))
    });
    let mut stdout = Vec::new();
    child
        .stdout
        .take()
        .expect("piped")
        .read_to_end(&mut stdout)
        .map_err(failed)?;
    let mut stderr = Vec::new();
    child
        .stderr
        .take()
        .expect("piped")
        .read_to_end(&mut stderr)
        .map_err(failed)?;
    let status = child.wait().map_err(failed)?;
    if let Some(writer) = writer {
        writer
            .join()
            .expect("the writer thread does not panic")
            .map_err(failed)?;
    }
    if !status.success() {
        let what = args
            .iter()
            .filter(|a| !a.starts_with('/'))
            .cloned()
            .collect::<Vec<_>>()
            .join(" ");
        let why = String::from_utf8_lossy(&stderr).trim().to_owned();
        let why = if why.is_empty() {
            "no such revision".to_owned()
        } else {
            why
        };
        return Err(Failure(format!(
            "--changed-since {rev}: `git {what}` failed: {why}"
        )));
    }
    Ok(stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(old: &str, new: &str) -> Vec<(usize, usize)> {
        changed_ranges(old.as_bytes(), new.as_bytes())
            .into_iter()
            .map(|r| (r.start_line, r.end_line))
            .collect()
    }

    #[test]
    fn changed_lines_are_those_of_the_new_text() {
        assert_eq!(ranges("a\nb\nc\n", "a\nb\nc\n"), []);
        assert_eq!(ranges("a\nb\nc\n", "a\nB\nc\n"), [(2, 2)]);
        assert_eq!(ranges("a\nb\nc\n", "a\nb\nx\ny\nc\n"), [(3, 4)]);
        // A deletion marks the lines on either side.
        assert_eq!(ranges("a\nb\nc\nd\n", "a\nd\n"), [(1, 2)]);
        assert_eq!(ranges("a\nb\n", "b\n"), [(1, 1)]);
        // Lines that only look alike are different: two invalid bytes, or CR.
        assert_eq!(changed_ranges(b"x\xff\n", b"x\xfe\n").len(), 1);
        assert_eq!(ranges("a\n", "a\r\n"), [(1, 1)]);
        // `++ ` and `@@` are lines like any other.
        assert_eq!(ranges("a\n", "a\n++ x\n@@ -1 +1 @@\n"), [(2, 3)]);
    }

    #[test]
    fn batch_output_is_read_blob_by_blob() {
        let output = b"aa blob 3\nx\ny\nbb blob 0\n\n";
        let (first, rest) = next_blob(output, "aa").unwrap();
        assert_eq!(first, b"x\ny");
        let (second, rest) = next_blob(rest, "bb").unwrap();
        assert_eq!((second, rest), (&b""[..], &b""[..]));
        assert!(next_blob(b"aa missing\n", "aa").is_none());
    }
}
