//! The C library as `scripts/install-c PREFIX` installs it, used the way a C project
//! uses it: `examples/classify_file.c` built with `cc $(pkg-config --cflags --libs
//! insecure_code_detector)` against PREFIX, linked to the versioned soname, and run.
//!
//! Runs where `ICD_INSTALL_PREFIX` names an installed prefix (`./scripts/test` installs
//! one after the release build); elsewhere it says so and passes.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use insecure_code_detector::Detector;

fn prefix() -> Option<PathBuf> {
    match std::env::var_os("ICD_INSTALL_PREFIX") {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            eprintln!("SKIPPED: ICD_INSTALL_PREFIX is not set (./scripts/test installs one with scripts/install-c)");
            None
        }
    }
}

fn run(command: &mut Command) -> String {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn an_analyzer_builds_with_pkg_config_against_the_installed_library() {
    let Some(prefix) = prefix() else { return };
    let lib = prefix.join("lib");
    let version = env!("CARGO_PKG_VERSION");
    let minor = env!("CARGO_PKG_VERSION_MINOR");
    let soname = format!("libinsecure_code_detector.so.0.{minor}");
    // The layout: header, versioned library, soname and development links, archive, .pc.
    assert!(prefix.join("include/insecure_code_detector.h").is_file());
    let real = lib.join(format!("libinsecure_code_detector.so.{version}"));
    assert!(real.is_file() && !real.is_symlink());
    assert_eq!(
        std::fs::read_link(lib.join(&soname)).unwrap(),
        Path::new(&format!("libinsecure_code_detector.so.{version}"))
    );
    assert_eq!(
        std::fs::read_link(lib.join("libinsecure_code_detector.so")).unwrap(),
        Path::new(&soname)
    );
    assert!(lib.join("libinsecure_code_detector.a").is_file());
    let dynamic = run(Command::new("readelf").arg("-d").arg(&real));
    assert!(
        dynamic.contains(&format!("Library soname: [{soname}]")),
        "{dynamic}"
    );

    let pkg_config = |args: &[&str]| {
        run(Command::new("pkg-config")
            .args(args)
            .arg("insecure_code_detector")
            .env("PKG_CONFIG_PATH", lib.join("pkgconfig")))
    };
    assert_eq!(pkg_config(&["--modversion"]).trim(), version);
    let flags: Vec<String> = pkg_config(&["--cflags", "--libs"])
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let exe = tmp.path().join("classify_file");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    run(Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror"])
        .arg(root.join("examples/classify_file.c"))
        .args(&flags)
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-o")
        .arg(&exe));
    // Linked to the soname, not to the development link.
    let needed = run(Command::new("readelf").arg("-d").arg(&exe));
    assert!(
        needed.contains(&format!("Shared library: [{soname}]")),
        "{needed}"
    );

    let model = fixture("roberta-2-labels");
    let sample = root.join("tests/c/sample.c");
    let out = Command::new(&exe)
        .arg(&model)
        .arg(&sample)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let code = std::fs::read_to_string(&sample).unwrap();
    let expected = Detector::from_pretrained(&model)
        .unwrap()
        .predict(&code)
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(i32::from(expected.insecure_probability >= 0.5)),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The installed library has other features than this test's build: the same
    // verdict, and the probability as printed within rounding.
    let printed: f32 = stdout
        .split("insecure probability ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no probability in {stdout}"));
    assert!(
        (printed - expected.insecure_probability).abs() <= 1e-4,
        "{stdout}"
    );
}
