//! The triage file as users meet it: `icd triage add` by a line of the function and by
//! fingerprint, `list`, `check` (entries whose function changed, expired ones), scans
//! that suppress and confirm (jsonl, table, `--baseline`, `--no-triage`), bad files
//! refused naming the entry, `export` writing labels that `evaluate` reads, and the
//! files a tree supplies (settings, triage, calibration) read only inside it.
//! SARIF with triage suppressions is validated with the other SARIF in `ci_scan`.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::common::{fixture, pairs, MATH_C};

/// `icd --model FIXTURE ARGS...` run in `root`.
fn icd(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_icd"))
        .current_dir(root)
        .arg("--model")
        .arg(fixture("roberta-2-labels"))
        .args(args)
        .env_remove("BURN_DEVICE")
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `icd` and expects exit status `code`.
fn icd_ok(root: &Path, args: &[&str], code: i32) -> Output {
    let out = icd(root, args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "icd {args:?}: {}",
        stderr(&out)
    );
    out
}

/// A scan of `root` with every function at or above threshold 0 (unless `args` say
/// otherwise), as jsonl rows by function name.
fn scan(root: &Path, args: &[&str], code: i32) -> (Vec<(String, String)>, Vec<Value>, String) {
    let mut all = vec!["scan", ".", "--no-cache", "--format", "jsonl"];
    all.extend_from_slice(args);
    if !args.contains(&"--threshold") {
        all.extend(["--threshold", "0"]);
    }
    let out = icd_ok(root, &all, code);
    let err = stderr(&out);
    let rows: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let verdicts = rows
        .iter()
        .map(|r| {
            (
                r["function"].as_str().unwrap().to_owned(),
                r["verdict"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (verdicts, rows, err)
}

/// A tree with `src/math.c`, and its triage file: `sub` false-positive (by a line of
/// it), `mul` true-positive (by fingerprint), `add` accepted-risk until `add_expires`.
fn triaged_tree(add_expires: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::create_dir(root.join("src")).unwrap();
    std::fs::write(root.join("src/math.c"), MATH_C).unwrap();
    let reason = "b is never negative here";
    let out = icd_ok(
        root,
        &[
            "triage",
            "add",
            "src/math.c:8",
            "--verdict",
            "false-positive",
            "--reason",
            reason,
        ],
        0,
    );
    assert!(
        stderr(&out).contains("src/math.c:6-9 `sub`"),
        "{}",
        stderr(&out)
    );
    let (_, rows, _) = scan(root, &["--no-triage"], 1);
    let mul = rows[2]["fingerprint"].as_str().unwrap().to_owned();
    icd_ok(
        root,
        &[
            "triage",
            "add",
            &mul,
            "--verdict",
            "true-positive",
            "--reason",
            "overflows",
        ],
        0,
    );
    icd_ok(
        root,
        &[
            "triage",
            "add",
            "src/math.c:1",
            "--verdict",
            "accepted-risk",
            "--reason",
            "legacy API",
            "--expires",
            "2999-01-01",
        ],
        0,
    );
    let path = root.join(".icd-triage.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("# Verdicts on icd's findings"), "{text}");
    assert!(
        text.contains("name = \"sub\"\nfile = \"src/math.c\""),
        "{text}"
    );
    std::fs::write(&path, text.replace("2999-01-01", add_expires)).unwrap();
    tmp
}

#[test]
fn triaged_functions_are_suppressed_or_confirmed_until_they_expire() {
    let tmp = triaged_tree("2999-01-01");
    let root = tmp.path();
    let (verdicts, rows, err) = scan(root, &[], 1);
    assert_eq!(
        verdicts,
        pairs(&[
            ("add", "suppressed"),
            ("sub", "suppressed"),
            ("mul", "confirmed")
        ])
    );
    assert_eq!(rows[1]["suppressed"], true);
    assert_eq!(rows[1]["triage"]["verdict"], "false-positive");
    assert_eq!(rows[1]["triage"]["reason"], "b is never negative here");
    assert_eq!(rows[0]["triage"]["expires"], "2999-01-01");
    assert_eq!(rows[2]["suppressed"], false);
    assert!(
        err.contains("2 functions suppressed by")
            && err.contains("(1 false-positive, 1 accepted-risk), 1 confirmed"),
        "{err}"
    );

    // A confirmed function is a finding whatever the threshold, and an `icd: ignore`
    // comment does not hide it.
    let ignored = MATH_C.replace("int mul", "// icd: ignore\nint mul");
    std::fs::write(root.join("src/math.c"), &ignored).unwrap();
    let (verdicts, _, _) = scan(root, &["--threshold", "1"], 1);
    assert_eq!(
        verdicts,
        pairs(&[("add", "ok"), ("sub", "ok"), ("mul", "confirmed")])
    );

    // Nor does a baseline that has it.
    icd_ok(
        root,
        &[
            "scan",
            ".",
            "--no-cache",
            "--threshold",
            "0",
            "--no-triage",
            "--no-ignore",
            "--format",
            "sarif",
            "-o",
            "old.sarif",
        ],
        1,
    );
    let (verdicts, _, _) = scan(root, &["--baseline", "old.sarif"], 1);
    assert_eq!(
        verdicts,
        pairs(&[
            ("add", "suppressed"),
            ("sub", "suppressed"),
            ("mul", "confirmed")
        ])
    );
    let (verdicts, _, _) = scan(
        root,
        &["--baseline", "old.sarif", "--no-triage", "--no-ignore"],
        0,
    );
    assert_eq!(
        verdicts,
        pairs(&[
            ("add", "baseline"),
            ("sub", "baseline"),
            ("mul", "baseline")
        ])
    );

    // The table says what the triage file did.
    let out = icd_ok(root, &["scan", ".", "--no-cache", "--threshold", "0"], 1);
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("triaged false-positive: b is never negative here"),
        "{table}"
    );
    assert!(
        table.contains("triaged accepted-risk, until 2999-01-01: legacy API"),
        "{table}"
    );
    assert!(
        table.contains("0 of 3 functions at or above 0 plus 1 confirmed by .icd-triage.toml (and 2 suppressed by .icd-triage.toml)"),
        "{table}"
    );
}

#[test]
fn expired_and_stale_entries_stop_applying_and_fail_the_check() {
    let tmp = triaged_tree("2000-01-01");
    let root = tmp.path();
    let (verdicts, _, err) = scan(root, &[], 1);
    assert_eq!(
        verdicts,
        pairs(&[
            ("add", "insecure"),
            ("sub", "suppressed"),
            ("mul", "confirmed")
        ])
    );
    assert!(err.contains("1 functions have an expired entry"), "{err}");

    let out = icd_ok(root, &["triage", "check"], 1);
    let report = String::from_utf8(out.stdout).unwrap();
    assert!(
        report.contains("(src/math.c: add): expired on 2000-01-01"),
        "{report}"
    );
    assert!(
        report.ends_with("3 entries: 0 without their function, 1 expired\n"),
        "{report}"
    );

    // `sub` edited: its entry no longer matches it.
    std::fs::write(root.join("src/math.c"), MATH_C.replace("a - b", "b - a")).unwrap();
    let (verdicts, _, _) = scan(root, &[], 1);
    assert_eq!(verdicts[1], ("sub".to_owned(), "insecure".to_owned()));
    let out = icd_ok(root, &["triage", "check"], 1);
    let report = String::from_utf8(out.stdout).unwrap();
    assert!(
        report.contains("(src/math.c: sub): no function under"),
        "{report}"
    );
    assert!(
        report.ends_with("3 entries: 1 without their function, 1 expired\n"),
        "{report}"
    );

    // From a subdirectory, the file above is found; `list` marks the expired entry.
    let out = icd_ok(
        &root.join("src"),
        &["triage", "list", "--format", "json"],
        0,
    );
    let entries: Value = serde_json::from_slice(&out.stdout).unwrap();
    let expired: Vec<bool> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["expired"].as_bool().unwrap())
        .collect();
    assert_eq!(expired, [false, false, true]);
    assert_eq!(entries[0]["line"], 6);

    // A current file checks clean.
    std::fs::write(root.join("src/math.c"), MATH_C).unwrap();
    let text = std::fs::read_to_string(root.join(".icd-triage.toml")).unwrap();
    std::fs::write(
        root.join(".icd-triage.toml"),
        text.replace("2000-01-01", "2999-01-01"),
    )
    .unwrap();
    let out = icd_ok(root, &["triage", "check"], 0);
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .ends_with("3 entries: 0 without their function, 0 expired\n"));
}

#[test]
fn add_refuses_what_it_cannot_record() {
    let tmp = triaged_tree("2999-01-01");
    let root = tmp.path();
    let before = std::fs::read(root.join(".icd-triage.toml")).unwrap();
    let add = |function: &str, more: &[&str]| {
        let mut args = vec![
            "triage",
            "add",
            function,
            "--verdict",
            "true-positive",
            "--reason",
            "r",
        ];
        args.extend_from_slice(more);
        let out = icd_ok(root, &args, 2);
        stderr(&out)
    };
    let err = add("src/math.c:6", &[]);
    assert!(
        err.contains(".icd-triage.toml:6: ")
            && err.contains(
                "is triaged already (false-positive: b is never negative here); give --replace"
            ),
        "{err}"
    );
    let err = add("src/math.c:5", &[]);
    assert!(
        err.contains("src/math.c has no function definition on line 5"),
        "{err}"
    );
    let err = add("0123456789abcdef0123456789abcdef:1", &[]);
    assert!(
        err.contains("no function under")
            && err.contains("has the fingerprint 0123456789abcdef0123456789abcdef:1"),
        "{err}"
    );
    let err = add("src/math.c:2", &["--replace", "--expires", "2000-01-01"]);
    assert!(
        err.contains("--expires 2000-01-01 is not after today"),
        "{err}"
    );
    let out = icd(
        root,
        &[
            "triage",
            "add",
            "src/math.c:2",
            "--verdict",
            "true-positive",
            "--reason",
            " ",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--reason has no letter or digit"),
        "{}",
        stderr(&out)
    );
    let err = add("math", &[]);
    assert!(err.contains("is neither a function fingerprint"), "{err}");
    let err = add("src/math.c:2", &["--replace", "--expires", "2027-02-30"]);
    assert!(
        err.contains("--expires") && err.contains("not a date"),
        "{err}"
    );
    let out = icd(
        root,
        &[
            "triage",
            "add",
            "src/math.c:2",
            "--verdict",
            "fine",
            "--reason",
            "r",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("true-positive"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(root.join(".icd-triage.toml")).unwrap(),
        before,
        "nothing written"
    );

    // --replace changes the entry in place.
    icd_ok(
        root,
        &[
            "triage",
            "add",
            "src/math.c:6",
            "--verdict",
            "true-positive",
            "--reason",
            "underflows",
            "--replace",
        ],
        0,
    );
    let (verdicts, _, _) = scan(root, &[], 1);
    assert_eq!(verdicts[1], ("sub".to_owned(), "confirmed".to_owned()));
}

#[test]
fn bad_triage_files_are_errors_naming_the_entry() {
    let tmp = triaged_tree("2999-01-01");
    let root = tmp.path();
    let path = root.join(".icd-triage.toml");
    let good = std::fs::read_to_string(&path).unwrap();
    for (text, want) in [
        (
            good.replace("reason = \"overflows\"\n", ""),
            ".icd-triage.toml:13: function[1] (",
        ),
        (
            good.replace("2999-01-01", "2999-02-30"),
            ".icd-triage.toml:23:",
        ),
        (
            good.replace("verdict = \"true-positive\"", "verdict = \"wontfix\""),
            "verdict \"wontfix\" is not a verdict",
        ),
        (
            good.replace("2999-01-01", "\"2999-01-01\""),
            ".icd-triage.toml:20: function[2] (572c5d55fe33d1ddb2e3961a4fc3dff6:1): expires is a string: write the date unquoted",
        ),
    ] {
        std::fs::write(&path, &text).unwrap();
        for args in [&["scan", ".", "--no-cache"][..], &["triage", "list"][..]] {
            let out = icd_ok(root, args, 2);
            let err = stderr(&out);
            assert!(err.contains(want), "{args:?}: {err}\nwanted: {want}");
        }
    }
    // --no-triage scans past it; --triage names another.
    icd_ok(root, &["scan", ".", "--no-cache", "--no-triage"], 0);
    std::fs::write(root.join("base-triage.toml"), &good).unwrap();
    let (verdicts, _, _) = scan(root, &["--triage", "base-triage.toml"], 1);
    assert_eq!(verdicts[2], ("mul".to_owned(), "confirmed".to_owned()));
}

#[test]
fn export_writes_labels_that_evaluate_reads() {
    let tmp = triaged_tree("2999-01-01");
    let root = tmp.path();
    // An equal copy of the file elsewhere: its functions are exported once.
    std::fs::create_dir(root.join("copy")).unwrap();
    std::fs::write(root.join("copy/math.c"), MATH_C).unwrap();
    let out = icd_ok(root, &["triage", "export", ".", "-o", "labels.jsonl"], 0);
    assert!(
        stderr(&out).contains("2 labelled functions (1 true-positive, 1 false-positive, 0 of them past their expiry) written to labels.jsonl; 1 accepted-risk left out, 0 entries not found"),
        "{}",
        stderr(&out)
    );
    let rows: Vec<Value> = std::fs::read_to_string(root.join("labels.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let labels: Vec<(&str, i64, i64)> = rows
        .iter()
        .map(|r| {
            (
                r["function"].as_str().unwrap(),
                r["idx"].as_i64().unwrap(),
                r["target"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(labels, [("sub", 0, 0), ("mul", 1, 1)]);
    assert_eq!(
        rows[1]["func"],
        "int mul(int a, int b)\n{\n    return a * b;\n}"
    );

    let out = icd_ok(
        root,
        &["evaluate", "labels.jsonl", "--predictions", "p.txt"],
        0,
    );
    let metrics: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(metrics["examples"], 2);

    // Nothing to export is an error, and nothing is written.
    std::fs::remove_file(root.join("labels.jsonl")).unwrap();
    let out = icd_ok(root, &["triage", "export", "src/none.c"], 2);
    assert!(stderr(&out).contains("src/none.c"), "{}", stderr(&out));
    std::fs::write(root.join("other.c"), "int other(void) { return 0; }\n").unwrap();
    let out = icd_ok(root, &["triage", "export", "other.c"], 2);
    assert!(
        stderr(&out).contains("nothing to export"),
        "{}",
        stderr(&out)
    );
    assert!(!root.join("labels.jsonl").exists());
}

/// A pull request can plant `.icd.toml -> /proc/self/environ`: settings and triage
/// files found in the tree (and the calibration file the settings name) are read only
/// inside the directory they were found in, and no parse error quotes their text.
#[cfg(unix)]
#[test]
fn tree_files_are_not_read_through_links_out_of_the_tree() {
    let top = tempfile::tempdir().unwrap();
    let (root, outside) = (top.path().join("tree"), top.path().join("outside"));
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(root.join("src/math.c"), MATH_C).unwrap();
    let secret = outside.join("secret");
    std::fs::write(&secret, "GITHUB_TOKEN=ghp_abc123 more\n").unwrap();
    let scan_err = |args: &[&str]| {
        let mut all = vec!["scan", ".", "--no-cache"];
        all.extend_from_slice(args);
        let err = stderr(&icd_ok(&root, &all, 2));
        assert!(!err.contains("ghp_abc123"), "{err}");
        err
    };
    for name in [".icd.toml", ".icd-triage.toml"] {
        std::os::unix::fs::symlink(&secret, root.join(name)).unwrap();
        let err = scan_err(&[]);
        assert!(
            err.contains(&format!("{name}: the ")) && err.contains("leads outside"),
            "{err}"
        );
        std::fs::remove_file(root.join(name)).unwrap();
        // Inside the tree, the file is read, and its error gives the place alone.
        std::fs::write(root.join(name), "GITHUB_TOKEN=ghp_abc123 more\n").unwrap();
        let err = scan_err(&[]);
        assert!(err.contains(&format!("{name}:1:")), "{err}");
        std::fs::remove_file(root.join(name)).unwrap();
    }
    let err = stderr(&icd_ok(&root, &["triage", "list"], 2));
    assert!(err.contains("no .icd-triage.toml"), "{err}");
    std::os::unix::fs::symlink(&secret, root.join(".icd-triage.toml")).unwrap();
    let err = stderr(&icd_ok(&root, &["triage", "list"], 2));
    assert!(
        err.contains("leads outside") && err.contains("--file FILE"),
        "{err}"
    );
    std::fs::remove_file(root.join(".icd-triage.toml")).unwrap();

    // The calibration file the tree's settings name, by a path that leaves the tree.
    std::fs::write(
        outside.join("calibration.json"),
        "{\"GITHUB_TOKEN\": \"ghp_abc123\"}",
    )
    .unwrap();
    std::fs::write(
        root.join(".icd.toml"),
        "calibration = \"../outside/calibration.json\"\n",
    )
    .unwrap();
    let err = scan_err(&[]);
    assert!(
        err.contains(".icd.toml: calibration: ")
            && err.contains("the calibration file leads outside"),
        "{err}"
    );

    // Named on the command line, a file outside is the user's choice.
    std::fs::write(outside.join("settings.toml"), "threshold = 0.0\n").unwrap();
    let settings = outside.join("settings.toml");
    icd_ok(
        &root,
        &[
            "scan",
            ".",
            "--no-cache",
            "--config",
            settings.to_str().unwrap(),
        ],
        1,
    );
}

#[test]
fn confirmed_functions_claim_their_baseline_result_and_copies_are_warned_of() {
    let tmp = triaged_tree("2999-01-01");
    let root = tmp.path();
    icd_ok(
        root,
        &[
            "scan",
            ".",
            "--no-cache",
            "--threshold",
            "0",
            "--no-triage",
            "--format",
            "sarif",
            "-o",
            "old.sarif",
        ],
        1,
    );
    // Below the threshold, `mul` is reported only as confirmed: one result, unchanged
    // since the baseline, not a second one marked absent.
    let out = icd_ok(
        root,
        &[
            "scan",
            ".",
            "--no-cache",
            "--threshold",
            "1",
            "--baseline",
            "old.sarif",
            "--format",
            "sarif",
        ],
        1,
    );
    let log: Value = serde_json::from_slice(&out.stdout).unwrap();
    let results: Vec<(String, String, String)> = log["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["locations"][0]["logicalLocations"][0]["name"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                r["level"].as_str().unwrap().to_owned(),
                r["baselineState"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let want: Vec<(String, String, String)> = ["add", "sub"]
        .iter()
        .map(|n| (n.to_string(), "warning".to_owned(), "absent".to_owned()))
        .chain([("mul".to_owned(), "error".to_owned(), "unchanged".to_owned())])
        .collect();
    let mut sorted = results.clone();
    sorted.sort();
    let mut want_sorted = want;
    want_sorted.sort();
    assert_eq!(sorted, want_sorted);

    // A copy of the triage file kept outside the tree (as a gate keeps the base
    // branch's): its entries' files are the current directory's, so no warning.
    let outside = tempfile::tempdir().unwrap();
    let copy = outside.path().join("base-triage.toml");
    std::fs::copy(root.join(".icd-triage.toml"), &copy).unwrap();
    let (verdicts, _, err) = scan(root, &["--triage", copy.to_str().unwrap()], 1);
    assert_eq!(verdicts[1], ("sub".to_owned(), "suppressed".to_owned()));
    assert!(!err.contains("not in the file their entry names"), "{err}");

    // A copy of a suppressed function in another file shares its verdict, with a
    // warning that names what happened.
    std::fs::create_dir(root.join("vendor")).unwrap();
    std::fs::write(root.join("vendor/copy.c"), MATH_C).unwrap();
    let (verdicts, _, err) = scan(root, &[], 1);
    assert_eq!(verdicts.len(), 6);
    assert!(
        err.contains("warning: 2 functions suppressed by .icd-triage.toml are not in the file their entry names"),
        "{err}"
    );

    // The triage file, settings and baseline a scan read are never its output.
    let before = std::fs::read(root.join(".icd-triage.toml")).unwrap();
    let err = stderr(&icd_ok(
        root,
        &["scan", ".", "--no-cache", "-o", ".icd-triage.toml"],
        2,
    ));
    assert!(err.contains(".icd-triage.toml"), "{err}");
    assert_eq!(
        std::fs::read(root.join(".icd-triage.toml")).unwrap(),
        before
    );
    icd_ok(
        root,
        &[
            "scan",
            ".",
            "--no-cache",
            "--baseline",
            "old.sarif",
            "-o",
            "old.sarif",
        ],
        2,
    );
}

#[test]
fn the_nearest_triage_file_is_the_one_used_even_when_unreadable() {
    let tmp = triaged_tree("2999-01-01");
    let root = tmp.path();
    // A directory of that name nearer the scanned path is an error, not passed over
    // for the file above it.
    std::fs::create_dir(root.join("src/.icd-triage.toml")).unwrap();
    let out = icd_ok(root, &["scan", "src", "--no-cache"], 2);
    assert!(
        stderr(&out).contains("src/.icd-triage.toml"),
        "{}",
        stderr(&out)
    );
    std::fs::remove_dir(root.join("src/.icd-triage.toml")).unwrap();

    // `add` names the file it starts, and refuses what it cannot record well.
    let fresh = tempfile::tempdir().unwrap();
    std::fs::create_dir(fresh.path().join("src")).unwrap();
    std::fs::write(fresh.path().join("src/math.c"), MATH_C).unwrap();
    let add = |args: &[&str], code| {
        let mut all = vec!["triage", "add"];
        all.extend_from_slice(args);
        stderr(&icd_ok(fresh.path(), &all, code))
    };
    let err = add(
        &[
            "src/math.c:2",
            "--verdict",
            "false-positive",
            "--reason",
            "r",
            "--file",
            "src/math.c",
        ],
        2,
    );
    assert!(
        err.contains("src/math.c is a C/C++ source file, not a triage file"),
        "{err}"
    );
    let err = add(
        &["src:2", "--verdict", "false-positive", "--reason", "r"],
        2,
    );
    assert!(err.contains("src: not a source file"), "{err}");
    let err = add(
        &[
            "src/math.c:0",
            "--verdict",
            "false-positive",
            "--reason",
            "r",
        ],
        2,
    );
    assert!(err.contains("lines count from 1"), "{err}");
    let err = add(
        &[
            "src/math.c:2",
            "--verdict",
            "true-positive",
            "--reason",
            "r",
            "--expires",
            "2999-01-01",
        ],
        2,
    );
    assert!(err.contains("a confirmed finding does not lapse"), "{err}");
    assert!(!fresh.path().join(".icd-triage.toml").exists());
    let err = add(
        &[
            "src/math.c:2",
            "--verdict",
            "false-positive",
            "--reason",
            "r",
        ],
        0,
    );
    assert!(
        err.contains("started the triage file /") && err.contains("src/math.c:1-4 `add`"),
        "{err}"
    );
}
