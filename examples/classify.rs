//! Classifies C/C++ functions, one per file (or standard input), and prints one JSON
//! object per input.
//!
//! ```text
//! cargo run --example classify -- MODEL_DIR [--backend NAME] [--collapse-whitespace] FILE...
//! cargo run --example classify -- MODEL_DIR - < function.c
//! ```

use std::io::Read;
use std::process::ExitCode;

use insecure_code_detector::{Backend, Detector, Preprocessing};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let model = args.next().ok_or("usage: classify MODEL_DIR [--backend NAME] [--collapse-whitespace] FILE...")?;
    let mut builder = Detector::builder(&model);
    let mut files = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--backend" => {
                let name = args.next().ok_or("--backend needs a name")?;
                builder = builder.backend(name.parse::<Backend>().map_err(|e| e.to_string())?);
            }
            "--collapse-whitespace" => builder = builder.preprocessing(Preprocessing::CollapseWhitespace),
            _ => files.push(arg),
        }
    }
    if files.is_empty() {
        files.push("-".into());
    }
    let detector = builder.build().map_err(|e| e.to_string())?;
    let mut sources = Vec::new();
    for file in &files {
        let mut bytes = Vec::new();
        if file == "-" {
            std::io::stdin().read_to_end(&mut bytes).map_err(|e| format!("stdin: {e}"))?;
        } else {
            bytes = std::fs::read(file).map_err(|e| format!("{file}: {e}"))?;
        }
        sources.push(String::from_utf8_lossy(&bytes).into_owned());
    }
    let codes: Vec<&str> = sources.iter().map(String::as_str).collect();
    let predictions = detector.predict_batch(&codes).map_err(|e| e.to_string())?;
    for (file, p) in files.iter().zip(predictions) {
        let line = serde_json::json!({
            "file": file,
            "label": p.label,
            "label_name": p.label_name,
            "insecure_probability": p.insecure_probability,
            "logits": p.logits,
            "tokens": p.tokens,
            "truncated": p.truncated,
        });
        println!("{line}");
    }
    Ok(())
}
