//! `icd scan` as a CI gate, on trees made for each test: `icd: ignore` suppressions
//! and `--no-ignore`, `--baseline` (only what a change introduced is new), fingerprints
//! that survive moves and edits elsewhere, and SARIF that GitHub code scanning ingests
//! (Microsoft's SARIF Multitool with its GitHub rules) and that is the same byte for
//! byte on every run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::*;
use serde_json::Value;

/// `icd --model FIXTURE scan . ARGS...` run in `root`: everything is at or above
/// threshold 0, so every function the model sees is reported unless suppressed.
fn scan(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_icd"))
        .current_dir(root)
        .args(["--model"])
        .arg(fixture("roberta-2-labels"))
        .args(["scan", ".", "--threshold", "0"])
        .args(args)
        .env_remove("BURN_DEVICE")
        .output()
        .unwrap()
}

/// The jsonl rows of a scan that ran (exit 0 or 1), by function name.
fn rows(root: &Path, args: &[&str]) -> (Option<i32>, Vec<Value>) {
    let mut all = vec!["--format", "jsonl"];
    all.extend_from_slice(args);
    let out = scan(root, &all);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (out.status.code(), rows)
}

fn verdicts(rows: &[Value]) -> Vec<(String, String)> {
    rows.iter()
        .map(|r| {
            (
                r["function"].as_str().unwrap().to_owned(),
                r["verdict"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn write(root: &Path, path: &str, text: &str) {
    let path = root.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn ignore_comments_on_the_first_line_or_the_line_before_suppress() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "s.c",
        "\
// icd: ignore reviewed
int line_before(int a) { return a; }

int first_line(int a) { /* icd: ignore */ return a + 1; }

/* reviewed,
   icd: ignore */
int block_before(int a)
{
    return a + 2;
}

// icd: ignore is two lines up: too far

int too_far(int a) { return a + 3; }

int in_string(void) { const char *s = \"// icd: ignore\"; return s[0]; }
",
    );
    let (code, found) = rows(tmp.path(), &[]);
    assert_eq!(
        verdicts(&found),
        pairs(&[
            ("line_before", "suppressed"),
            ("first_line", "suppressed"),
            ("block_before", "suppressed"),
            ("too_far", "insecure"),
            ("in_string", "insecure"),
        ])
    );
    assert_eq!(code, Some(1));

    // With only suppressed functions at or above the threshold, nothing fails.
    let only = tempfile::tempdir().unwrap();
    write(
        only.path(),
        "s.c",
        "int f(void) { return 0; } // icd: ignore\n",
    );
    let (code, found) = rows(only.path(), &[]);
    assert_eq!(verdicts(&found), pairs(&[("f", "suppressed")]));
    assert_eq!(code, Some(0));
    let table = scan(only.path(), &[]);
    assert_eq!(table.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&table.stdout)
        .contains("\n0 of 1 functions at or above 0 (and 1 suppressed by `icd: ignore`)\n"));

    // --no-ignore reports them all.
    let (code, found) = rows(tmp.path(), &["--no-ignore"]);
    assert!(verdicts(&found).iter().all(|(_, v)| v == "insecure"));
    assert_eq!(code, Some(1));
    let (code, _) = rows(only.path(), &["--no-ignore"]);
    assert_eq!(code, Some(1));

    // SARIF keeps suppressed functions, marked in-source.
    let sarif = sarif_of(&scan(tmp.path(), &["--format", "sarif"]));
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    let suppressed: Vec<&str> = results
        .iter()
        .filter(|r| r["suppressions"] == serde_json::json!([{ "kind": "inSource" }]))
        .map(|r| {
            r["locations"][0]["logicalLocations"][0]["name"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(suppressed, ["line_before", "first_line", "block_before"]);
    assert_eq!(results.len(), 5);
}

fn sarif_of(out: &Output) -> Value {
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn fingerprints(rows: &[Value]) -> Vec<(String, String)> {
    rows.iter()
        .map(|r| {
            (
                r["function"].as_str().unwrap().to_owned(),
                r["fingerprint"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn fingerprints_survive_moves_and_lines_added_above() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "src/math.c", MATH_C);
    let (_, before) = rows(tmp.path(), &[]);
    let before = fingerprints(&before);
    assert_eq!(before.len(), 3);

    // Moved to another directory, with lines and a comment added above `sub` and
    // `add` reindented: every fingerprint stays.
    std::fs::remove_dir_all(tmp.path().join("src")).unwrap();
    let edited = MATH_C
        .replace("int sub", "/* a new comment */\n\n\nint sub")
        .replace("    return a + b;", "\treturn a +   b; // sums");
    write(tmp.path(), "lib/moved/math.c", &edited);
    let (_, after) = rows(tmp.path(), &[]);
    assert_eq!(fingerprints(&after), before);
    assert_ne!(after[1]["start_line"], 6, "sub moved down");
}

#[test]
fn ifdef_variants_and_equal_definitions_get_distinct_fingerprints() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "v.c",
        "\
#ifdef FAST
int pick(int a) { return a << 1; }
#else
int pick(int a) { return a * 2; }
#endif
#ifdef A
int same(void) { return 0; }
#else
int same(void) { return 0; }
#endif
",
    );
    let (_, found) = rows(tmp.path(), &[]);
    let prints = fingerprints(&found);
    let names: Vec<&str> = prints.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["pick", "pick", "same", "same"]);
    let mut unique: Vec<&str> = prints.iter().map(|(_, f)| f.as_str()).collect();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 4, "{prints:?}");
    // Equal text: one hash, told apart by their place in the file.
    let (hash_a, n_a) = prints[2].1.split_once(':').unwrap();
    let (hash_b, n_b) = prints[3].1.split_once(':').unwrap();
    assert_eq!((hash_a, n_a, n_b), (hash_b, "1", "2"));
}

#[test]
fn baseline_reports_only_what_changed() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "src/math.c", MATH_C);
    write(tmp.path(), "src/other.c", "int keep(void) { return 7; }\n");
    let old = tmp.path().join("old.sarif");
    let out = Command::new(env!("CARGO_BIN_EXE_icd"))
        .current_dir(tmp.path())
        .arg("--model")
        .arg(fixture("roberta-2-labels"))
        .args(["scan", "src", "--threshold", "0", "--format", "sarif", "-o"])
        .arg(&old)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let baseline = old.display().to_string();

    // Unchanged: nothing is new, and nothing fails.
    let (code, found) = rows(tmp.path(), &["--baseline", &baseline]);
    assert!(
        verdicts(&found).iter().all(|(_, v)| v == "baseline"),
        "{found:?}"
    );
    assert_eq!(code, Some(0));

    // One function edited, the file moved and lines added above another.
    std::fs::remove_file(tmp.path().join("src/math.c")).unwrap();
    let edited = MATH_C
        .replace("return a - b;", "return b - a;")
        .replace("int add", "\n\n\nint add");
    write(tmp.path(), "src/moved/math.c", &edited);
    let (code, found) = rows(tmp.path(), &["--baseline", &baseline]);
    assert_eq!(
        verdicts(&found),
        pairs(&[
            ("add", "baseline"),
            ("sub", "insecure"),
            ("mul", "baseline"),
            ("keep", "baseline"),
        ])
    );
    assert_eq!(code, Some(1));

    // In SARIF: new, unchanged, and the old `sub` absent.
    let sarif = sarif_of(&scan(
        tmp.path(),
        &["--format", "sarif", "--baseline", &baseline],
    ));
    let states: Vec<(String, String)> = sarif["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["locations"][0]["logicalLocations"][0]["name"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                r["baselineState"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut sorted = states.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        pairs(&[
            ("add", "unchanged"),
            ("keep", "unchanged"),
            ("mul", "unchanged"),
            ("sub", "absent"),
            ("sub", "new"),
        ])
    );

    // A baseline that is not an icd log is an error naming it, never an empty one.
    write(
        tmp.path(),
        "bad.sarif",
        "{\"runs\": [{\"tool\": {\"driver\": {\"name\": \"other\"}}}]}",
    );
    let bad = scan(tmp.path(), &["--baseline", "bad.sarif"]);
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("bad.sarif") && stderr.contains("not icd"),
        "{stderr}"
    );
    let missing = scan(tmp.path(), &["--baseline", "missing.sarif"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("missing.sarif"));
}

/// The SARIF Multitool: `ICD_SARIF_MULTITOOL` (set by ./scripts/test, which installs
/// the npm package `@microsoft/sarif-multitool`).
fn multitool() -> Option<PathBuf> {
    match std::env::var_os("ICD_SARIF_MULTITOOL") {
        Some(path) => {
            let path = PathBuf::from(path);
            assert!(
                path.is_file(),
                "ICD_SARIF_MULTITOOL={} is no file",
                path.display()
            );
            Some(path)
        }
        None if std::env::var_os("CI").is_some() => {
            panic!("CI must validate SARIF: set ICD_SARIF_MULTITOOL (./scripts/test does)")
        }
        None => {
            eprintln!("SKIPPING the SARIF Multitool check: ICD_SARIF_MULTITOOL is not set (./scripts/test installs it)");
            None
        }
    }
}

#[test]
fn sarif_passes_github_rules_and_is_the_same_every_run() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write(root, "src/math.c", MATH_C);
    write(
        root,
        "src/more.cpp",
        "// icd: ignore\nint Widget::size() const { return n_; }\nint f(int x) { return x; }\n",
    );
    // Lines that do not parse and a link that is not followed: notifications.
    write(
        root,
        "src/broken.c",
        "}}} not C at all {{{\nint ok(void) { return 1; }\n",
    );
    #[cfg(unix)]
    std::os::unix::fs::symlink("/etc/passwd", root.join("src/link.c")).unwrap();
    // And a file the settings exclude.
    write(root, "src/skip/x.c", "int skipped(void) { return 0; }\n");
    write(root, ".icd.toml", "exclude = [\"src/skip/**\"]\n");
    // Verdicts in the triage file: `sub` false-positive (an external suppression),
    // `add` true-positive (confirmed).
    for (at, verdict) in [
        ("src/math.c:7", "false-positive"),
        ("src/math.c:2", "true-positive"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_icd"))
            .current_dir(root)
            .args([
                "triage",
                "add",
                at,
                "--verdict",
                verdict,
                "--reason",
                "reviewed in #12",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let old = root.join("old.sarif");
    let out = scan(root, &["--format", "sarif", "--explain", "-o", "old.sarif"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = scan(root, &["--format", "sarif", "--explain"]);
    assert_eq!(
        std::fs::read(&old).unwrap(),
        again.stdout,
        "two scans of one tree give one log"
    );
    write(root, "src/math.c", &MATH_C.replace("a * b", "b * a"));
    let new = root.join("new.sarif");
    let out = scan(
        root,
        &[
            "--format",
            "sarif",
            "--baseline",
            "old.sarif",
            "-o",
            "new.sarif",
        ],
    );
    assert_eq!(out.status.code(), Some(1));

    let log: Value = serde_json::from_slice(&std::fs::read(&old).unwrap()).unwrap();
    let run = &log["runs"][0];
    let rule = &run["tool"]["driver"]["rules"][0];
    assert!(rule["help"]["markdown"]
        .as_str()
        .unwrap()
        .contains("icd: ignore"));
    assert!(rule["properties"]["tags"]
        .as_array()
        .unwrap()
        .contains(&"security".into()));
    let result = &run["results"][0];
    let artifact = &result["locations"][0]["physicalLocation"]["artifactLocation"];
    assert_eq!(artifact["uriBaseId"], "SRCROOT");
    assert!(
        artifact["uri"].as_str().unwrap().starts_with("src/"),
        "{artifact}"
    );
    assert_eq!(
        result["partialFingerprints"]["primaryLocationLineHash"],
        result["partialFingerprints"]["icdFunctionHash/v3"]
    );
    let severity: f64 = result["properties"]["security-severity"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let p = result["properties"]["insecureProbability"]
        .as_f64()
        .unwrap();
    assert!((severity - p * 10.0).abs() <= 0.051, "{severity} for {p}");
    assert!(run["originalUriBaseIds"]["SRCROOT"]["uri"]
        .as_str()
        .unwrap()
        .starts_with("file:///"));
    let by_name = |name: &str| {
        run["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["locations"][0]["logicalLocations"][0]["name"] == name)
            .unwrap_or_else(|| panic!("no result for {name}"))
            .clone()
    };
    let sub = by_name("sub");
    let suppression = &sub["suppressions"][0];
    assert_eq!(suppression["kind"], "external");
    assert_eq!(suppression["status"], "accepted");
    assert_eq!(
        suppression["justification"],
        "false-positive: reviewed in #12"
    );
    let at = &suppression["location"]["physicalLocation"];
    assert_eq!(at["artifactLocation"]["uri"], ".icd-triage.toml");
    assert_eq!(at["region"]["startLine"], 6);
    let add = by_name("add");
    assert_eq!(add["level"], "error");
    assert_eq!(add["properties"]["triage"], "true-positive");
    assert!(add.get("suppressions").is_none(), "{add:#}");
    let notifications = run["invocations"][0]["toolExecutionNotifications"]
        .as_array()
        .unwrap();
    assert_eq!(notifications.len(), if cfg!(unix) { 3 } else { 2 });

    let Some(tool) = multitool() else { return };
    for log in [&old, &new] {
        let report = root.join("validation.sarif");
        let out = Command::new(&tool)
            .args(["validate", "--rule-kind", "Sarif;Gh"])
            .arg(log)
            .arg("--output")
            .arg(&report)
            // A list option: last, so that it does not take the log's path as a value.
            .args(["--log", "ForceOverwrite"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        let problems: Vec<String> = report["runs"][0]["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| matches!(r["level"].as_str(), Some("error" | "warning") | None))
            .map(|r| format!("{} {}", r["ruleId"], r["message"]))
            .collect();
        assert!(problems.is_empty(), "{}: {problems:#?}", log.display());
        // The validator ran on the log: it saw its rules (a log it could not read gives
        // an ERR notification, not results).
        let ran = report["runs"][0]["invocations"][0]["executionSuccessful"].as_bool();
        assert_eq!(ran, Some(true), "{report:#}");
    }
}

fn git(root: &Path, args: &[&str]) {
    let out = Command::new("git")
        .current_dir(root)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn changed_since_classifies_only_functions_on_changed_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    git(root, &["init", "-q"]);
    write(root, "src/math.c", MATH_C);
    write(root, "src/other.c", "int keep(void) { return 7; }\n");
    write(
        root,
        "src/gone.c",
        "int cut(void)\n{\n    int x = 1;\n    return x;\n}\n",
    );
    git(root, &["add", "-A"]);
    git(root, &["commit", "-q", "-m", "base"]);

    // Nothing changed: nothing is classified.
    let (code, found) = rows(root, &["--changed-since", "HEAD"]);
    assert_eq!((code, found.len()), (Some(0), 0));

    // One function edited in the work tree, a line deleted inside another, a file
    // committed since and an untracked one: those are classified, nothing else.
    write(root, "src/math.c", &MATH_C.replace("a - b", "b - a"));
    write(root, "src/gone.c", "int cut(void)\n{\n    return 1;\n}\n");
    git(root, &["commit", "-q", "-am", "edit"]);
    write(root, "src/added.c", "int fresh(void) { return 1; }\n");
    git(root, &["add", "src/added.c"]);
    git(root, &["commit", "-q", "-m", "add"]);
    write(root, "src/untracked.c", "int loose(void) { return 2; }\n");
    let (_, found) = rows(root, &["--changed-since", "HEAD~2"]);
    let names: Vec<&str> = found
        .iter()
        .map(|r| r["function"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["fresh", "cut", "sub", "loose"]);
    // Since the last commit: only the untracked file.
    let (_, found) = rows(root, &["--changed-since", "HEAD"]);
    let names: Vec<&str> = found
        .iter()
        .map(|r| r["function"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["loose"]);

    // What the repository says of its own files bends no comparison and runs nothing:
    // attributes that make C binary or undiffable or filter it through a command,
    // configuration that renames the diff's sides, a changed line that begins with
    // `++ `, a file name with a space.
    write(
        root,
        ".gitattributes",
        "*.c binary\n*.c -diff\n*.c filter=planted\n",
    );
    write(root, "src/with space.c", "int spaced(void) { return 3; }\n");
    git(root, &["add", "-A"]);
    git(root, &["commit", "-q", "-m", "attributes"]);
    git(
        root,
        &["config", "filter.planted.clean", "touch planted-ran; cat"],
    );
    git(
        root,
        &["config", "filter.planted.process", "touch planted-ran"],
    );
    git(root, &["config", "diff.mnemonicPrefix", "true"]);
    git(root, &["config", "diff.noprefix", "true"]);
    write(
        root,
        "src/math.c",
        &MATH_C
            .replace("a - b", "b - a")
            .replace("    return a * b;", "++ b;\n    return a * b;"),
    );
    write(root, "src/with space.c", "int spaced(void) { return 4; }\n");
    let (_, found) = rows(root, &["--changed-since", "HEAD"]);
    let names: Vec<&str> = found
        .iter()
        .map(|r| r["function"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["mul", "spaced"]);
    assert!(
        !root.join("planted-ran").exists(),
        "the repository's filter ran"
    );
    // Nor does a replacement object that puts the change's commit in the base's place.
    git(root, &["config", "--remove-section", "filter.planted"]);
    git(root, &["commit", "-q", "-am", "change"]);
    git(root, &["replace", "HEAD~1", "HEAD"]);
    let (_, found) = rows(root, &["--changed-since", "HEAD~1"]);
    let names: Vec<&str> = found
        .iter()
        .map(|r| r["function"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["mul", "spaced"]);

    // A scanned path outside the repository is an error, not "nothing changed".
    let elsewhere = tempfile::tempdir().unwrap();
    write(elsewhere.path(), "x.c", "int x(void) { return 0; }\n");
    let out = scan(
        root,
        &[
            "--changed-since",
            "HEAD",
            elsewhere.path().to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not in the repository at"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A revision git does not know, or one that reads as an option, is an error.
    for rev in ["no-such-rev", "--output=/tmp/x"] {
        let out = scan(root, &["--changed-since", rev]);
        assert_eq!(out.status.code(), Some(2), "{rev}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("--changed-since"));
    }
}

/// `pre-commit`, or `None` (with a message) where it is not installed outside CI.
fn pre_commit() -> Option<&'static str> {
    let found = Command::new("pre-commit")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    match found {
        true => Some("pre-commit"),
        false if std::env::var_os("CI").is_some() => {
            panic!("CI must run the pre-commit hook: pip install pre-commit (./scripts/test does)")
        }
        false => {
            eprintln!("SKIPPING the pre-commit hook test: pre-commit is not installed (pip install pre-commit)");
            None
        }
    }
}

/// `pre-commit try-repo CHECKOUT icd --all-files` in `project`, with this build's `icd`
/// first on PATH and the fixture as the model.
fn try_hook(tool: &str, project: &Path, home: &Path) -> Output {
    let bin = Path::new(env!("CARGO_BIN_EXE_icd")).parent().unwrap();
    let path = std::env::join_paths(std::iter::once(bin.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    Command::new(tool)
        .current_dir(project)
        .args([
            "try-repo",
            env!("CARGO_MANIFEST_DIR"),
            "icd",
            "--all-files",
            "--verbose",
        ])
        .env("PATH", path)
        .env("ICD_MODEL", fixture("roberta-2-labels"))
        .env("PRE_COMMIT_HOME", home)
        .env_remove("BURN_DEVICE")
        .output()
        .unwrap()
}

#[test]
fn pre_commit_hook_scans_the_staged_c_files() {
    let Some(tool) = pre_commit() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (project, home) = (tmp.path().join("project"), tmp.path().join("home"));
    std::fs::create_dir_all(&project).unwrap();
    git(&project, &["init", "-q"]);
    write(&project, "src/math.c", MATH_C);
    write(&project, "notes.txt", "not C\n");
    git(&project, &["add", "-A"]);

    // The fixture's functions score below 0.5: the hook passes, having classified them.
    let out = try_hook(tool, &project, &home);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("icd (insecure C/C++ functions)") && text.contains("Passed"),
        "{text}"
    );
    assert!(
        text.contains("src/math.c:1-4") && text.contains("0 of 3 functions"),
        "{text}"
    );
    assert!(
        !text.contains("notes.txt"),
        "only C/C++ files reach the hook: {text}"
    );

    // A staged file icd cannot scan fails the hook (exit 2), naming the file.
    std::fs::write(project.join("src/blob.c"), b"int x;\0binary").unwrap();
    git(&project, &["add", "-A"]);
    let out = try_hook(tool, &project, &home);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("Failed") && text.contains("src/blob.c"),
        "{text}"
    );
}

/// `icd --model FIXTURE scan ARGS...` in `root`, without the threshold `scan` sets.
fn scan_plain(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_icd"))
        .current_dir(root)
        .arg("--model")
        .arg(fixture("roberta-2-labels"))
        .arg("scan")
        .args(args)
        .env_remove("BURN_DEVICE")
        .output()
        .unwrap()
}

fn names_of(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["function"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

#[test]
fn icd_toml_is_found_upward_and_flags_win() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write(root, "src/math.c", MATH_C);
    write(
        root,
        "src/vendor/lib.c",
        "int vendored(void) { return 0; }\n",
    );
    write(
        root,
        ".icd.toml",
        "threshold = 0.0\nexclude = [\"src/vendor/**\"]\nwindow = true\nstride = 128\n",
    );
    let out = scan_plain(&root.join("src"), &[".", "--format", "jsonl"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "threshold 0 from the file: {stderr}"
    );
    assert_eq!(names_of(&out), ["add", "sub", "mul"]);
    assert!(
        stderr.contains("settings from") && stderr.contains(".icd.toml"),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 files not scanned: excluded by"),
        "{stderr}"
    );
    let row: Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(
        row["window"]["windows"], 1,
        "window = true from the file: {row}"
    );

    // The exclusion is in the SARIF log as a note.
    let out = scan_plain(root, &["src", "--format", "sarif"]);
    let log = sarif_of(&out);
    let notes: Vec<&Value> = log["runs"][0]["invocations"][0]["toolExecutionNotifications"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["descriptor"]["id"] == "ICD-EXCLUDED")
        .collect();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0]["level"], "note");

    // Flags win; --no-config reads none (default 0.5: the fixture's 0.459 passes).
    let out = scan_plain(root, &["src", "--threshold", "1"]);
    assert_eq!(out.status.code(), Some(0));
    let out = scan_plain(root, &["src", "--no-config", "--format", "jsonl"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(names_of(&out), ["add", "sub", "mul", "vendored"]);

    // The tree's file may not make each token cost more than four windows; a flag may.
    let settings = std::fs::read_to_string(root.join(".icd.toml")).unwrap();
    write(
        root,
        ".icd.toml",
        &settings.replace("stride = 128", "stride = 64"),
    );
    let out = scan_plain(root, &["src"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            ".icd.toml: stride is 64: a settings file may set no stride below a quarter window (128 tokens)"
        ),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = scan_plain(root, &["src", "--stride", "64"]);
    assert_eq!(out.status.code(), Some(1));
    write(root, ".icd.toml", &settings);

    // --config names another file.
    write(root, "strict.toml", "threshold = 0.0\n");
    let out = scan_plain(
        root,
        &["src", "--config", "strict.toml", "--format", "jsonl"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(names_of(&out).len(), 4);

    // A mistake in the file is an error naming the file and the key.
    write(root, ".icd.toml", "treshold = 0.2\n");
    let out = scan_plain(root, &["src"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(".icd.toml") && stderr.contains("treshold"),
        "{stderr}"
    );
    write(root, ".icd.toml", "precision = \"f13\"\n");
    let out = scan_plain(root, &["src"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(".icd.toml") && stderr.contains("precision"),
        "{stderr}"
    );
}
