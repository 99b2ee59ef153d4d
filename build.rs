//! Generates the C header from src/ffi.rs with cbindgen, into OUT_DIR only. The
//! checked-in include/insecure_code_detector.h is compared against it by
//! tests/header.rs.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=src/ffi.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"))
        .join("insecure_code_detector.h");
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is valid");
    cbindgen::Builder::new()
        .with_config(config)
        .with_src(crate_dir.join("src/ffi.rs"))
        .generate()
        .expect("cbindgen could not read src/ffi.rs")
        .write_to_file(&out);
    println!("cargo:rustc-env=ICD_GENERATED_HEADER={}", out.display());
}
