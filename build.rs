//! Generates the C header from src/ffi/ with cbindgen, into OUT_DIR only (the
//! checked-in include/insecure_code_detector.h is compared against it by
//! tests/it/header.rs), and names the CPU-kernel predicate `cpu_kernels`.

use std::path::PathBuf;

fn main() {
    // The one name of the predicate under which this crate's own CPU kernels are
    // compiled.
    cfg_aliases::cfg_aliases! {
        cpu_kernels: { all(target_arch = "x86_64", feature = "cpu-kernels") },
    }
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"))
        .join("insecure_code_detector.h");
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is valid");
    // The C ABI's files, in the order the header declares their functions.
    let mut builder = cbindgen::Builder::new().with_config(config);
    for file in [
        "library",
        "detector",
        "cache",
        "explanation",
        "scan",
        "listing",
        "training",
        "errors",
    ] {
        builder = builder.with_src(crate_dir.join("src/ffi").join(file).with_extension("rs"));
    }
    builder
        .generate()
        .expect("cbindgen could not read src/ffi/")
        .write_to_file(&out);
    println!("cargo:rustc-env=ICD_GENERATED_HEADER={}", out.display());
}
