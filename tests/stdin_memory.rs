//! Peak memory of `icd classify` fed 50 MB on stdin. A test binary of its own: the
//! peak a child reports through wait4 includes its parent's resident memory at the
//! moment it was spawned (the kernel carries the high-water mark across exec), so the
//! parent must be this small binary, not the one that runs every other test at once.

mod common;

use std::time::Instant;

use common::*;

/// Runs `icd args` with `stdin` piped in; its output, wall time and peak resident
/// memory (KiB, from wait4's rusage of that one child).
#[cfg(unix)]
// The child is reaped by wait4, for its rusage, not by Child::wait.
#[allow(clippy::zombie_processes)]
fn icd_measured(args: &[&str], stdin: Vec<u8>) -> (String, i32, std::time::Duration, i64) {
    use std::io::{Read, Write};
    use std::process::Stdio;
    let started = Instant::now();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_icd"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut err = String::new();
        let _ = stderr.read_to_string(&mut err);
        err
    });
    let mut out = String::new();
    stdout.read_to_string(&mut out).unwrap();
    writer.join().unwrap();
    let err = reader.join().unwrap();
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `child` is this process's own child, not yet waited for; status and
    // usage are valid for writes.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (out + &err, code, started.elapsed(), usage.ru_maxrss)
}

#[cfg(unix)]
#[test]
fn fifty_megabytes_on_stdin_stay_bounded_whatever_the_pre_tokenizer() {
    // The 5-label fixture's tokenizer.json with its pre-tokenizer removed: the whole
    // input would be one piece for BPE.
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture("roberta-5-labels")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    let path = dir.path().join("tokenizer.json");
    let mut tokenizer: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    tokenizer["pre_tokenizer"] = serde_json::Value::Null;
    std::fs::write(&path, tokenizer.to_string()).unwrap();

    let input = "x".repeat(50 << 20).into_bytes();
    for model in [fixture("roberta-2-labels"), dir.path().to_path_buf()] {
        let model = model.display().to_string();
        let (output, code, elapsed, peak_kib) =
            icd_measured(&["--model", &model, "classify", "-"], input.clone());
        eprintln!(
            "50 MB on stdin, {model}: {elapsed:?}, peak {} MiB",
            peak_kib / 1024
        );
        assert_eq!(code, 0, "{output}");
        assert!(output.contains("(truncated)"), "{output}");
        assert!(elapsed.as_secs() < 30, "{elapsed:?}");
        // The input itself is 50 MiB, read whole, and held twice at most as text.
        assert!(peak_kib < 400 * 1024, "peak {peak_kib} KiB");
    }
}
