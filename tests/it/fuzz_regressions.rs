//! Replays the fuzz targets' inputs on a stable toolchain: the committed seeds
//! (`fuzz/seeds/<target>/`) and every input a fuzz run failed on
//! (`fuzz/regressions/<target>/`), through the same bodies `cargo fuzz` runs
//! (`fuzz/targets.rs`). A fixed bug stays fixed here without the fuzzer.

#[path = "../../fuzz/targets.rs"]
mod targets;

use std::path::Path;

/// Further seed directories of a target, shared with other tests.
fn extra_seeds(target: &str) -> Vec<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    match target {
        // The function-finding test trees.
        "scan" => vec![root.join("tests/fixtures/scan-trees")],
        _ => Vec::new(),
    }
}

fn replay(target: &str, body: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut replayed = 0;
    let dirs = ["seeds", "regressions"]
        .iter()
        .map(|kind| root.join(kind).join(target))
        .chain(extra_seeds(target));
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut paths: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
        paths.sort();
        for path in paths {
            let data = std::fs::read(&path).unwrap();
            if let Err(panic) = std::panic::catch_unwind(|| body(&data)) {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
                panic!(
                    "{target} fails on {}: {}",
                    path.display(),
                    message.unwrap_or_default()
                );
            }
            replayed += 1;
        }
    }
    assert!(
        replayed > 0,
        "no inputs for the {target} target under {}",
        root.display()
    );
}

#[test]
fn config_inputs() {
    replay("config", targets::config);
}

#[test]
fn checkpoint_inputs() {
    replay("checkpoint", targets::checkpoint);
}

#[test]
fn predict_inputs() {
    replay("predict", targets::predict);
}

#[test]
fn c_api_inputs() {
    replay("c_api", targets::c_api);
}

#[test]
fn scan_inputs() {
    replay("scan", targets::scan);
}

#[test]
fn windows_inputs() {
    replay("windows", targets::windows);
}

#[test]
fn render_inputs() {
    replay("render", targets::render);
}
