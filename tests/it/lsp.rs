//! `icd lsp`, driven by a real LSP client: `tests/lsp/test_icd_lsp.py` (pytest-lsp)
//! against the test build's icd and the fixture model.

use std::process::Command;

use crate::common::*;

#[test]
fn the_language_server_passes_its_client_tests() {
    let workspace = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(root.join("tests/lsp"))
        .env("ICD_BIN", env!("CARGO_BIN_EXE_icd"))
        .env("ICD_LSP_MODEL", fixture("roberta-2-labels"))
        .env("ICD_LSP_WORKSPACE", workspace.path())
        .env("ICD_CACHE_DIR", cache.path())
        .env_remove("ICD_MODEL")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stdout.contains("No module named 'pytest_lsp'")
        || stderr.contains("No module named 'pytest_lsp'")
    {
        panic!("the language server's test needs pytest-lsp: pip install pytest-lsp (./scripts/test does)");
    }
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // Both tests ran: none was skipped.
    assert!(stdout.contains("2 passed"), "{stdout}");
}
