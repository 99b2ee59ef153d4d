//! Function finding against Universal Ctags: on trees made to trip a parser
//! (conditionals that split statements and function headers, `#if`/`#elif`/`#else`
//! variants, K&R definitions, macros in and around bodies, C++ methods), every
//! definition ctags lists is found, and nothing is reported that is not a definition.
//! The comparison is `scripts/ctags_crosscheck.py`'s, run on the `icd` binary.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

#[test]
fn every_definition_ctags_lists_is_found_and_none_is_false() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tree = root.join("tests/fixtures/scan-trees");
    let output = Command::new("python3")
        .arg(root.join("scripts/ctags_crosscheck.py"))
        .arg(&tree)
        .args(["--icd", env!("CARGO_BIN_EXE_icd"), "--json"])
        .output()
        .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("Universal Ctags is not installed"),
        "this test needs Universal Ctags: apt-get install universal-ctags (./scripts/test does)"
    );
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("no report ({e}): {stderr}"));
    assert_eq!(report["missed"], serde_json::json!([]), "{report:#}");
    assert!(report["ctags"].as_u64().unwrap() >= 25, "{report:#}");
    assert_eq!(
        report["named_differently"],
        serde_json::json!([]),
        "{report:#}"
    );
    assert_eq!(report["found"], report["ctags"]);
    assert_eq!(output.status.code(), Some(0), "{stderr}");

    // What icd reports beyond ctags: definitions that ctags skips by design (`#if 0`)
    // or misses (a K&R definition with a function-pointer parameter). Each is a real
    // definition, so there is no false one.
    let extra: Vec<(String, String, u64, u64)> = report["extra"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let file = Path::new(d["file"].as_str().unwrap());
            (
                file.file_name().unwrap().to_string_lossy().into_owned(),
                d["function"].as_str().unwrap().to_owned(),
                d["start_line"].as_u64().unwrap(),
                d["end_line"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected = [
        ("elif_variants.c", "disabled", 35, 38),
        ("knr.c", "apply", 20, 26),
    ];
    let expected: Vec<(String, String, u64, u64)> = expected
        .iter()
        .map(|(f, n, a, b)| (f.to_string(), n.to_string(), *a, *b))
        .collect();
    assert_eq!(extra, expected, "{report:#}");
}
