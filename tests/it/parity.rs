//! Logits and token ids against transformers' own outputs for the fixture checkpoints.

use crate::common::*;
use insecure_code_detector::{Backend, Detector, Preprocessing};

fn load(checkpoint: &str, backend: Backend, preprocessing: Preprocessing) -> Detector {
    Detector::builder(fixture(checkpoint))
        .backend(backend)
        .preprocessing(preprocessing)
        .build()
        .unwrap_or_else(|e| panic!("loading {checkpoint} on {backend}: {e}"))
}

fn check_single_inputs(detector: &Detector, checkpoint: &str, mode: Preprocessing) {
    let reference = reference(checkpoint);
    for (i, input) in reference.inputs.iter().enumerate() {
        let expected = match mode {
            Preprocessing::Raw => &input.raw,
            Preprocessing::CollapseWhitespace => &input.collapse_whitespace,
        };
        let what = format!(
            "{checkpoint} on {} ({mode:?}), input {i} {:?}",
            detector.backend(),
            truncate(&input.text)
        );
        let tokens = detector.tokenize(&input.text).unwrap();
        assert_eq!(tokens.input_ids, expected.input_ids, "{what}: token ids");
        match tokens.untruncated_length {
            Some(n) => assert_eq!(n, expected.untruncated_length, "{what}: untruncated length"),
            // Only a prefix was tokenized: the input must be over the limit.
            None => assert!(
                expected.truncated,
                "{what}: cut before tokenizing but not truncated"
            ),
        }
        let prediction = detector.predict(&input.text).unwrap();
        assert_logits_close(&prediction.logits, &expected.logits, &what);
        assert_eq!(
            prediction.tokens,
            expected.input_ids.len(),
            "{what}: tokens"
        );
        assert_eq!(
            prediction.truncated, expected.truncated,
            "{what}: truncated"
        );
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(40).collect()
}

#[test]
fn single_inputs_match_transformers_on_every_checkpoint_and_backend() {
    for backend in test_backends() {
        for checkpoint in CHECKPOINTS {
            for mode in [Preprocessing::Raw, Preprocessing::CollapseWhitespace] {
                let detector = load(checkpoint, backend, mode);
                check_single_inputs(&detector, checkpoint, mode);
            }
        }
    }
}

#[test]
fn pytorch_bin_and_safetensors_give_the_same_logits() {
    let dir = fixture("roberta-2-labels");
    for backend in test_backends() {
        let from_bin = Detector::builder(&dir)
            .backend(backend)
            .weights(dir.join("pytorch_model.bin"))
            .build()
            .unwrap();
        check_single_inputs(&from_bin, "roberta-2-labels", Preprocessing::Raw);
    }
}

#[test]
fn padded_batches_match_transformers_and_single_predictions() {
    for backend in test_backends() {
        for checkpoint in CHECKPOINTS {
            let reference = reference(checkpoint);
            let texts: Vec<&str> = reference.inputs.iter().map(|i| i.text.as_str()).collect();
            // Batch sizes that mix short inputs with the one over the token limit.
            for batch_size in [1, 3, texts.len()] {
                let detector = Detector::builder(fixture(checkpoint))
                    .backend(backend)
                    .batch_size(batch_size)
                    .build()
                    .unwrap();
                let predictions = detector.predict_batch(&texts).unwrap();
                assert_eq!(predictions.len(), texts.len());
                for (i, (p, expected)) in predictions
                    .iter()
                    .zip(&reference.padded_batch_logits)
                    .enumerate()
                {
                    let what =
                        format!("{checkpoint} on {backend}, batch size {batch_size}, input {i}");
                    assert_logits_close(&p.logits, expected, &what);
                    assert_logits_close(&p.logits, &reference.inputs[i].raw.logits, &what);
                    assert_eq!(p.truncated, reference.inputs[i].raw.truncated, "{what}");
                }
            }
        }
    }
}

#[test]
fn fixtures_cover_truncation_and_the_empty_string() {
    let reference = reference("roberta-2-labels");
    assert!(reference
        .inputs
        .iter()
        .any(|i| i.raw.truncated && i.raw.input_ids.len() == reference.max_length));
    assert!(reference.inputs.iter().any(|i| i.text.is_empty()));
    assert!(reference
        .inputs
        .iter()
        .any(|i| i.text.contains("\r\n") && i.text.contains('\t')));
    assert!(reference.inputs.iter().any(|i| !i.text.is_ascii()));
}

#[test]
fn predictions_carry_labels_and_probabilities() {
    let backend = test_backends()[0];
    let detector = load("roberta-5-labels", backend, Preprocessing::Raw);
    assert_eq!(detector.labels()[0], "safe");
    let p = detector.predict("int main(void) { return 0; }").unwrap();
    assert_eq!(p.logits.len(), 5);
    assert_eq!(p.label_name, detector.labels()[p.label]);
    let max = p.logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    assert_eq!(p.logits[p.label], max);
    // Five labels with one named "safe": insecure = 1 - P(safe).
    let sum: f32 = p.logits.iter().map(|l| (l - max).exp()).sum();
    let p_safe = (p.logits[0] - max).exp() / sum;
    assert!((p.insecure_probability - (1.0 - p_safe)).abs() < 1e-6);

    let one = load("roberta-1-label-old-config", backend, Preprocessing::Raw);
    let p = one.predict("int main(void) { return 0; }").unwrap();
    assert_eq!(p.logits.len(), 1);
    assert!((p.insecure_probability - 1.0 / (1.0 + (-p.logits[0]).exp())).abs() < 1e-6);
    assert_eq!(p.label, 0);

    let two = load("roberta-2-labels", backend, Preprocessing::Raw);
    let p = two.predict("int main(void) { return 0; }").unwrap();
    let expected = 1.0 / (1.0 + (p.logits[0] - p.logits[1]).exp());
    assert!((p.insecure_probability - expected).abs() < 1e-6);
}

#[test]
fn max_tokens_truncates_like_transformers_max_length() {
    let backend = test_backends()[0];
    let reference = reference("roberta-2-labels");
    let long = reference.inputs.iter().find(|i| i.raw.truncated).unwrap();
    let detector = Detector::builder(fixture("roberta-2-labels"))
        .backend(backend)
        .max_tokens(64)
        .build()
        .unwrap();
    let tokens = detector.tokenize(&long.text).unwrap();
    assert_eq!(tokens.input_ids.len(), 64);
    assert_eq!(tokens.input_ids[..63], long.raw.input_ids[..63]);
    assert_eq!(*tokens.input_ids.last().unwrap(), 2, "ends with </s>");
    assert!(tokens.truncated());
}

/// Reduced precision is opt-in; its fidelity against the f32 results on the fixtures:
/// probabilities within 1e-2 (bf16, f16), 2e-2 (int8) or 1e-3 (tf32, on cuda) and the
/// same verdicts at 0.5. tf32 on any other backend, which has no TF32 products, gives
/// the f32 logits exactly, as does bf16 where it runs the f32 kernel (a CPU whose bf16
/// dot product is no faster than its f32 FMAs).
#[test]
fn reduced_precision_stays_close_to_f32() {
    use insecure_code_detector::Precision;
    for backend in test_backends() {
        for (precision, tolerance) in [
            (Precision::Bf16, 1e-2),
            (Precision::F16, 1e-2),
            (Precision::Int8, 2e-2),
            (Precision::Tf32, 1e-3),
        ] {
            for checkpoint in CHECKPOINTS {
                let detector = match Detector::builder(fixture(checkpoint))
                    .backend(backend)
                    .precision(precision)
                    .build()
                {
                    Ok(d) => d,
                    Err(e) => {
                        assert_ne!(backend, Backend::Flex, "flex supports bf16 and f16: {e}");
                        assert!(
                            !(precision == Precision::Bf16 && backend.has_bf16_products()),
                            "{backend} multiplies bf16 with this CPU's instructions: {e}"
                        );
                        assert!(
                            !(precision == Precision::Int8 && backend.has_int8_products()),
                            "{backend} multiplies int8 with this CPU's instructions: {e}"
                        );
                        // A backend without the dtype must say so, not fail later.
                        assert!(e.to_string().contains("precision"), "{e}");
                        eprintln!("SKIPPED: {backend} {precision:?}: {e}");
                        continue;
                    }
                };
                let exact = Detector::builder(fixture(checkpoint))
                    .backend(backend)
                    .build()
                    .unwrap();
                let reference = reference(checkpoint);
                let texts: Vec<&str> = reference.inputs.iter().map(|i| i.text.as_str()).collect();
                let reduced = detector.predict_batch(&texts).unwrap();
                let full = exact.predict_batch(&texts).unwrap();
                for (i, (r, f)) in reduced.iter().zip(&full).enumerate() {
                    let diff = (r.insecure_probability - f.insecure_probability).abs();
                    assert!(
                        diff <= tolerance,
                        "{checkpoint} {backend} {precision:?} input {i}: |dp| = {diff}"
                    );
                    assert_eq!(r.insecure_probability >= 0.5, f.insecure_probability >= 0.5);
                    if precision == Precision::Tf32 && backend != Backend::Cuda {
                        assert_eq!(r.logits, f.logits, "{checkpoint} {backend} tf32 input {i}");
                    }
                    // bf16 where no bf16 kernel beats f32 runs the f32 kernel itself.
                    if detector.execution().kernel().map(|k| k.precision()) == Some(Precision::F32)
                    {
                        assert_eq!(
                            r.logits,
                            f.logits,
                            "{checkpoint} {backend} {precision:?} on {} input {i}",
                            detector.execution()
                        );
                    }
                }
            }
        }
    }
}

/// Every packed kernel this CPU has runs a whole model for each precision it runs,
/// chosen by name (`DetectorBuilder::kernel`), whichever `Kernel::select` would pick:
/// the f32 kernels (for f32, and for bf16 on f32 weights) give the default f32
/// logits bit for bit, the two int8 kernels the same logits as each other, the bf16
/// kernels probabilities within 1e-2 of f32's with the same verdicts. A kernel for
/// another precision, or on a GPU backend, is refused by name.
#[test]
fn every_kernel_this_cpu_has_runs_the_whole_model() {
    use insecure_code_detector::{CpuFeatures, ExecutionPlan, Kernel, Precision};
    let cpu = CpuFeatures::get();
    let runnable: Vec<Kernel> = Kernel::ALL
        .into_iter()
        .filter(|k| Kernel::select(Precision::F32, cpu).is_some() && k.runs_on(cpu))
        .collect();
    if runnable.is_empty() {
        eprintln!("SKIPPED: this CPU ({cpu}) runs no packed kernel");
        return;
    }
    let reference = reference("roberta-2-labels");
    let texts: Vec<&str> = reference.inputs.iter().map(|i| i.text.as_str()).collect();
    let build = |precision: Precision, kernel: Option<Kernel>| {
        let mut builder = Detector::builder(fixture("roberta-2-labels"))
            .backend(Backend::Flex)
            .precision(precision);
        if let Some(kernel) = kernel {
            builder = builder.kernel(kernel);
        }
        builder.build()
    };
    let f32 = build(Precision::F32, None)
        .unwrap()
        .predict_batch(&texts)
        .unwrap();
    let mut int8_logits: Option<Vec<Vec<f32>>> = None;
    for kernel in &runnable {
        for precision in [Precision::F32, Precision::Bf16, Precision::Int8] {
            let built = build(precision, Some(*kernel));
            if !kernel.runs(precision) {
                let message = built
                    .err()
                    .expect("a kernel of another precision")
                    .to_string();
                assert!(
                    message.contains("kernel") && message.contains(kernel.name()),
                    "{message}"
                );
                continue;
            }
            let detector = built.unwrap();
            assert_eq!(
                detector.execution(),
                ExecutionPlan::PackedCpu { kernel: *kernel }
            );
            let got = detector.predict_batch(&texts).unwrap();
            for (i, (g, f)) in got.iter().zip(&f32).enumerate() {
                let context = format!("{kernel} for {precision:?}, input {i}");
                match kernel.precision() {
                    Precision::F32 => assert_eq!(g.logits, f.logits, "{context}"),
                    _ => {
                        let tolerance = if precision == Precision::Int8 {
                            2e-2
                        } else {
                            1e-2
                        };
                        let diff = (g.insecure_probability - f.insecure_probability).abs();
                        assert!(diff <= tolerance, "{context}: |dp| = {diff}");
                        assert_eq!(
                            g.insecure_probability >= 0.5,
                            f.insecure_probability >= 0.5,
                            "{context}"
                        );
                    }
                }
            }
            if precision == Precision::Int8 {
                let logits: Vec<Vec<f32>> = got.iter().map(|p| p.logits.clone()).collect();
                match &int8_logits {
                    Some(other) => assert_eq!(&logits, other, "the int8 kernels agree bit for bit"),
                    None => int8_logits = Some(logits),
                }
            }
        }
    }
    // Under `ICD_MAX_CPU_ISA` (or on a CPU without them), the kernels it lacks.
    for kernel in Kernel::ALL.into_iter().filter(|k| !runnable.contains(k)) {
        let message = build(kernel.precision(), Some(kernel))
            .err()
            .expect("a kernel this CPU lacks")
            .to_string();
        assert!(
            message.contains(&format!("{kernel} needs {}", kernel.isa())),
            "{message}"
        );
    }
    if test_backends().contains(&Backend::Wgpu) {
        let message = Detector::builder(fixture("roberta-2-labels"))
            .backend(Backend::Wgpu)
            .kernel(runnable[0])
            .build()
            .err()
            .expect("a CPU kernel on wgpu")
            .to_string();
        assert!(
            message.contains("kernel") && message.contains("wgpu"),
            "{message}"
        );
    }
}

#[test]
fn windows_cover_long_functions_and_equal_predict_for_short_ones() {
    let backend = test_backends()[0];
    let detector = Detector::builder(fixture("roberta-2-labels"))
        .backend(backend)
        .build()
        .unwrap();
    let reference = reference("roberta-2-labels");
    let short = &reference.inputs[0].text;
    let w = detector.predict_windows(short, 255).unwrap();
    assert_eq!(w.windows, 1);
    assert_logits_close(
        &w.prediction.logits,
        &reference.inputs[0].raw.logits,
        "one window",
    );
    assert_eq!(w.byte_range, 0..short.len());

    let long = reference.inputs.iter().find(|i| i.raw.truncated).unwrap();
    let content = long.raw.untruncated_length - 2;
    let w = detector.predict_windows(&long.text, 255).unwrap();
    // Windows start every 255 tokens and the last one ends at the last token.
    assert_eq!(w.windows, (content - 510).div_ceil(255) + 1);
    assert!(!w.prediction.truncated);
    assert!(w.byte_range.end <= long.text.len() && w.byte_range.start < w.byte_range.end);
    // The first window is exactly the truncated input of predict().
    let first = detector.predict(&long.text).unwrap();
    assert!(w.prediction.insecure_probability >= first.insecure_probability);
    assert!(detector.predict_windows(&long.text, 0).is_err());
    assert!(detector.predict_windows(&long.text, 511).is_err());
}

/// What a detector reports running is the kernel `Kernel::select` picks for this CPU
/// on the CPU backends, and the backend's tensors elsewhere; int8 without a kernel is
/// refused at load.
#[test]
fn the_execution_plan_is_this_cpus_kernel_or_the_backends_tensors() {
    use insecure_code_detector::{CpuFeatures, Kernel};
    use insecure_code_detector::{ExecutionPlan, Precision};
    eprintln!("this CPU: {}", CpuFeatures::get());
    for backend in test_backends() {
        for precision in [
            Precision::F32,
            Precision::Tf32,
            Precision::Bf16,
            Precision::F16,
            Precision::Int8,
        ] {
            let expected = match backend {
                Backend::Flex | Backend::NdArray => Kernel::select(precision, CpuFeatures::get()),
                _ => None,
            };
            let built = Detector::builder(fixture("roberta-2-labels"))
                .backend(backend)
                .precision(precision)
                .build();
            match (built, expected) {
                (Ok(detector), Some(kernel)) => {
                    assert_eq!(detector.execution(), ExecutionPlan::PackedCpu { kernel });
                    assert_eq!(
                        detector.execution().to_string(),
                        format!("kernel {} ({})", kernel.name(), kernel.isa())
                    );
                }
                (Ok(detector), None) => {
                    let plan = detector.execution();
                    assert!(
                        matches!(plan, ExecutionPlan::Tensors { .. }),
                        "{precision:?} on {backend}: {plan}"
                    );
                    // The precision's own dtype (int8 and tf32 compute in f32).
                    let dtype = match precision {
                        Precision::Bf16 => "bf16",
                        Precision::F16 => "f16",
                        Precision::F32 | Precision::Tf32 | Precision::Int8 => "f32",
                    };
                    assert_eq!(
                        plan.to_string(),
                        format!("tensors {dtype}"),
                        "{precision:?} on {backend}"
                    );
                }
                // int8 off the CPU kernels, or a dtype the backend lacks.
                (Err(e), None) => assert!(
                    matches!(
                        e,
                        insecure_code_detector::Error::InvalidArgument {
                            argument: "precision",
                            ..
                        }
                    ),
                    "{precision:?} on {backend}: {e}"
                ),
                (Err(e), Some(kernel)) => panic!("{precision:?} on {backend} ({kernel}): {e}"),
            }
        }
    }
}
