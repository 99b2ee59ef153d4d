//! Peak memory of `icd` fed large inputs: 50 MB on stdin, a baseline log of 64 MB. A
//! test binary of its own: the
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
    icd_measured_in(std::path::Path::new("."), args, stdin)
}

/// [`icd_measured`] in `dir`.
#[cfg(unix)]
#[allow(clippy::zombie_processes)]
fn icd_measured_in(
    dir: &std::path::Path,
    args: &[&str],
    stdin: Vec<u8>,
) -> (String, i32, std::time::Duration, i64) {
    use std::io::{Read, Write};
    use std::process::Stdio;
    let started = Instant::now();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_icd"))
        .current_dir(dir)
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

#[cfg(unix)]
#[test]
fn a_large_baseline_costs_a_few_times_its_size_not_a_parsed_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("f.c"), "int f(char *s) { return s[0]; }\n").unwrap();
    let model = fixture("roberta-2-labels").display().to_string();
    let scan = |extra: &[&str]| {
        let mut args = vec!["--model", model.as_str(), "scan", "f.c", "--threshold", "0", "--no-cache"];
        args.extend_from_slice(extra);
        icd_measured_in(dir, &args, Vec::new())
    };
    let (output, code, _, _) = scan(&["--format", "sarif", "-o", "one.sarif"]);
    assert_eq!(code, 1, "{output}");
    // An earlier log of about 64 MB: its one result, and 100,000 more under other
    // fingerprints, written piece by piece (this process's own peak counts in the
    // child's).
    let mut log: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("one.sarif")).unwrap()).unwrap();
    let one = log["runs"][0]["results"][0].to_string();
    let own = log["runs"][0]["results"][0]["partialFingerprints"]["icdFunctionHash/v3"]
        .as_str()
        .unwrap()
        .to_owned();
    log["runs"][0]["results"] = serde_json::json!(["RESULTS"]);
    let text = log.to_string();
    let (head, tail) = text.split_once("\"RESULTS\"").unwrap();
    let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join("base.sarif")).unwrap());
    use std::io::Write;
    out.write_all(head.as_bytes()).unwrap();
    out.write_all(one.as_bytes()).unwrap();
    for i in 0..100_000 {
        let other = format!("{i:032x}:1");
        out.write_all(b",").unwrap();
        out.write_all(one.replace(&own, &other).as_bytes()).unwrap();
    }
    out.write_all(tail.as_bytes()).unwrap();
    out.flush().unwrap();
    drop(out);
    let size_kib = std::fs::metadata(dir.join("base.sarif")).unwrap().len() as i64 / 1024;

    let (output, code, elapsed, peak_kib) =
        scan(&["--baseline", "base.sarif", "--format", "sarif", "-o", "now.sarif"]);
    eprintln!(
        "baseline of {} MiB: {elapsed:?}, peak {} MiB",
        size_kib / 1024,
        peak_kib / 1024
    );
    assert_eq!(code, 0, "{output}");
    let now: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("now.sarif")).unwrap()).unwrap();
    let states: Vec<&str> = now["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["baselineState"].as_str().unwrap())
        .collect();
    assert_eq!(states.len(), 100_001);
    assert_eq!(states.iter().filter(|s| **s == "absent").count(), 100_000);
    // Read whole as a JSON tree, and the absent results made as one, it took over 30
    // times the file's size; streamed, under 5.
    assert!(
        peak_kib < 5 * size_kib,
        "peak {peak_kib} KiB for a {size_kib} KiB baseline"
    );
}
