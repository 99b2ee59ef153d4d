//! Damaged and foreign checkpoints are refused with errors that name what is wrong.

use std::path::Path;

use crate::common::*;
use insecure_code_detector::{Detector, Error};
use safetensors::tensor::Dtype;

fn load_err(dir: &Path) -> Error {
    match Detector::from_pretrained(dir) {
        Ok(_) => panic!("{} loaded, expected an error", dir.display()),
        Err(e) => e,
    }
}

#[test]
fn missing_tensor_is_named() {
    let dir = copy_fixture("roberta-2-labels");
    rewrite_safetensors(dir.path(), |t| {
        t.retain(|(name, ..)| name != "roberta.encoder.layer.1.attention.self.key.bias")
    });
    let err = load_err(dir.path()).to_string();
    assert!(
        err.contains("missing tensor `roberta.encoder.layer.1.attention.self.key.bias`"),
        "{err}"
    );
    assert!(err.contains("model.safetensors"), "{err}");
}

#[test]
fn misshapen_tensor_names_both_shapes() {
    let dir = copy_fixture("roberta-2-labels");
    rewrite_safetensors(dir.path(), |t| {
        let entry = t
            .iter_mut()
            .find(|(name, ..)| name == "classifier.out_proj.weight")
            .unwrap();
        entry.2 = vec![4, 16];
    });
    let err = load_err(dir.path()).to_string();
    assert!(
        err.contains("`classifier.out_proj.weight` has shape [4, 16], expected [2, 32]"),
        "{err}"
    );
}

#[test]
fn integer_tensor_is_refused_by_dtype() {
    let dir = copy_fixture("roberta-2-labels");
    rewrite_safetensors(dir.path(), |t| {
        let entry = t
            .iter_mut()
            .find(|(name, ..)| name == "classifier.dense.bias")
            .unwrap();
        entry.1 = Dtype::I32;
    });
    let err = load_err(dir.path()).to_string();
    assert!(
        err.contains("classifier.dense.bias") && err.contains("I32"),
        "{err}"
    );
}

#[test]
fn unexpected_tensor_is_named() {
    let dir = copy_fixture("roberta-2-labels");
    rewrite_safetensors(dir.path(), |t| {
        t.push(("lm_head.dense.bias".into(), Dtype::F32, vec![1], vec![0; 4]));
    });
    let err = load_err(dir.path()).to_string();
    assert!(err.contains("lm_head.dense.bias"), "{err}");
}

#[test]
fn names_without_the_roberta_prefix_and_legacy_buffers_load() {
    // roberta-5-labels stores names without `roberta.`; roberta-1-label-old-config
    // carries position_ids and an unused pooler. Both load.
    Detector::from_pretrained(fixture("roberta-5-labels")).unwrap();
    Detector::from_pretrained(fixture("roberta-1-label-old-config")).unwrap();
}

#[test]
fn truncated_and_garbage_weight_files_are_format_errors() {
    let dir = copy_fixture("roberta-2-labels");
    let path = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_err(dir.path());
    assert!(matches!(err, Error::WeightsFormat { .. }), "{err}");
    assert!(err.to_string().contains("model.safetensors"), "{err}");

    // A header length far beyond the file.
    let mut huge = u64::MAX.to_le_bytes().to_vec();
    huge.extend_from_slice(b"{}");
    std::fs::write(&path, huge).unwrap();
    let err = load_err(dir.path());
    assert!(matches!(err, Error::WeightsFormat { .. }), "{err}");

    std::fs::remove_file(&path).unwrap();
    let bin = dir.path().join("pytorch_model.bin");
    std::fs::write(&bin, b"this is not a pytorch checkpoint").unwrap();
    let err = load_err(dir.path());
    assert!(matches!(err, Error::WeightsFormat { .. }), "{err}");
    assert!(err.to_string().contains("pytorch_model.bin"), "{err}");
}

#[test]
fn missing_files_are_named() {
    let dir = copy_fixture("roberta-2-labels");
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    std::fs::remove_file(dir.path().join("pytorch_model.bin")).unwrap();
    let err = load_err(dir.path());
    assert!(matches!(err, Error::NoWeights { .. }), "{err}");

    let dir = copy_fixture("roberta-2-labels");
    std::fs::remove_file(dir.path().join("merges.txt")).unwrap();
    let err = load_err(dir.path()).to_string();
    assert!(err.contains("merges.txt"), "{err}");

    let dir = copy_fixture("roberta-2-labels");
    std::fs::remove_file(dir.path().join("config.json")).unwrap();
    let err = load_err(dir.path()).to_string();
    assert!(err.contains("config.json"), "{err}");

    let err = load_err(Path::new("/nonexistent/checkpoint")).to_string();
    assert!(err.contains("/nonexistent/checkpoint"), "{err}");
}

#[test]
fn bad_configs_are_refused_with_the_field_named() {
    let cases: &[(&str, &str)] = &[
        ("{ not json", "invalid"),
        (r#"{"model_type": "bert"}"#, "model_type"),
        (
            r#"{"architectures": ["RobertaForMaskedLM"], "model_type": "roberta"}"#,
            "RobertaForMaskedLM",
        ),
        (r#"{"hidden_act": "relu"}"#, "hidden_act"),
        (r#"{"num_hidden_layers": 1000000000}"#, "num_hidden_layers"),
        (r#"{"num_attention_heads": 0}"#, "num_attention_heads"),
        (
            r#"{"hidden_size": 30, "num_attention_heads": 4}"#,
            "num_attention_heads",
        ),
    ];
    for (text, expected) in cases {
        let dir = copy_fixture("roberta-2-labels");
        std::fs::write(dir.path().join("config.json"), text).unwrap();
        let err = load_err(dir.path()).to_string();
        assert!(
            err.contains(expected) && err.contains("config.json"),
            "{text}: {err}"
        );
    }
}

#[test]
fn config_that_disagrees_with_the_weights_names_the_tensor() {
    let dir = copy_fixture("roberta-2-labels");
    let path = dir.path().join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["intermediate_size"] = 48.into();
    std::fs::write(&path, config.to_string()).unwrap();
    let err = load_err(dir.path()).to_string();
    assert!(
        err.contains("roberta.encoder.layer.0.intermediate.dense.weight")
            && err.contains("[48, 32]"),
        "{err}"
    );
}

#[test]
fn bad_builder_arguments_are_named() {
    let err = Detector::builder(fixture("roberta-2-labels"))
        .max_tokens(513)
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("max_tokens"), "{err}");
    let err = Detector::builder(fixture("roberta-2-labels"))
        .batch_size(0)
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("batch_size"), "{err}");
    let err = "tpu"
        .parse::<insecure_code_detector::Backend>()
        .unwrap_err()
        .to_string();
    assert!(err.contains("tpu") && err.contains("flex"), "{err}");
}

/// A `pytorch_model.bin` in torch's zip layout whose pickle calls `os.system`.
fn write_hostile_bin(path: &Path, pickle: &[u8]) {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("archive/data.pkl", options).unwrap();
    zip.write_all(pickle).unwrap();
    zip.start_file("archive/version", options).unwrap();
    zip.write_all(b"3\n").unwrap();
    zip.finish().unwrap();
}

#[test]
fn pickle_naming_a_foreign_global_is_refused_by_name() {
    let dir = copy_fixture("roberta-2-labels");
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    let marker = dir.path().join("pwned");
    let command = format!("touch {}", marker.display());
    let mut pickle = b"\x80\x02cos\nsystem\nq\x00X".to_vec();
    pickle.extend_from_slice(&(command.len() as u32).to_le_bytes());
    pickle.extend_from_slice(command.as_bytes());
    pickle.extend_from_slice(b"q\x01\x85q\x02Rq\x03.");
    write_hostile_bin(&dir.path().join("pytorch_model.bin"), &pickle);
    let err = load_err(dir.path());
    assert!(matches!(err, Error::WeightsFormat { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("`os.system`") && message.contains("pytorch_model.bin"),
        "{message}"
    );
    assert!(!marker.exists(), "the pickle's command ran");

    // Protocol 4 spelling of the same call.
    write_hostile_bin(
        &dir.path().join("pytorch_model.bin"),
        b"\x80\x04\x8c\x08builtins\x94\x8c\x04exec\x94\x93\x94.",
    );
    let message = load_err(dir.path()).to_string();
    assert!(message.contains("`builtins.exec`"), "{message}");
}

#[test]
fn real_torch_save_files_pass_the_pickle_check() {
    // f32 zip-format .bin and f16 .bin with legacy buffers, both written by torch.save.
    let dir = fixture("roberta-2-labels");
    Detector::builder(&dir)
        .weights(dir.join("pytorch_model.bin"))
        .build()
        .unwrap();
    Detector::from_pretrained(fixture("roberta-1-label-old-config")).unwrap();
}

/// The legacy (pre-zip) `torch.save` format, as `tests/fixtures/legacy_torch_save.py`
/// writes it from the fixture's weights: it passes the pickle check (read from its
/// first byte), loads, and gives the zip checkpoint's logits exactly.
#[test]
fn legacy_torch_save_checkpoints_load_with_the_same_logits() {
    let dir = tempfile::tempdir().unwrap();
    let source = fixture("roberta-2-labels");
    for file in [
        "config.json",
        "vocab.json",
        "merges.txt",
        "tokenizer_config.json",
    ] {
        std::fs::copy(source.join(file), dir.path().join(file)).unwrap();
    }
    let bin = dir.path().join("pytorch_model.bin");
    let status = std::process::Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/legacy_torch_save.py"))
        .arg(source.join("model.safetensors"))
        .arg(&bin)
        .status()
        .expect("python3 runs");
    assert!(status.success());
    let head = std::fs::read(&bin).unwrap();
    assert!(!head.starts_with(b"PK"), "a legacy file, not a zip");
    let legacy = Detector::from_pretrained(dir.path()).unwrap();
    let zip = Detector::builder(&source)
        .weights(source.join("pytorch_model.bin"))
        .build()
        .unwrap();
    for code in ["int f(void) { return 0; }", "char b[4]; strcpy(b, s);"] {
        assert_eq!(
            legacy.predict(code).unwrap().logits,
            zip.predict(code).unwrap().logits
        );
    }
}
