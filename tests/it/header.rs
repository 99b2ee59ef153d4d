//! The checked-in C header is exactly what cbindgen generates from src/ffi/.

#[test]
fn checked_in_header_matches_cbindgen_output() {
    let generated = std::fs::read_to_string(env!("ICD_GENERATED_HEADER")).unwrap();
    let checked_in_path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/include/insecure_code_detector.h"
    );
    let checked_in = std::fs::read_to_string(checked_in_path).unwrap_or_default();
    assert!(
        generated == checked_in,
        "include/insecure_code_detector.h is stale; regenerate it with:\n  cp {} include/",
        env!("ICD_GENERATED_HEADER")
    );
}

/// The comment above each option value in the header says what the Rust table says
/// of it (`Precision::summary`, `Preprocessing::summary`), so the C documentation
/// cannot drift from the Rust one.
#[test]
fn the_headers_option_values_are_documented_as_the_rust_table() {
    use insecure_code_detector::{Precision, Preprocessing};
    let header = include_str!("../../include/insecure_code_detector.h");
    let lines: Vec<&str> = header.lines().collect();
    // The `// ...` lines just above `NAME = number,`, joined into one sentence.
    let documented = |name: &str, number: u32| -> String {
        let at = lines
            .iter()
            .position(|l| l.trim() == format!("{name} = {number},"))
            .unwrap_or_else(|| panic!("the header has no `{name} = {number},`"));
        let mut comment: Vec<&str> = lines[..at]
            .iter()
            .rev()
            .map_while(|l| l.trim().strip_prefix("//"))
            .map(str::trim)
            .collect();
        comment.reverse();
        comment.join(" ")
    };
    for p in Precision::ALL {
        let name = format!("ICD_PRECISION_{}", p.name().to_uppercase());
        assert_eq!(
            documented(&name, p.code()),
            format!("{}.", p.summary()),
            "{name}"
        );
    }
    for p in Preprocessing::ALL {
        let name = format!("ICD_PREPROCESSING_{}", p.name().to_uppercase());
        let expected = format!("{}.", p.summary());
        // Backquotes are the C comment's markup for code.
        assert_eq!(
            documented(&name, p.code()).replace('`', ""),
            expected,
            "{name}"
        );
    }
}
