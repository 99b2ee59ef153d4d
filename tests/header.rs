//! The checked-in C header is exactly what cbindgen generates from src/ffi.rs.

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
