//! `icd scan --format markdown` and `--format junit`, read by the programs that read
//! them: the Markdown rendered by markdown-it-py as GitHub renders it (GFM tables and
//! autolinks, raw HTML let through), the JUnit XML validated against Jenkins' JUnit
//! schema and read by junitparser (`tests/formats/*.py`). The scanned tree holds
//! names that try to inject links, HTML, mentions and table cells.

use std::path::{Path, PathBuf};

use crate::common::*;
use serde_json::Value;

/// A directory and a file whose names are Markdown links, HTML, a mention, a table
/// cell's end, backticks and an autolink; XML's special characters, a control
/// character and a character XML cannot hold.
const HOSTILE_DIR: &str = "src/[x](javascript:alert(1))";
const HOSTILE_FILE: &str =
    "<img src=x onerror=alert(1)>|@octocat `a` www.evil.example &amp;\"']]>\u{1b}\u{fffe}.c";

const LINK_BASE: &str = "https://github.com/owner/repo/blob/0123abc/";

/// Markdown's cap on listed findings (`emit::markdown::LISTED`).
const LISTED: usize = 20;

/// The tree: the hostile file, a plain one, C++ operators, a function suppressed in
/// the source, and a binary file (not scanned).
fn write_tree(root: &Path) {
    std::fs::create_dir_all(root.join(HOSTILE_DIR)).unwrap();
    std::fs::write(root.join(HOSTILE_DIR).join(HOSTILE_FILE), MATH_C).unwrap();
    std::fs::write(root.join("src/plain.c"), MATH_C).unwrap();
    std::fs::write(
        root.join("src/ops.cpp"),
        "struct A { int v; };\nbool operator|(const A &a, const A &b)\n{\n    return a.v | b.v;\n}\n\
         bool operator<(const A &a, const A &b)\n{\n    return a.v < b.v;\n}\n",
    )
    .unwrap();
    std::fs::write(
        root.join("src/ignored.c"),
        "// icd: ignore reviewed\nint quiet(int *a)\n{\n    return a[0];\n}\n",
    )
    .unwrap();
    std::fs::write(root.join("src/blob.c"), b"int x;\0\x01binary\n").unwrap();
}

/// The scan's functions as jsonl rows, each with its verdict.
fn rows(root: &Path, args: &[&str]) -> Vec<Value> {
    let out = icd_in(root, &[&["scan", ".", "--format", "jsonl"], args].concat());
    assert!(out.status.code().is_some_and(|c| c < 2), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `tests/formats/SCRIPT` run on `args`: its JSON output.
fn python(script: &str, args: &[&Path]) -> Value {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    format_reader(
        script,
        &args,
        "markdown-it-py, linkify-it-py, junitparser and xmlschema",
    )
}

/// Jenkins' JUnit schema: `ICD_JUNIT_XSD` (./scripts/test takes it from pytest's
/// source distribution, whose tests validate against it).
fn junit_schema() -> Option<PathBuf> {
    match std::env::var_os("ICD_JUNIT_XSD") {
        Some(path) => {
            let path = PathBuf::from(path);
            assert!(
                path.is_file(),
                "ICD_JUNIT_XSD={} is no file",
                path.display()
            );
            Some(path)
        }
        None if std::env::var_os("CI").is_some() => {
            panic!("CI must validate JUnit XML: set ICD_JUNIT_XSD (./scripts/test does)")
        }
        None => {
            eprintln!("SKIPPING the JUnit schema check: ICD_JUNIT_XSD is not set (./scripts/test sets it)");
            None
        }
    }
}

/// Percent-decoding of a link's path.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// Text as `printable` shows it: controls as `\u{…}`.
fn shown(text: &str) -> String {
    text.chars()
        .map(|c| match c.is_control() {
            true => c.escape_unicode().to_string(),
            false => c.to_string(),
        })
        .collect()
}

#[test]
fn markdown_renders_hostile_names_as_text_with_links_into_the_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write_tree(root);
    let args = ["--threshold", "0", "--explain", "--top-lines", "2"];
    let expected = rows(root, &args);
    let out = icd_in(
        root,
        &[
            &[
                "scan",
                ".",
                "--format",
                "markdown",
                "-o",
                "report.md",
                "--link-base",
                LINK_BASE,
            ],
            &args[..],
        ]
        .concat(),
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let page = python("render_markdown.py", &[&root.join("report.md")]);
    let html = page["html"].as_str().unwrap();

    // Only the elements the report makes: no image, script or other injected HTML.
    let allowed = [
        "h3", "p", "ul", "li", "strong", "table", "thead", "tbody", "tr", "th", "td", "a", "code",
    ];
    for tag in page["tags"].as_object().unwrap().keys() {
        assert!(allowed.contains(&tag.as_str()), "element <{tag}> in {html}");
    }
    // Nothing from the tree outside code spans, where GitHub would make mentions and
    // links of it.
    let prose = page["prose"].as_str().unwrap();
    for injected in ["@", "www.", "javascript", "onerror", "octocat"] {
        assert!(
            !prose.contains(injected),
            "{injected:?} outside code in {html}"
        );
    }

    // A row per finding, five cells each (no name split a row), most probable first.
    let findings: Vec<&Value> = expected
        .iter()
        .filter(|r| r["verdict"] == "insecure" || r["verdict"] == "confirmed")
        .collect();
    assert!(
        findings.len() >= 6 && findings.len() <= LISTED,
        "{expected:?}"
    );
    let table = page["rows"].as_array().unwrap();
    assert_eq!(table.len(), findings.len() + 1, "{html}");
    let mut listed: Vec<(String, String)> = Vec::new();
    let mut last = f64::INFINITY;
    for row in &table[1..] {
        let cells: Vec<&str> = row
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert_eq!(cells.len(), 5, "{cells:?}");
        let p: f64 = cells[0].parse().unwrap();
        assert!(p <= last, "not most probable first: {table:?}");
        last = p;
        assert_eq!(cells[1], "insecure");
        listed.push((cells[2].to_owned(), cells[3].to_owned()));
    }
    let mut wanted: Vec<(String, String)> = findings
        .iter()
        .map(|r| {
            let file = shown(r["file"].as_str().unwrap());
            let place = format!("{file}:{}-{}", r["start_line"], r["end_line"]);
            (r["function"].as_str().unwrap().to_owned(), place)
        })
        .collect();
    listed.sort();
    wanted.sort();
    assert_eq!(listed, wanted);
    assert!(listed.iter().any(|(f, _)| f == "operator|"));
    let hostile = shown(&format!("./{HOSTILE_DIR}/{HOSTILE_FILE}"));
    assert!(
        listed
            .iter()
            .any(|(_, place)| place == &format!("{hostile}:1-4")),
        "{listed:?}"
    );

    // Every link goes to a finding's file and lines under the base; the location's
    // link and one per top line.
    let links = page["links"].as_array().unwrap();
    assert_eq!(links.len(), findings.len() * 3, "{links:?}");
    for link in links {
        let href = link["href"].as_str().unwrap();
        let target = href
            .strip_prefix(LINK_BASE)
            .unwrap_or_else(|| panic!("{href}"));
        let (path, anchor) = target.split_once('#').unwrap();
        let path = percent_decoded(path);
        assert!(
            findings
                .iter()
                .any(|r| r["file"].as_str().unwrap().trim_start_matches("./") == path),
            "{path:?}"
        );
        let lines = anchor.strip_prefix('L').unwrap();
        assert!(
            lines.split("-L").all(|n| n.parse::<usize>().is_ok()),
            "{anchor}"
        );
    }

    // What was not scanned, named.
    assert!(
        page["code"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "./src/blob.c"),
        "{html}"
    );
    assert!(html.contains("Not scanned"));
    // One function suppressed in the source, counted.
    assert!(
        html.contains("1 suppressed by <code>icd: ignore</code> comments"),
        "{html}"
    );
}

#[test]
fn markdown_links_are_relative_without_a_base_and_a_bad_base_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::write(root.join("src/a b.c"), MATH_C).unwrap();
    let out = icd_in(
        root,
        &[
            "scan",
            ".",
            "--format",
            "markdown",
            "--threshold",
            "0",
            "-o",
            "r.md",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let page = python("render_markdown.py", &[&root.join("r.md")]);
    let hrefs: Vec<&str> = page["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["href"].as_str().unwrap())
        .collect();
    assert_eq!(
        hrefs,
        [
            "src/a%20b.c#L1-L4",
            "src/a%20b.c#L6-L9",
            "src/a%20b.c#L11-L14"
        ]
    );

    for (args, error) in [
        (
            vec![
                "--format",
                "markdown",
                "--link-base",
                "javascript:alert(1)//",
            ],
            "--link-base is \"javascript:alert(1)//\": expected an http:// or https:// URL",
        ),
        (
            vec!["--format", "table", "--link-base", LINK_BASE],
            "--link-base applies to --format markdown only",
        ),
    ] {
        let out = icd_in(
            root,
            &[&["scan", ".", "-o", "refused.md"], &args[..]].concat(),
        );
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(error), "{stderr}");
        assert!(!root.join("refused.md").exists());
    }
}

#[test]
fn markdown_lists_the_top_findings_and_counts_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let code: String = (0..LISTED + 5)
        .map(|i| format!("int f{i}(int *a)\n{{\n    return a[{i}];\n}}\n\n"))
        .collect();
    std::fs::write(root.join("many.c"), code).unwrap();
    let out = icd_in(
        root,
        &["scan", ".", "--format", "markdown", "--threshold", "0"],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("### insecure-code-detector: 25 findings in 25 functions\n"),
        "{text}"
    );
    std::fs::write(root.join("r.md"), &text).unwrap();
    let page = python("render_markdown.py", &[&root.join("r.md")]);
    assert_eq!(page["rows"].as_array().unwrap().len(), LISTED + 1);
    assert!(
        text.contains(
            "5 more findings not listed here (the SARIF log and `--format table` list every one)."
        ),
        "{text}"
    );
}

#[test]
fn junit_is_valid_and_has_a_case_per_function_a_failure_per_finding() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write_tree(root);
    // A threshold between the functions' probabilities, so that some pass.
    let all = rows(root, &["--threshold", "0"]);
    let mut probabilities: Vec<f64> = all
        .iter()
        .map(|r| r["insecure_probability"].as_f64().unwrap())
        .collect();
    probabilities.sort_by(f64::total_cmp);
    // As the f32 it is, so that the report prints it as given.
    let threshold = (probabilities[probabilities.len() / 2] as f32).to_string();
    let expected = rows(root, &["--threshold", &threshold]);
    let out = icd_in(
        root,
        &[
            "scan",
            ".",
            "--format",
            "junit",
            "--threshold",
            &threshold,
            "-o",
            "report.xml",
        ],
    );
    assert!(out.status.code().is_some_and(|c| c < 2), "{out:?}");
    // Validated where the schema is at hand (always in CI), read in any case.
    let schema = junit_schema().unwrap_or_else(|| PathBuf::from("-"));
    let xml = python("read_junit.py", &[&root.join("report.xml"), &schema]);

    let count = |verdicts: &[&str]| {
        expected
            .iter()
            .filter(|r| verdicts.contains(&r["verdict"].as_str().unwrap()))
            .count() as u64
    };
    let failures = count(&["insecure", "confirmed"]);
    assert!(failures > 0 && count(&["ok"]) > 0, "{expected:?}");
    assert_eq!(xml["failures"], failures);
    assert_eq!(xml["errors"], 0);
    // Every function, and the binary file not scanned.
    assert_eq!(xml["tests"].as_u64().unwrap(), expected.len() as u64 + 1);

    let suites = xml["suites"].as_array().unwrap();
    let mut seen = 0;
    for row in &expected {
        let file = shown(row["file"].as_str().unwrap()).replace('\u{fffe}', "\\u{fffe}");
        let name = format!(
            "{} (lines {}-{})",
            row["function"].as_str().unwrap(),
            row["start_line"],
            row["end_line"]
        );
        let suite = suites
            .iter()
            .find(|s| s["name"] == file.as_str())
            .unwrap_or_else(|| panic!("no suite {file:?}: {xml}"));
        let case = suite["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name.as_str() && c["classname"] == file.as_str())
            .unwrap_or_else(|| panic!("no case {name:?} in {suite}"));
        let kinds: Vec<&str> = case["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["kind"].as_str().unwrap())
            .collect();
        let want: &[&str] = match row["verdict"].as_str().unwrap() {
            "insecure" | "confirmed" => &["failure"],
            "suppressed" | "baseline" => &["skipped"],
            _ => &[],
        };
        assert_eq!(kinds, want, "{row} {case}");
        if row["verdict"] == "insecure" {
            let p = row["insecure_probability"].as_f64().unwrap();
            assert_eq!(
                case["results"][0]["message"],
                format!("classified insecure: probability {p:.3}, at or above {threshold}")
            );
        }
        if row["verdict"] == "suppressed" {
            assert!(case["results"][0]["message"]
                .as_str()
                .unwrap()
                .starts_with("suppressed by an `icd: ignore` comment"));
        }
        seen += 1;
    }
    assert_eq!(seen, expected.len());
    let gaps = suites.iter().find(|s| s["name"] == "not scanned").unwrap();
    assert_eq!(gaps["skipped"], 1);
    assert_eq!(gaps["cases"][0]["name"], "./src/blob.c");
    // The hostile file's suite holds its name, the control character escaped, and
    // U+FFFE, which XML cannot hold, as text.
    let hostile =
        shown(&format!("./{HOSTILE_DIR}/{HOSTILE_FILE}")).replace('\u{fffe}', "\\u{fffe}");
    assert!(
        suites.iter().any(|s| s["name"] == hostile.as_str()),
        "{xml}"
    );
}
