//! Hostile input: huge functions, binary garbage, huge batches. Each returns a result
//! in bounded time and memory, and the detector stays usable.

use std::time::Instant;

use crate::common::*;
use insecure_code_detector::Detector;

/// `n` pseudo-random bytes (xorshift64 from `seed`).
fn random_bytes(mut state: u64, n: usize) -> Vec<u8> {
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

#[test]
fn ten_megabyte_function_is_truncated() {
    let detector = Detector::from_pretrained(fixture("roberta-2-labels")).unwrap();
    let line = "    if (buf[i] != ctx->data[i]) { memcpy(dst + i, src, len - i); }\n";
    let huge: String = line.repeat(10_000_000 / line.len() + 1);
    assert!(huge.len() >= 10_000_000);
    let started = Instant::now();
    let p = detector.predict(&huge).unwrap();
    eprintln!("10 MB function: {:?}", started.elapsed());
    assert!(p.truncated);
    assert_eq!(p.tokens, detector.max_tokens());
    // Same tokens, so the same verdict, as the first part of it alone.
    let head: String = line.repeat(200);
    let q = detector.predict(&head).unwrap();
    assert_eq!(p.logits, q.logits);
}

#[test]
fn binary_garbage_and_control_characters_classify() {
    let detector = Detector::from_pretrained(fixture("roberta-2-labels")).unwrap();
    let bytes = random_bytes(0x2545_f491_4f6c_dd1d, 100_000);
    let text = String::from_utf8_lossy(&bytes);
    let p = detector.predict(&text).unwrap();
    assert!(p.insecure_probability.is_finite());
    let p = detector.predict("\0\u{1}\u{7f}\u{feff}\u{10ffff}").unwrap();
    assert!(p.insecure_probability.is_finite());
    assert!(detector.predict("int x;").is_ok());
}

#[test]
fn hundred_thousand_tiny_functions_in_one_batch_call() {
    let detector = Detector::builder(fixture("roberta-2-labels"))
        .batch_size(64)
        .build()
        .unwrap();
    let codes: Vec<String> = (0..100_000)
        .map(|i| format!("int f{i}(void) {{ return {i}; }}"))
        .collect();
    let refs: Vec<&str> = codes.iter().map(String::as_str).collect();
    let started = Instant::now();
    let predictions = detector.predict_batch(&refs).unwrap();
    eprintln!("100000 tiny functions: {:?}", started.elapsed());
    assert_eq!(predictions.len(), codes.len());
    for i in [0, 4_999, 99_999] {
        assert_eq!(
            predictions[i],
            detector.predict(&codes[i]).unwrap(),
            "input {i}"
        );
    }
}

/// A copy of the 2-label fixture with its safetensors weights only, where `patch`
/// rewrites the f32 values of tensor `name`.
fn patched_checkpoint(name: &str, patch: impl Fn(&mut [f32])) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for file in [
        "config.json",
        "vocab.json",
        "merges.txt",
        "tokenizer_config.json",
    ] {
        std::fs::copy(
            fixture("roberta-2-labels").join(file),
            dir.path().join(file),
        )
        .unwrap();
    }
    let mut bytes = std::fs::read(fixture("roberta-2-labels").join("model.safetensors")).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let offsets = &header[name]["data_offsets"];
    let start = 8 + header_len + offsets[0].as_u64().unwrap() as usize;
    let end = 8 + header_len + offsets[1].as_u64().unwrap() as usize;
    let mut values: Vec<f32> = bytes[start..end]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    patch(&mut values);
    for (chunk, v) in bytes[start..end].chunks_exact_mut(4).zip(values) {
        chunk.copy_from_slice(&v.to_le_bytes());
    }
    std::fs::write(dir.path().join("model.safetensors"), bytes).unwrap();
    dir
}

/// The error that loading `dir` gives, as text.
fn load_message(dir: &std::path::Path) -> String {
    match Detector::from_pretrained(dir) {
        Ok(_) => panic!("{} loaded, expected an error", dir.display()),
        Err(e) => e.to_string(),
    }
}

fn icd(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_icd"))
        .args(args)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap()
}

#[test]
fn nan_or_infinite_weights_are_refused_at_load_naming_the_tensor() {
    for (bad, what) in [
        (f32::NAN, "NaN"),
        (f32::INFINITY, "inf"),
        (f32::NEG_INFINITY, "-inf"),
    ] {
        let name = "roberta.encoder.layer.1.intermediate.dense.weight";
        let dir = patched_checkpoint(name, |v| {
            v[7] = bad;
            v[100] = bad;
        });
        let error = Detector::from_pretrained(dir.path()).unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(
                error,
                insecure_code_detector::Error::NonFiniteTensor { count: 2, .. }
            ) && message.contains(name)
                && message.contains("model.safetensors"),
            "{what}: {message}"
        );
        // And icd fails with that message (exit 2), never a verdict.
        let code_file = dir.path().join("f.c");
        std::fs::write(&code_file, "int f(void) { return 0; }\n").unwrap();
        let model = dir.path().display().to_string();
        let out = icd(&["--model", &model, "scan", &code_file.display().to_string()]);
        assert_eq!(out.status.code(), Some(2), "{what}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(name),
            "{what}"
        );
    }
}

#[test]
fn finite_weights_past_the_range_of_f16_are_refused_in_f16_only() {
    let name = "classifier.dense.weight";
    let dir = patched_checkpoint(name, |v| v[3] = 1.0e6);
    // f32 holds 1e6: the model loads and gives finite verdicts.
    let detector = Detector::from_pretrained(dir.path()).unwrap();
    assert!(detector
        .predict("int x;")
        .unwrap()
        .insecure_probability
        .is_finite());
    // f16 does not (its largest value is 65504).
    let error = Detector::builder(dir.path())
        .precision(insecure_code_detector::Precision::F16)
        .build()
        .unwrap_err();
    assert!(
        matches!(
            error,
            insecure_code_detector::Error::NonFiniteTensor { count: 1, .. }
        ) && error.to_string().contains(name),
        "{error}"
    );
}

#[test]
fn non_finite_logits_are_an_error_naming_the_input_and_the_function() {
    // Finite weights whose products overflow f32: the logits are infinite or NaN.
    let dir = patched_checkpoint("classifier.out_proj.weight", |v| v.fill(3.0e38));
    let detector = Detector::from_pretrained(dir.path()).unwrap();
    let error = detector.predict("int f(void) { return 0; }").unwrap_err();
    assert!(
        matches!(
            error,
            insecure_code_detector::Error::NonFiniteLogits { input: 0, .. }
        ),
        "{error}"
    );
    let codes = ["int a;", "int b(void) { return 1; }", "char c[4];"];
    match detector.predict_batch(&codes).unwrap_err() {
        insecure_code_detector::Error::NonFiniteLogits { input, logits } => {
            assert!(input < codes.len());
            assert!(logits.iter().any(|l| !l.is_finite()), "{logits:?}");
        }
        other => panic!("{other}"),
    }
    assert!(detector.predict_windows("int x;", 10).is_err());

    // icd scan exits 2, naming the function, instead of reporting "ok".
    let code_file = dir.path().join("f.c");
    std::fs::write(&code_file, "int only(void)\n{\n    return 0;\n}\n").unwrap();
    let model = dir.path().display().to_string();
    for extra in [&[][..], &["--window"][..]] {
        let mut args = vec!["--model", &model, "scan"];
        let file = code_file.display().to_string();
        args.push(&file);
        args.extend_from_slice(extra);
        let out = icd(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(
            stderr.contains("f.c:1-4: function `only`") && stderr.contains("non-finite logits"),
            "{extra:?}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "no report on failure: {extra:?}");
    }
}

fn model() -> String {
    fixture("roberta-2-labels").display().to_string()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(unix)]
#[test]
fn scan_output_replaces_a_planted_link_and_never_overwrites_an_input() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("a.c"), "int f(void) { return 0; }\n").unwrap();
    let victim = tmp.path().join("victim.txt");
    std::fs::write(&victim, "precious").unwrap();
    let report = src.join("report.sarif");
    std::os::unix::fs::symlink(&victim, &report).unwrap();
    let (model, src_arg) = (model(), src.display().to_string());
    let out = icd(&[
        "--model",
        &model,
        "scan",
        &src_arg,
        "--format",
        "sarif",
        "-o",
        &report.display().to_string(),
    ]);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    let meta = std::fs::symlink_metadata(&report).unwrap();
    assert!(meta.is_file(), "the link was replaced by the report");
    let sarif: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(sarif["version"], "2.1.0");

    // A stream named as the output is written to, and stays a stream.
    let null = src.join("null.sarif");
    std::os::unix::fs::symlink("/dev/null", &null).unwrap();
    let out = icd(&[
        "--model",
        &model,
        "scan",
        &src_arg,
        "-o",
        &null.display().to_string(),
    ]);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        text(&out.stderr)
    );
    assert!(std::fs::symlink_metadata(&null).unwrap().is_symlink());
    std::fs::remove_file(&null).unwrap();

    // The scanned file itself as the output: refused, the file untouched.
    let input = src.join("a.c");
    let out = icd(&[
        "--model",
        &model,
        "scan",
        &src_arg,
        "-o",
        &input.display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("refusing to write"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&input).unwrap(),
        "int f(void) { return 0; }\n"
    );
    // No temporary file is left behind.
    let mut names: Vec<String> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["a.c", "report.sarif"]);
}

#[cfg(unix)]
#[test]
fn convert_never_destroys_its_input_nor_writes_through_a_link() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("pytorch_model.bin");
    std::fs::copy(fixture("roberta-2-labels").join("pytorch_model.bin"), &bin).unwrap();
    let original = std::fs::read(&bin).unwrap();
    let bin_arg = bin.display().to_string();
    let out = icd(&["convert", &bin_arg, &bin_arg]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("refusing to write"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read(&bin).unwrap(), original);

    // model.safetensors planted as a link to a file elsewhere: replaced, not followed.
    let victim = tmp.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    std::os::unix::fs::symlink(&victim, tmp.path().join("model.safetensors")).unwrap();
    let out = icd(&["convert", &bin_arg]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    let converted = tmp.path().join("model.safetensors");
    assert!(std::fs::symlink_metadata(&converted).unwrap().is_file());
    assert_eq!(std::fs::read(&bin).unwrap(), original);
}

fn git(dir: &std::path::Path, args: &[&str]) {
    let status = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
        .args(args)
        .status()
        .expect("git runs");
    assert!(status.success(), "git {args:?}");
}

fn listed(out: &std::process::Output, root: &std::path::Path) -> Vec<String> {
    let mut files: Vec<String> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|r| {
            std::path::Path::new(r["file"].as_str().unwrap())
                .strip_prefix(root)
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    files.dedup();
    files
}

#[test]
fn ignore_files_cannot_hide_tracked_files() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    git(root, &["init", "-q"]);
    for file in ["a.c", ".hidden/b.c", "vendor/c.c"] {
        let path = root.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "int f(void) { return 0; }\n").unwrap();
    }
    git(root, &["add", "."]);
    git(root, &["commit", "-q", "-m", "tree"]);
    // A pull request adds ignore files that match everything, and an untracked file.
    std::fs::write(root.join(".gitignore"), "*\n").unwrap();
    std::fs::write(root.join(".ignore"), "*\n").unwrap();
    std::fs::write(root.join("vendor/.gitignore"), "*.c\n").unwrap();
    std::fs::write(root.join("untracked.c"), "int g(void) { return 1; }\n").unwrap();
    let out = icd(&[
        "functions",
        &root.display().to_string(),
        "--format",
        "jsonl",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Every tracked file; the untracked one stays out, as .gitignore says.
    assert_eq!(listed(&out, root), [".hidden/b.c", "a.c", "vendor/c.c"]);

    // Untracked files follow .gitignore; .ignore only when asked for.
    std::fs::write(root.join(".gitignore"), "skipped.c\n").unwrap();
    std::fs::write(root.join(".ignore"), "untracked.c\n").unwrap();
    std::fs::write(root.join("skipped.c"), "int h(void) { return 2; }\n").unwrap();
    let root_arg = root.display().to_string();
    let out = icd(&["functions", &root_arg, "--format", "jsonl"]);
    assert_eq!(
        listed(&out, root),
        [".hidden/b.c", "a.c", "untracked.c", "vendor/c.c"]
    );
    let out = icd(&["functions", &root_arg, "--format", "jsonl", "--dot-ignore"]);
    assert_eq!(listed(&out, root), [".hidden/b.c", "a.c", "vendor/c.c"]);

    // A submodule whose own .gitignore matches its tracked files hides none of them.
    let upstream = tempfile::tempdir().unwrap();
    git(upstream.path(), &["init", "-q"]);
    std::fs::write(
        upstream.path().join("lib.c"),
        "int lib(void) { return 3; }\n",
    )
    .unwrap();
    git(upstream.path(), &["add", "."]);
    git(upstream.path(), &["commit", "-q", "-m", "lib"]);
    std::fs::write(root.join(".gitignore"), "").unwrap();
    std::fs::write(root.join(".ignore"), "").unwrap();
    git(
        root,
        &[
            "-c",
            "protocol.file.allow=always",
            "submodule",
            "add",
            "-q",
            &upstream.path().display().to_string(),
            "sub",
        ],
    );
    std::fs::write(root.join("sub/.gitignore"), "*.c\n").unwrap();
    let out = icd(&["functions", &root_arg, "--format", "jsonl"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        listed(&out, root).contains(&"sub/lib.c".to_owned()),
        "{:?}",
        listed(&out, root)
    );
}

#[cfg(unix)]
#[test]
fn files_that_cannot_be_scanned_are_named_and_named_paths_fail() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::write(root.join("ok.c"), "int f(void) { return 0; }\n").unwrap();
    std::fs::write(
        root.join("big.c"),
        "int g(void) { return 0; }\n".repeat(100),
    )
    .unwrap();
    let fifo = root.join("pipe.c");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    std::os::unix::fs::symlink("/etc/passwd", root.join("link.c")).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(
        elsewhere.path().join("out.c"),
        "int h(void) { return 0; }\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), root.join("linked")).unwrap();
    let root_arg = root.display().to_string();
    let started = Instant::now();
    let out = icd(&["functions", &root_arg, "--max-file-size", "1000"]);
    assert!(
        started.elapsed().as_secs() < 30,
        "a FIFO in the tree must not block"
    );
    let table = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(table.contains("1 functions in 1 files"), "{table}");
    assert!(table.contains("big.c was not scanned: source file holds 2600 bytes or more, past its limit of 1000 bytes"), "{table}");
    assert!(
        table.contains("link.c was not scanned: a symbolic link (not followed)"),
        "{table}"
    );
    assert!(
        table.contains("pipe.c was not scanned: not a regular file"),
        "{table}"
    );
    assert!(
        table.contains("linked was not scanned: a symbolic link to a directory (not followed)"),
        "{table}"
    );

    // Named on the command line, each is an error (exit 2), promptly.
    for named in [
        fifo.clone(),
        std::path::PathBuf::from("/dev/zero"),
        root.join("big.c"),
    ] {
        let started = Instant::now();
        let out = icd(&[
            "functions",
            &named.display().to_string(),
            "--max-file-size",
            "1000",
        ]);
        assert!(started.elapsed().as_secs() < 30, "{named:?}");
        assert_eq!(out.status.code(), Some(2), "{named:?}");
        assert!(
            text(&out.stderr).contains("refusing"),
            "{named:?}: {}",
            text(&out.stderr)
        );
    }
}

#[cfg(unix)]
#[test]
fn file_names_cannot_forge_report_lines_and_sarif_uris_are_encoded() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let evil = "evil\u{1b}]0;owned\u{7}\nok   0.000  forged.c:1-1 x.c";
    std::fs::write(root.join(evil), "int f(void) { return 0; }\n").unwrap();
    let odd = "a b%#?\\[x].c";
    std::fs::write(root.join(odd), "int g(void) { return 0; }\n").unwrap();
    let model = model();
    let root_arg = root.display().to_string();
    let out = icd(&["--model", &model, "scan", &root_arg, "--threshold", "0"]);
    let table = text(&out.stdout);
    assert!(
        !table.contains('\u{1b}') && !table.contains('\u{7}'),
        "{table:?}"
    );
    assert!(
        table.contains("evil\\u{1b}]0;owned\\u{7}\\u{a}ok"),
        "{table}"
    );
    // Header, two rows, the count: no forged line.
    assert_eq!(table.lines().count(), 4, "{table}");

    let out = icd(&[
        "--model",
        &model,
        "scan",
        &root_arg,
        "--threshold",
        "0",
        "--format",
        "sarif",
    ]);
    let sarif: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let uris: Vec<String> = sarif["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(
        uris.iter()
            .any(|u| u.ends_with("/a%20b%25%23%3F%5C%5Bx%5D.c")),
        "{uris:?}"
    );
    assert!(
        uris.iter()
            .any(|u| u
                .ends_with("/evil%1B%5D0;owned%07%0Aok%20%20%200.000%20%20forged.c%3A1-1%20x.c")),
        "{uris:?}"
    );
    assert!(uris.iter().all(|u| u.starts_with("file:///")), "{uris:?}");
}

#[test]
fn threads_and_evaluate_rows_are_validated() {
    let out = icd(&["--threads", "100000", "functions", "."]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--threads"),
        "{}",
        text(&out.stderr)
    );

    let tmp = tempfile::tempdir().unwrap();
    let model = model();
    for (rows, expected) in [
        ("{\"idx\": 0, \"func\": \"int a;\", \"target\": 1}\n{\"idx\": 1, \"func\": \"int b;\", \"target\": 7}\n", "data.jsonl:2: `target` is 7, expected 0 or 1"),
        ("{\"idx\": 1.5, \"func\": \"int a;\", \"target\": 0}\n", "data.jsonl:1: `idx` is 1.5, expected an integer"),
        ("{\"idx\": 3, \"func\": \"int a;\"}\n", "data.jsonl:1: `target` is null, expected 0 or 1"),
    ] {
        let data = tmp.path().join("data.jsonl");
        std::fs::write(&data, rows).unwrap();
        let predictions = tmp.path().join("predictions.txt");
        let out = icd(&[
            "--model", &model, "evaluate", &data.display().to_string(),
            "--predictions", &predictions.display().to_string(),
        ]);
        assert_eq!(out.status.code(), Some(2), "{rows}");
        assert!(text(&out.stderr).contains(expected), "{}", text(&out.stderr));
        assert!(!predictions.exists(), "nothing written on a bad row");
    }
}

#[test]
fn collapsed_whitespace_windows_report_the_lines_of_the_raw_text() {
    use insecure_code_detector::Preprocessing;
    // A function far past 512 tokens, with multi-byte text and runs of whitespace.
    let mut code = String::from("static int long_one(int n)\n{\n");
    for i in 0..400 {
        code += &format!("    x[{i}]   =\t\"caf\u{e9} \u{1F600}\"  +  n;\r\n\n");
    }
    code += "    return 0;\n}\n";
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("long.c");
    std::fs::write(&file, &code).unwrap();
    let model = model();
    let out = icd(&[
        "--model",
        &model,
        "--collapse-whitespace",
        "scan",
        &file.display().to_string(),
        "--window",
        "--format",
        "jsonl",
        "--threshold",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let row: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The library's window, mapped to lines of the raw text by counting newlines.
    let detector = Detector::builder(fixture("roberta-2-labels"))
        .preprocessing(Preprocessing::CollapseWhitespace)
        .build()
        .unwrap();
    let function = code.trim_end();
    let w = detector.predict_windows(function, 255).unwrap();
    assert!(w.windows > 1);
    let line_of = |byte: usize| 1 + function[..byte].matches('\n').count();
    assert_eq!(row["window"]["start_line"], line_of(w.byte_range.start));
    assert_eq!(row["window"]["end_line"], line_of(w.byte_range.end));
    assert!(w.byte_range.end <= function.len());
    // The window's raw text holds the same words as the collapsed text it covers.
    let covered = &function[w.byte_range.clone()];
    assert!(Preprocessing::CollapseWhitespace
        .apply(function)
        .contains(&*Preprocessing::CollapseWhitespace.apply(covered)));
}

#[test]
fn whitespace_free_input_costs_what_max_tokens_allows() {
    let detector = Detector::from_pretrained(fixture("roberta-2-labels")).unwrap();
    let huge = "a+b*c[0]->".repeat(1_000_000);
    let started = Instant::now();
    let p = detector.predict(&huge).unwrap();
    let elapsed = started.elapsed();
    eprintln!("10 MB without whitespace: {elapsed:?}");
    assert!(elapsed.as_secs() < 10, "{elapsed:?}");
    assert!(p.truncated);
    assert_eq!(p.tokens, detector.max_tokens());
    // Short pieces: the cut changes none of the tokens the model sees.
    let head = detector.predict(&huge[..100_000]).unwrap();
    assert_eq!(p.logits, head.logits);
}

#[test]
fn binary_files_are_skipped_and_never_parsed() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("ok.c"), "int f(void) { return 0; }\n").unwrap();
    let garbage = random_bytes(0x9e37_79b9_7f4a_7c15, 12_000_000);
    let blob = tmp.path().join("blob.c");
    std::fs::write(&blob, &garbage).unwrap();
    let started = Instant::now();
    let out = icd(&["functions", &tmp.path().display().to_string()]);
    let elapsed = started.elapsed();
    let table = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(elapsed.as_secs() < 10, "{elapsed:?}");
    assert!(table.contains("1 functions in 1 files"), "{table}");
    assert!(
        table.contains("blob.c was not scanned: a binary file (a NUL byte at offset"),
        "{table}"
    );
    let out = icd(&["functions", &blob.display().to_string()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("a binary file"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn unparsed_line_messages_stay_one_line_long() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("broken.c");
    let lines: String = (0..5_000)
        .map(|i| if i % 2 == 0 { ")))(\n" } else { "\n" })
        .collect();
    std::fs::write(&file, lines).unwrap();
    let out = icd(&["functions", &file.display().to_string()]);
    let table = text(&out.stdout);
    let footer = table.lines().last().unwrap();
    assert!(footer.starts_with("2500 lines of"), "{footer}");
    assert!(
        footer.contains("(lines 1, 3, 5, 7, 9, 11, 13, 15, and 2492 more ranges)"),
        "{footer}"
    );
}

/// Writes a safetensors file whose header is `header` (JSON) and whose data is `data`.
fn write_safetensors(path: &std::path::Path, header: &serde_json::Value, data: &[u8]) {
    let header = header.to_string().into_bytes();
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(data);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn huge_safetensors_headers_and_tensor_lists_are_bounded() {
    // A header of 200,000 empty tensors (7 MB): refused before it is parsed.
    let dir = patched_checkpoint("classifier.dense.bias", |_| {});
    let many: serde_json::Map<String, serde_json::Value> = (0..200_000)
        .map(|i| {
            (
                format!("t{i}"),
                serde_json::json!({"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}),
            )
        })
        .collect();
    let weights = dir.path().join("model.safetensors");
    let original = std::fs::read(&weights).unwrap();
    write_safetensors(&weights, &serde_json::Value::Object(many), &[]);
    let started = Instant::now();
    let message = load_message(dir.path());
    assert!(started.elapsed().as_secs() < 5);
    assert!(message.contains("past the limit of 1048576"), "{message}");

    // A real checkpoint with 5,000 extra tensors: the error names 20 and counts the rest.
    std::fs::write(&weights, &original).unwrap();
    let header_len = u64::from_le_bytes(original[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value =
        serde_json::from_slice(&original[8..8 + header_len]).unwrap();
    let data = &original[8 + header_len..];
    for i in 0..5_000 {
        header[format!("extra.{i:05}")] = serde_json::json!({"dtype": "F32", "shape": [0], "data_offsets": [data.len(), data.len()]});
    }
    write_safetensors(&weights, &header, data);
    let message = load_message(dir.path());
    assert!(
        message.contains("unexpected tensors") && message.contains("and 4980 more"),
        "{message}"
    );
    assert!(message.len() < 2_000, "{} bytes", message.len());
}

#[cfg(unix)]
#[test]
fn checkpoint_text_files_are_bounded_and_regular() {
    let dir = patched_checkpoint("classifier.dense.bias", |_| {});
    let config = dir.path().join("config.json");
    let original = std::fs::read_to_string(&config).unwrap();
    // /dev/zero would never end; a FIFO would never open.
    std::fs::remove_file(&config).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &config).unwrap();
    let started = Instant::now();
    let message = load_message(dir.path());
    assert!(
        message.contains("config.json is a character device"),
        "{message}"
    );
    std::fs::remove_file(&config).unwrap();
    assert!(std::process::Command::new("mkfifo")
        .arg(&config)
        .status()
        .unwrap()
        .success());
    let message = load_message(dir.path());
    assert!(message.contains("config.json is a FIFO"), "{message}");
    assert!(started.elapsed().as_secs() < 5);
    // The weight file too.
    std::fs::remove_file(&config).unwrap();
    std::fs::write(&config, &original).unwrap();
    let weights = dir.path().join("model.safetensors");
    std::fs::remove_file(&weights).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &weights).unwrap();
    let message = load_message(dir.path());
    assert!(
        message.contains("weight file is a character device"),
        "{message}"
    );
    // 2 MiB of config (whitespace inside valid JSON): past its 1 MiB limit.
    std::fs::remove_file(&config).unwrap();
    std::fs::write(
        &config,
        original.replacen('{', &format!("{{{}", " ".repeat(2 << 20)), 1),
    )
    .unwrap();
    let message = load_message(dir.path());
    assert!(
        message.contains("past its limit of 1048576 bytes"),
        "{message}"
    );
}

#[test]
fn a_token_id_past_vocab_size_is_refused_at_load() {
    let dir = patched_checkpoint("classifier.dense.bias", |_| {});
    let path = dir.path().join("vocab.json");
    let mut vocab: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let size = vocab.as_object().unwrap().len();
    // Replace one token's id by one far past the embedding table.
    let token = vocab
        .as_object()
        .unwrap()
        .keys()
        .find(|k| k.as_str() == "int")
        .cloned()
        .unwrap_or_else(|| "a".into());
    vocab[&token] = serde_json::json!(1_000_000);
    std::fs::write(&path, vocab.to_string()).unwrap();
    let message = load_message(dir.path());
    assert!(
        message.contains("has id 1000000, past config.json's vocab_size"),
        "{size}: {message}"
    );
    assert!(message.contains(&format!("{token:?}")), "{message}");
}

#[test]
fn many_items_and_long_conditional_chains_cost_linear_time() {
    // 300 chains of 30 `#if`/`#elif` headers that split a function, then 20,000
    // functions: a reading per branch, each over a translation unit of 20,000 items.
    let mut source = String::new();
    for j in 0..300 {
        source += &format!("#if A{j}_0\nint k{j}(void) {{ if (a) {{\n");
        for i in 1..30 {
            source += &format!("#elif A{j}_{i}\nint k{j}(void) {{ while (b{i}) {{\n");
        }
        source += "#endif\n  return 0; } }\n";
    }
    for i in 0..20_000 {
        source += &format!("int fill{i}(int x) {{ return x + {i}; }}\n");
    }
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("chains.c");
    std::fs::write(&file, &source).unwrap();
    let started = Instant::now();
    let out = icd(&[
        "functions",
        &file.display().to_string(),
        "--format",
        "jsonl",
    ]);
    let elapsed = started.elapsed();
    eprintln!("{} bytes of chains and items: {elapsed:?}", source.len());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(elapsed.as_secs() < 30, "{elapsed:?}");
    let names: Vec<String> = text(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["function"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(names.len(), 300 + 20_000);
    assert_eq!(names[0], "k0");
    assert_eq!(names[300], "fill0");
    assert_eq!(names.last().unwrap(), "fill19999");
}

/// Runs `icd args` in `dir`, failing the test instead of hanging past `limit` seconds.
#[cfg(unix)]
fn icd_within(dir: &std::path::Path, args: &[&str], limit: u64) -> std::process::Output {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_icd"))
        .current_dir(dir)
        .args(args)
        .env_remove("BURN_DEVICE")
        .env("ICD_CACHE_DIR", dir.join("cache"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed().as_secs() > limit {
            child.kill().unwrap();
            panic!("icd {args:?} ran past {limit} s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// A checkpoint file that never ends or never opens is refused at once by a scan with
/// the prediction cache (which hashes the checkpoint before loading it), and
/// `classify` stops reading an endless input at its limit.
#[cfg(unix)]
#[test]
fn endless_checkpoint_files_and_inputs_are_refused_not_waited_on() {
    let dir = patched_checkpoint("classifier.dense.bias", |_| {});
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("a.c"), "int f(void) { return 0; }\n").unwrap();
    let model = dir.path().display().to_string();
    let weights = dir.path().join("model.safetensors");
    std::fs::remove_file(&weights).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &weights).unwrap();
    let out = icd_within(work.path(), &["--model", &model, "scan", "a.c"], 20);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("is a character device"), "{err}");
    std::fs::remove_file(&weights).unwrap();
    assert!(std::process::Command::new("mkfifo")
        .arg(&weights)
        .status()
        .unwrap()
        .success());
    let out = icd_within(work.path(), &["--model", &model, "scan", "a.c"], 20);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("is a FIFO"), "{err}");

    let model = fixture("roberta-2-labels").display().to_string();
    let out = icd_within(
        work.path(),
        &["--model", &model, "classify", "/dev/zero"],
        30,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("/dev/zero holds more than 67108864 bytes, past its limit"),
        "{err}"
    );
}
