//! The GPU backends' bounded call shapes, on wgpu (Mesa's llvmpipe where there is no
//! GPU): once `Detector::warm_up` has run every shape, a corpus of 200 distinct
//! lengths, batched, one by one, explained and in windows, compiles no more kernels
//! (at most two variants of kernels the warm-up compiled, see the test), and its
//! logits are the CPU backend's within 1e-4. Kernels are counted as burn's runtime (CubeCL)
//! reports their compilation, through the `log` crate.

#![cfg(feature = "wgpu")]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use burn::cubecl::config::cache::CacheConfig;
use burn::cubecl::config::compilation::CompilationLogLevel;
use burn::cubecl::config::{CubeClRuntimeConfig, RuntimeConfig};
use common::{fixture, max_abs_diff, test_backends};
use insecure_code_detector::{Backend, Detector};

/// Kernels the corpus may compile after the warm-up, at most (see below).
const LATE_VARIANTS: usize = 2;

/// The `log` target CubeCL reports each kernel it compiles under.
const COMPILATION: &str = "cubecl::compilation";

static COMPILED: AtomicUsize = AtomicUsize::new(0);
/// What each compilation record says (the kernel's name first), in order.
static RECORDS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Counts CubeCL's compilation records.
struct CompilationCounter;

impl log::Log for CompilationCounter {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.target() == COMPILATION
    }

    fn log(&self, record: &log::Record) {
        if record.target() == COMPILATION {
            let text = record.args().to_string();
            let head: String = text
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(200)
                .collect();
            RECORDS.lock().unwrap().push(head);
            COMPILED.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn flush(&self) {}
}

/// The kernels compiled so far, once the count has stood still for a second (the
/// runtime logs from a thread of its own).
fn compiled_once_quiet() -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = COMPILED.load(Ordering::SeqCst);
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let now = COMPILED.load(Ordering::SeqCst);
        if now == last || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

/// `int f(void) {` and `xs` times ` x`.
fn function_of(xs: usize) -> String {
    format!("int f(void) {{{} }}", " x".repeat(xs))
}

#[test]
fn after_warm_up_two_hundred_lengths_compile_nothing_new_and_match_the_cpu() {
    if !test_backends().contains(&Backend::Wgpu) {
        eprintln!("skipped: ICD_TEST_BACKENDS does not name wgpu");
        return;
    }
    log::set_logger(&CompilationCounter).expect("the only logger of this test binary");
    log::set_max_level(log::LevelFilter::Info);
    let caches = tempfile::tempdir().unwrap();
    // Every compilation reported to `log` (the level type is not re-exported, its
    // configuration's serialized form is the way in), the caches in a fresh directory.
    let mut config: CubeClRuntimeConfig = serde_json::from_value(serde_json::json!({
        "compilation": { "logger": { "level": "basic", "log": "info" } }
    }))
    .unwrap();
    assert!(matches!(
        config.compilation.logger.level,
        CompilationLogLevel::Basic
    ));
    config.environment.path = CacheConfig::Directory(caches.path().to_path_buf());
    assert!(
        CubeClRuntimeConfig::try_set(config),
        "CubeCL was configured before this test"
    );

    let model = fixture("roberta-2-labels");
    let gpu = Detector::builder(&model)
        .backend(Backend::Wgpu)
        .batch_size(8)
        .build()
        .unwrap();
    let shapes = gpu.call_shapes().expect("wgpu pads its calls").clone();
    assert_eq!(shapes.widths(), [16, 32, 64, 128, 256, 384, 512]);
    assert_eq!(shapes.input_counts(512), [1, 2, 4, 8]);

    let before = compiled_once_quiet();
    assert_eq!(gpu.warm_up().unwrap(), 28);
    let warm = compiled_once_quiet();
    eprintln!("the warm-up compiled {} kernels", warm - before);
    assert!(
        warm > before,
        "the warm-up compiled nothing that the counter saw ({before} before, {warm} after)"
    );

    // 200 functions of 200 distinct lengths, spread from 7 tokens to the limit.
    let mut by_length = std::collections::BTreeMap::new();
    for xs in 0..1100 {
        let text = function_of(xs);
        let input = gpu.tokenize(&text).unwrap();
        if !input.truncated() {
            by_length.entry(input.input_ids.len()).or_insert(text);
        }
    }
    let every: Vec<String> = by_length.into_values().collect();
    assert!(every.len() >= 200, "{} lengths only", every.len());
    let texts: Vec<&str> = (0..200)
        .map(|i| every[i * every.len() / 200].as_str())
        .collect();
    let lengths: std::collections::BTreeSet<usize> = texts
        .iter()
        .map(|t| gpu.tokenize(t).unwrap().input_ids.len())
        .collect();
    assert_eq!(lengths.len(), 200, "distinct lengths: {lengths:?}");
    assert!(lengths.first() < Some(&16) && lengths.last() > Some(&500));

    let batched = gpu.predict_batch(&texts).unwrap();
    let one_by_one: Vec<_> = texts[..40]
        .iter()
        .rev()
        .map(|t| gpu.predict(t).unwrap())
        .collect();
    let explained = gpu.explain_batch(&texts[150..170]).unwrap();
    let windows = gpu.predict_windows(&function_of(1200), 100).unwrap();
    assert!(windows.windows > 1);
    let after = compiled_once_quiet();
    // None in almost every run. One run in CI compiled one more: the runtime may
    // pick another variant of a kernel it has (one that works in place, say) by
    // whether a buffer is still in use, which depends on timing. Calls padded to their
    // own lengths compile 24 more over this corpus.
    let records = RECORDS.lock().unwrap();
    let (early, late) = records.split_at(warm);
    if !late.is_empty() {
        eprintln!("compiled after the warm-up: {late:#?}");
    }
    assert!(
        after - warm <= LATE_VARIANTS && late.iter().all(|kernel| early.contains(kernel)),
        "{} kernels compiled after the warm-up ({warm} by then), at most {LATE_VARIANTS} \
         variants of kernels it compiled expected: {late:#?}",
        after - warm
    );
    drop(records);

    let cpu = Detector::builder(&model).batch_size(8).build().unwrap();
    let expected = cpu.predict_batch(&texts).unwrap();
    for (i, (got, want)) in batched.iter().zip(&expected).enumerate() {
        let diff = max_abs_diff(&got.logits, &want.logits);
        assert!(
            diff <= 1e-4,
            "input {i}: wgpu {:?}, cpu {:?}",
            got.logits,
            want.logits
        );
        assert_eq!(got.tokens, want.tokens);
    }
    for (got, want) in one_by_one.iter().zip(expected[..40].iter().rev()) {
        assert!(max_abs_diff(&got.logits, &want.logits) <= 1e-4);
    }
    let cpu_explained = cpu.explain_batch(&texts[150..170]).unwrap();
    for (got, want) in explained.iter().zip(&cpu_explained) {
        let scores = |e: &insecure_code_detector::Explanation| {
            e.tokens.iter().map(|t| t.score).collect::<Vec<f32>>()
        };
        assert!(max_abs_diff(&scores(got), &scores(want)) <= 1e-4);
    }
    let cpu_windows = cpu.predict_windows(&function_of(1200), 100).unwrap();
    assert_eq!(windows.byte_range, cpu_windows.byte_range);
    assert!(max_abs_diff(&windows.prediction.logits, &cpu_windows.prediction.logits) <= 1e-4);
}
