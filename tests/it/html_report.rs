//! `icd scan --format html`, opened by headless Chromium through Selenium
//! (`tests/formats/browse_html.py`): the rendered list, sources, shading, sorting and
//! filters, on a tree whose code and names try to inject markup and scripts, with the
//! page's Content-Security-Policy in force.

use std::path::{Path, PathBuf};

use crate::common::*;
use serde_json::Value;

/// A function whose comment and string hold markup that would run if written as it
/// is, and one with Trojan Source's bidirectional controls.
fn hostile_c() -> String {
    "#include <string.h>\n\n\
     void render(char *out)\n{\n    /* <img src=x onerror=\"window.__pwned='img'\"> */\n    \
     strcpy(out, \"</script><script>window.__pwned='script'</script>\");\n}\n\n\
     int trojan(int admin)\n{\n    /* \u{202e} } \u{2066}if (admin)\u{2069} \u{2066} begin admins only */\n    \
     return admin;\n}\n"
        .to_owned()
}

const HOSTILE_FILE: &str = "src/<img src=x onerror=alert(1)>.c";

fn write_tree(root: &Path) {
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::write(root.join("src/hostile.c"), hostile_c()).unwrap();
    std::fs::write(root.join(HOSTILE_FILE), MATH_C).unwrap();
    std::fs::write(
        root.join("src/ignored.c"),
        "// icd: ignore reviewed\nint quiet(int *a)\n{\n    return a[0];\n}\n",
    )
    .unwrap();
    std::fs::write(root.join("src/blob.c"), b"int x;\0\x01binary\n").unwrap();
}

/// Headless Chromium and its driver: Debian's, or ICD_CHROMIUM and ICD_CHROMEDRIVER.
fn chromium() -> Option<()> {
    let browser =
        std::env::var_os("ICD_CHROMIUM").map_or(PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    let driver = std::env::var_os("ICD_CHROMEDRIVER")
        .map_or(PathBuf::from("/usr/bin/chromedriver"), PathBuf::from);
    if browser.is_file() && driver.is_file() {
        return Some(());
    }
    if std::env::var_os("CI").is_some() {
        panic!("CI must open the HTML report: install chromium and chromium-driver (./scripts/test does)");
    }
    eprintln!(
        "SKIPPING the browser check: no {} or {}",
        browser.display(),
        driver.display()
    );
    None
}

#[test]
fn chromium_shows_the_report_and_runs_nothing_from_the_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write_tree(root);
    let args = ["--threshold", "0", "--explain", "--top-lines", "2"];
    let out = icd_in(
        root,
        &[
            &["scan", ".", "--format", "html", "-o", "report.html"],
            &args[..],
        ]
        .concat(),
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let html = std::fs::read_to_string(root.join("report.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    // Self-contained: nothing is fetched.
    for reference in ["src=\"", "href=\"http", "@import", "url("] {
        assert!(!html.contains(reference), "{reference} in the page");
    }
    let out = icd_in(
        root,
        &[&["scan", ".", "--format", "jsonl"], &args[..]].concat(),
    );
    let rows: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    if chromium().is_none() {
        return;
    }
    let screenshot = root.join("report.png");
    let report = root.join("report.html");
    let page = format_reader(
        "browse_html.py",
        &[
            report.as_os_str(),
            "onerror=alert".as_ref(),
            screenshot.as_os_str(),
        ],
        "selenium",
    );
    let loaded = &page["loaded"];
    eprintln!("the report loaded in {} ms", page["load_ms"]);

    // Nothing from the tree became an element or ran; the page's own script and style
    // are the only ones, and the policy let them run (the counter is the script's).
    let elements = &loaded["elements"];
    for (tag, n) in [
        ("script", 1),
        ("style", 1),
        ("img", 0),
        ("iframe", 0),
        ("object", 0),
        ("embed", 0),
        ("link", 0),
    ] {
        assert_eq!(elements[tag], n, "<{tag}>: {elements}");
    }
    assert_eq!(loaded["pwned"], Value::Null);
    let console: Vec<&str> = page["console"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert!(
        console
            .iter()
            .all(|m| !m.contains("Content Security Policy") && !m.contains("Refused")),
        "{console:?}"
    );
    let total = rows.len();
    assert_eq!(loaded["shown"], format!("{total} of {total} shown"));

    // A row and an article per function at or above the threshold (all, at 0), names
    // and places as text.
    let list = loaded["rows"].as_array().unwrap();
    assert_eq!(list.len(), total);
    let mut listed: Vec<(String, String, String)> = list
        .iter()
        .map(|r| {
            let c = &r["cells"];
            (
                c[2].as_str().unwrap().into(),
                c[3].as_str().unwrap().into(),
                r["verdict"].as_str().unwrap().into(),
            )
        })
        .collect();
    let mut expected: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["function"].as_str().unwrap().into(),
                format!(
                    "{}:{}-{}",
                    r["file"].as_str().unwrap(),
                    r["start_line"],
                    r["end_line"]
                ),
                r["verdict"].as_str().unwrap().into(),
            )
        })
        .collect();
    listed.sort();
    expected.sort();
    assert_eq!(listed, expected);
    assert!(
        listed
            .iter()
            .any(|(_, place, _)| place == &format!("./{HOSTILE_FILE}:1-4")),
        "{listed:?}"
    );
    assert_eq!(loaded["articles"].as_array().unwrap().len(), total);

    // Each function's source, line for line, as text: the markup in render() shows as
    // written, the bidirectional controls in trojan() as \u{...}.
    let source = std::fs::read_to_string(root.join("src/hostile.c")).unwrap();
    let file_lines: Vec<&str> = source.lines().collect();
    let sources = loaded["sources"].as_object().unwrap();
    let headings = loaded["headings"].as_object().unwrap();
    let article_of = |function: &str| {
        let id = headings
            .iter()
            .find(|(_, h)| {
                h.as_str()
                    .unwrap()
                    .starts_with(&format!("{function} in ./src/hostile.c"))
            })
            .unwrap_or_else(|| panic!("no article for {function}: {headings:?}"))
            .0;
        sources[id].as_array().unwrap()
    };
    let render = article_of("render");
    assert_eq!(render.len(), 5);
    for line in render {
        let n = line["line"].as_u64().unwrap() as usize;
        assert_eq!(line["text"], file_lines[n - 1], "line {n}");
    }
    let trojan = article_of("trojan");
    let comment = trojan[2]["text"].as_str().unwrap();
    assert!(
        comment.contains("\\u{202e}") && comment.contains("\\u{2066}"),
        "{comment}"
    );
    assert!(!comment.contains('\u{202e}'));

    // Shading: each function's highest line at the darkest level, and its top lines
    // (the jsonl's) marked, no others.
    for row in &rows {
        let id = headings
            .iter()
            .find(|(_, h)| {
                h.as_str().unwrap()
                    == format!(
                        "{} in {}, lines {}-{}",
                        row["function"].as_str().unwrap(),
                        row["file"].as_str().unwrap(),
                        row["start_line"],
                        row["end_line"]
                    )
            })
            .unwrap()
            .0;
        let lines = sources[id].as_array().unwrap();
        let top: Vec<u64> = row["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["line"].as_u64().unwrap())
            .collect();
        let marked: Vec<u64> = lines
            .iter()
            .filter(|l| l["classes"].as_str().unwrap().split(' ').any(|c| c == "t"))
            .map(|l| l["line"].as_u64().unwrap())
            .collect();
        let mut top_sorted = top.clone();
        top_sorted.sort();
        assert_eq!(marked, top_sorted, "{id}");
        let darkest = lines.iter().find(|l| l["line"] == top[0]).unwrap();
        assert!(
            darkest["classes"].as_str().unwrap().contains("s9"),
            "{darkest}"
        );
    }

    // Sorting, the text filter (rows and articles) and the verdict filter.
    let ascending: Vec<f64> = page["sorted_ascending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().parse().unwrap())
        .collect();
    assert!(ascending.windows(2).all(|w| w[0] <= w[1]), "{ascending:?}");
    // By location: file, then line as a number (10 after 9), and reversed.
    let key = |place: &Value| {
        let place = place.as_str().unwrap();
        let (file, lines) = place.rsplit_once(':').unwrap();
        let start: usize = lines.split('-').next().unwrap().parse().unwrap();
        (file.to_owned(), start)
    };
    let by_location: Vec<(String, usize)> = page["sorted_by_location"]
        .as_array()
        .unwrap()
        .iter()
        .map(key)
        .collect();
    let mut sorted = by_location.clone();
    sorted.sort();
    assert_eq!(by_location, sorted);
    assert!(by_location.contains(&("./src/hostile.c".to_owned(), 9)));
    let mut descending: Vec<(String, usize)> = page["sorted_by_location_descending"]
        .as_array()
        .unwrap()
        .iter()
        .map(key)
        .collect();
    descending.reverse();
    assert_eq!(descending, sorted);
    let filtered = &page["filtered"];
    let shown = filtered["rows"].as_array().unwrap();
    assert_eq!(shown.len(), 3, "{filtered}");
    assert!(shown
        .iter()
        .all(|r| r["cells"][3].as_str().unwrap().contains("onerror=alert")));
    assert_eq!(filtered["shown"], format!("3 of {total} shown"));
    assert_eq!(filtered["articles_shown"].as_array().unwrap().len(), 3);
    let suppressed = page["suppressed_only"].as_array().unwrap();
    assert_eq!(suppressed.len(), 1, "{suppressed:?}");
    assert_eq!(suppressed[0]["cells"][2], "quiet");

    let png = std::fs::read(&screenshot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    if let Some(dir) = std::env::var_os("ICD_TEST_ARTIFACTS") {
        std::fs::copy(&screenshot, Path::new(&dir).join("html-report.png")).unwrap();
    }
}
