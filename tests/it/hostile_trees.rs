//! What a pull request's tree can do to a scan, each crafted by the test itself: code
//! the compiler builds but the scanner would not see, fingerprints that would stay put
//! while the code changes, parts of the tree left out unreported, names that collide,
//! and inputs that would cost unbounded memory or abort the process.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::common::*;

fn icd(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_icd"))
        .current_dir(dir)
        .args(args)
        .env_remove("BURN_DEVICE")
        .output()
        .expect("icd runs")
}

fn jsonl(out: &Output) -> Vec<Value> {
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a jsonl row"))
        .collect()
}

/// The functions the compiler defines in `file` in C mode `std` (gcc's `-std=`), or
/// `None` when that mode does not build the file.
fn compiled_functions(file: &Path, std: &str) -> Option<BTreeSet<String>> {
    let object = file.with_extension("o");
    let built = Command::new("cc")
        .args(["-c", "-w", &format!("-std={std}"), "-o"])
        .arg(&object)
        .arg(file)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("a C compiler (cc) runs");
    if !built.success() {
        return None;
    }
    let symbols = Command::new("nm")
        .args(["--defined-only", "-P"])
        .arg(&object)
        .output()
        .expect("nm runs");
    assert!(symbols.status.success());
    Some(
        String::from_utf8_lossy(&symbols.stdout)
            .lines()
            .filter_map(|l| {
                let mut fields = l.split_whitespace();
                let (name, kind) = (fields.next()?, fields.next()?);
                matches!(kind, "T" | "t").then(|| name.to_owned())
            })
            .collect(),
    )
}

/// Texts where tree-sitter's grammar, a naive comment finder and the compiler could
/// read different code; each defines functions named `evil*` that a reader fooled by
/// the text would miss.
const DISAGREEMENTS: &[(&str, &str)] = &[
    (
        "lone-cr-after-line-comment.c",
        "int decoy(void) { return 0; } // note\rint evil(char *s) { return s[0]; }\n",
    ),
    (
        "cr-only-line-ends.c",
        "int a(void) { return 0; }\r// c\rint evil(void) { return 1; }\r",
    ),
    (
        "wide-character-quotes.c",
        "int x = L'/*';\nint evil(void) { return 3; }\nint y = L'*/';\n",
    ),
    (
        "plain-character-quotes.c",
        "int x = '/*';\nint evil(void) { return 3; }\nint y = '*/';\n",
    ),
    (
        "string-holding-a-comment-opener.c",
        "const char *p = \"/*\";\nint evil(void) { return 3; }\nconst char *q = \"*/\";\n",
    ),
    (
        "function-in-a-define.c",
        "#define HIDE int evil(char *s) \\\n  { return s[1]; }\nHIDE\n",
    ),
    (
        "separator-before-a-comment-opener.c",
        "#define S(x) #x\nconst char *p = S(1'/*');\nint evil(char *s) { return s[0]; }\nconst char *q = S(1'*/');\n",
    ),
    (
        "string-continued-after-blanks.c",
        "const char *m = \"x\\ \n/*\";\nint evil(char *s) { return s[0]; }\nconst char *n = \"*/\";\n",
    ),
    (
        "string-continued-by-crlf.c",
        "const char *m = \"x\\\r\n/*\";\r\nint evil(char *s) { return s[0]; }\r\nconst char *n = \"*/\";\r\n",
    ),
    (
        "comment-closed-across-a-splice.c",
        "int a(void) { return 0; }\n/* note *\\\n/\nint evil(char *s) { return s[0]; }\n/* end */\n",
    ),
    (
        "comment-in-a-define-body.c",
        "#define HIDE int evil(char *s) { return s[1]; /* copy */ }\nHIDE\n",
    ),
    (
        "dollar-identifier-before-a-quote.c",
        "#define P$1 +\nint v = 2 P$1'x/*';\nint evil(char *s) { return s[0]; }\n/* end */\n",
    ),
    (
        "comment-across-lines-in-a-define.c",
        "#define HIDE int evil(char *s) /*\n*/ { return s[0]; }\nHIDE\nint after(void) { return 1; }\n",
    ),
    (
        "header-name-holding-a-comment-opener.c",
        "#if __has_include(<nope/*x>)\n#endif\nint evil(char *s) { return s[0]; }\n/* end */\n",
    ),
    (
        "trigraph-escaped-quote.c",
        "const char *s = \"??/\";\nint evil(void) { return 4; } /* \"; */\n",
    ),
    (
        "trigraph-continued-comment.c",
        "int a(void) { return 0; } // note ??/\nint evil(void) { return 5; }\n",
    ),
    (
        "trigraph-hides-the-next-line.c",
        "const char *s = \"??/\" /* \";\nint evil(char *s) { return s[0]; }\n// */ ;\n",
    ),
    (
        "trigraph-reading-inside-another-function.c",
        "int decoy(void) {\n  char *a = \"??/\" /*\";\n  return 0;\n}\nint evil(char *s) { return s[0]; }\nint tail(void) {\n  /* */ \"\";\n  return 0;\n}\n",
    ),
    (
        "raw-string-in-c.c",
        // C11: `R` and a string; GNU C: a raw string running past the next line.
        "#define R sizeof(\n#define x +\nconst char *v = R\"x(\")x\" /* \";\nint evil(char *s) { return s[0]; }\n/* */ ;\n",
    ),
];

#[test]
fn the_scanner_sees_every_function_the_compiler_builds_or_reports_a_gap() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, text) in DISAGREEMENTS {
        let file = tmp.path().join(name);
        std::fs::write(&file, text).unwrap();
        let rows = jsonl(&icd(tmp.path(), &["functions", "--format", "jsonl", name]));
        let listed: BTreeSet<String> = rows
            .iter()
            .map(|r| r["function"].as_str().unwrap().to_owned())
            .collect();
        let out = icd(tmp.path(), &["functions", name]);
        let gap = String::from_utf8_lossy(&out.stderr).contains("could not be parsed");
        // Trigraphs, and in C raw strings, have two readings (GNU modes read no
        // trigraphs and C11 no raw strings): the scanner must report their lines, and
        // still list what either reading builds. Elsewhere it must agree, gap or not.
        let two_readings = name.starts_with("trigraph") || name.starts_with("raw-string");
        if overlapping_lines_needed(name) {
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains("lines 1-9"), "{name}: {stderr}");
        }
        let mut modes = 0;
        for std in ["gnu11", "c11"] {
            let Some(built) = compiled_functions(&file, std) else {
                continue;
            };
            modes += 1;
            let missed: Vec<&String> = built.difference(&listed).collect();
            // Where the readings' definitions overlap, icd reports the lines of both
            // (the function is classified inside the other's code).
            let overlapping = name.contains("inside-another");
            assert!(
                missed.is_empty() || (overlapping && gap),
                "{name} (-std={std}): the compiler builds {missed:?}, icd lists {listed:?}"
            );
        }
        assert!(modes > 0, "{name} builds in neither mode");
        if two_readings {
            assert!(gap, "{name}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
}

/// The case whose second reading's function lies inside the first reading's.
fn overlapping_lines_needed(name: &str) -> bool {
    name.contains("inside-another")
}

fn fingerprints(dir: &Path, file: &str) -> Vec<(String, String)> {
    let out = icd(
        dir,
        &[
            "--model",
            &fixture("roberta-2-labels").display().to_string(),
            "scan",
            file,
            "--format",
            "jsonl",
            "--threshold",
            "0",
        ],
    );
    jsonl(&out)
        .iter()
        .map(|r| {
            (
                r["function"].as_str().unwrap().to_owned(),
                r["fingerprint"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn code_the_compiler_sees_changes_the_fingerprint_and_the_baseline_verdict() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let model = fixture("roberta-2-labels").display().to_string();
    // Each base already holds the construct; each edit adds only code that a reader
    // fooled by it would take for a comment, or moves a directive's end.
    let plain = "int copy(char *buf, const char *s)\n{\n    int w = L'/*';\n    return buf[0] + s[0] + w; // note\n    /* end *\\\n/\n#define UNUSED strcpy(buf, s);\n}\n";
    let trigraph = "int copy(char *buf, const char *s)\n{\n    const char *t = \"??/\" /* \";\n    return buf[0] + t[0];\n}\n";
    let cases = [
        // After a lone CR that ends the line comment.
        (plain, "// note\n", "// note\r strcpy(buf, s); system(s);\n"),
        // Between `L'/*'` and a later `*/`.
        (
            plain,
            "int w = L'/*';\n",
            "int w = L'/*'; strcpy(buf, s); /* */\n",
        ),
        // After a comment closed across a line splice.
        (plain, "/\n#define", "/ strcpy(buf, s);\n#define"),
        // Out of a directive, into the function's code.
        (plain, "UNUSED strcpy", "UNUSED\nstrcpy"),
        // Inside what is a string under trigraphs.
        (
            trigraph,
            "\"??/\" /* \";",
            "\"??/\" /* \"; strcpy(buf, s); /* */",
        ),
    ];
    for (base, from, to) in cases {
        std::fs::write(dir.join("f.c"), base).unwrap();
        let out = icd(
            dir,
            &[
                "--model",
                &model,
                "scan",
                "f.c",
                "--threshold",
                "0",
                "--format",
                "sarif",
                "-o",
                "base.sarif",
            ],
        );
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let original = fingerprints(dir, "f.c");
        assert!(base.contains(from), "{from:?}");
        std::fs::write(dir.join("f.c"), base.replacen(from, to, 1)).unwrap();
        let now = fingerprints(dir, "f.c");
        assert_eq!(now.len(), 1, "{to:?}: {now:?}");
        assert_ne!(now, original, "{to:?} kept the fingerprint");
        let scan = icd(
            dir,
            &[
                "--model",
                &model,
                "scan",
                "f.c",
                "--threshold",
                "0",
                "--format",
                "jsonl",
                "--baseline",
                "base.sarif",
            ],
        );
        let rows = jsonl(&scan);
        assert_eq!(rows[0]["verdict"], "insecure", "{to:?}: {rows:?}");
        assert_eq!(scan.status.code(), Some(1));
    }
    // A comment's own edits and the layout still keep it.
    std::fs::write(dir.join("f.c"), plain).unwrap();
    let original = fingerprints(dir, "f.c");
    let edited = plain
        .replace("{\n", "{ /* reviewed */\n")
        .replace("    return", "\treturn  ");
    std::fs::write(dir.join("f.c"), edited).unwrap();
    assert_eq!(fingerprints(dir, "f.c"), original);
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
        .args(["-c", "protocol.file.allow=always"])
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_submodule_that_is_not_checked_out_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let (sub, top) = (tmp.path().join("sub"), tmp.path().join("top"));
    for dir in [&sub, &top] {
        std::fs::create_dir(dir).unwrap();
        git(dir, &["init", "-q"]);
    }
    std::fs::write(sub.join("s.c"), "int s(void) { return 0; }\n").unwrap();
    git(&sub, &["add", "."]);
    git(&sub, &["commit", "-qm", "s"]);
    std::fs::write(top.join("t.c"), "int t(void) { return 0; }\n").unwrap();
    git(&top, &["submodule", "add", "-q", "../sub", "vendor/sub"]);
    git(&top, &["add", "."]);
    git(&top, &["commit", "-qm", "t"]);
    let clone = tmp.path().join("clone");
    git(tmp.path(), &["clone", "-q", "top", "clone"]);

    let out = icd(&clone, &["functions", "--format", "jsonl", "."]);
    let names: Vec<String> = jsonl(&out)
        .iter()
        .map(|r| r["function"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["t"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("vendor/sub was not scanned: a git submodule that is not checked out"),
        "{stderr}"
    );
    // Checked out, its files are scanned and the gap is gone.
    git(&clone, &["submodule", "update", "-q", "--init"]);
    let out = icd(&clone, &["functions", "--format", "jsonl", "."]);
    let names: Vec<String> = jsonl(&out)
        .iter()
        .map(|r| r["function"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["t", "s"]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("not checked out"));
}

#[test]
#[cfg(unix)]
fn names_that_differ_only_in_bytes_that_are_not_utf8_stay_apart() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let name = |b: &[u8]| std::ffi::OsStr::from_bytes(b).to_owned();
    std::fs::write(dir.join(name(b"a\xff.c")), "int ff(void) { return 1; }\n").unwrap();
    std::fs::write(dir.join(name(b"a\xfe.c")), "int fe(void) { return 2; }\n").unwrap();
    git(dir, &["init", "-q"]);
    git(dir, &["add", "."]);
    git(dir, &["commit", "-qm", "two"]);
    let model = fixture("roberta-2-labels").display().to_string();
    let scan = |extra: &[&str]| {
        let mut args = vec!["--model", model.as_str(), "scan", ".", "--threshold", "0"];
        args.extend_from_slice(extra);
        icd(dir, &args)
    };
    let rows = jsonl(&scan(&["--format", "jsonl"]));
    let files: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r["file"].as_str().unwrap(), r["function"].as_str().unwrap()))
        .collect();
    assert_eq!(files, [("./a\\xfe.c", "fe"), ("./a\\xff.c", "ff")]);
    let table = String::from_utf8_lossy(&scan(&[]).stdout).into_owned();
    assert!(
        table.contains("./a\\xfe.c:1-1") && table.contains("./a\\xff.c:1-1"),
        "{table}"
    );
    let sarif: Value = serde_json::from_slice(&scan(&["--format", "sarif"]).stdout).unwrap();
    let uris: Vec<&str> = sarif["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(uris, ["a%FE.c", "a%FF.c"]);
    // The name leads back to its file: a change to one is seen in that one alone.
    std::fs::write(dir.join(name(b"a\xff.c")), "int ff(void) { return 3; }\n").unwrap();
    let rows = jsonl(&scan(&["--format", "jsonl", "--changed-since", "HEAD"]));
    let changed: Vec<&str> = rows
        .iter()
        .map(|r| r["function"].as_str().unwrap())
        .collect();
    assert_eq!(changed, ["ff"]);
}

#[test]
fn no_file_is_parsed_past_the_memory_its_tree_would_take() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("a.c"), "int a(void) { return 0; }\n").unwrap();
    // A limit past what the parser reads is refused, naming the flag.
    let out = icd(dir, &["functions", "--max-file-size", "33554433", "a.c"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--max-file-size") && stderr.contains("33554432"),
        "{stderr}"
    );
    // At the limit, a larger file is a gap, not a parse.
    std::fs::write(
        dir.join("big.c"),
        "int b(void) { return 0; }\n".repeat(33554433 / 26 + 1),
    )
    .unwrap();
    let out = icd(
        dir,
        &[
            "functions",
            "--max-file-size",
            "33554432",
            "--format",
            "jsonl",
            ".",
        ],
    );
    let names: Vec<String> = jsonl(&out)
        .iter()
        .map(|r| r["function"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["a"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("big.c was not scanned")
            && stderr.contains("past its limit of 33554432 bytes"),
        "{stderr}"
    );
    // The library refuses the same limit.
    let options = insecure_code_detector::scan::TreeOptions {
        max_file_size: 64 << 20,
        dot_ignore: false,
    };
    let error =
        insecure_code_detector::scan::find_functions_under(&[dir.to_path_buf()], &options, None)
            .unwrap_err()
            .to_string();
    assert!(
        error.contains("max_file_size") && error.contains("33554432"),
        "{error}"
    );
}
