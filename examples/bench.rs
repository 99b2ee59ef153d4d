//! Timings of this library for `benches/side_by_side.py`, as one JSON object on stdout.
//!
//! ```text
//! cargo run --example bench -- MODEL_DIR [--corpus nginx.jsonl] [--functions N]
//!     [--lengths 64,128,256,512] [--repeats N] [--backend flex] [--precision P] [--kernel NAME]
//!     [--batch-size N] [--probe TEXT] [--peak] [--serve] [--explain]
//! ```
//!
//! Reports: load time, peak resident memory, median batch-1 latency per token length,
//! throughput over the corpus (truncated at 512 tokens, through `predict_batch`; each
//! function's insecure probability and logits with it), and the logits of the probe texts so that the caller can check agreement. `--peak`
//! adds this CPU's measured peak multiply-add rates (f32 FMA, the int8 kernel's integer
//! multiply-add and, where present, the bf16 dot product) on the rayon thread count,
//! the ceilings the model's rates are compared with.
//!
//! `--serve` times on request instead, so that a caller can interleave this library's
//! runs with other runtimes' on a machine whose speed drifts: once loaded, it says so
//! (`{"load_seconds": ...}`), then answers each line on stdin with one JSON line on
//! stdout: `latency N` with one batch-1 run of N tokens (`{"seconds": ...}`),
//! `throughput` with one pass over the corpus (as the report's `throughput`). At the
//! end of stdin the report follows, its latencies the medians of the runs served and
//! its throughput the last pass.
//!
//! `--explain` times `explain` and `explain_batch` (token and line scores) in place of
//! `predict` and `predict_batch`: what attribution costs. `--kernel` runs the named
//! packed kernel (`DetectorBuilder::kernel`) in place of the one the precision selects.

use std::io::BufRead;
use std::time::Instant;

use insecure_code_detector::{Backend, Detector, Precision};
use serde_json::json;

fn main() {
    let mut args = std::env::args().skip(1);
    let model = args.next().expect("usage: bench MODEL_DIR [options]");
    let mut corpus = None;
    let mut functions = 64usize;
    let mut lengths = vec![64usize, 128, 256, 512];
    let mut repeats = 5usize;
    let mut backend = Backend::default_cpu().unwrap();
    let mut precision = Precision::F32;
    let mut kernel = None;
    let mut probes: Vec<String> = Vec::new();
    let mut batch_size = 8usize;
    let mut peak = false;
    let mut serve = false;
    let mut explain = false;
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--corpus" => corpus = Some(value()),
            "--functions" => functions = value().parse().unwrap(),
            "--lengths" => lengths = value().split(',').map(|x| x.parse().unwrap()).collect(),
            "--repeats" => repeats = value().parse().unwrap(),
            "--backend" => backend = value().parse().unwrap(),
            "--precision" => precision = value().parse().unwrap(),
            "--kernel" => kernel = Some(value().parse().unwrap()),
            "--probe" => probes.push(value()),
            "--batch-size" => batch_size = value().parse().unwrap(),
            "--peak" => peak = true,
            "--serve" => serve = true,
            "--explain" => explain = true,
            other => panic!("unknown option {other}"),
        }
    }
    // Each length's median needs at least one timed run.
    assert!(repeats > 0, "--repeats must be at least 1");

    let started = Instant::now();
    let mut builder = Detector::builder(&model)
        .backend(backend)
        .precision(precision)
        .batch_size(batch_size);
    if let Some(kernel) = kernel {
        builder = builder.kernel(kernel);
    }
    let detector = builder.build().unwrap();
    let load_seconds = started.elapsed().as_secs_f64();

    let codes: Vec<String> = match &corpus {
        Some(corpus) => std::io::BufReader::new(std::fs::File::open(corpus).unwrap())
            .lines()
            .take(functions)
            .map(|line| {
                let v: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
                v["func"].as_str().unwrap().to_owned()
            })
            .collect(),
        None => Vec::new(),
    };
    let mut latency = serde_json::Map::new();
    let mut throughput = serde_json::Value::Null;
    if serve {
        println!("{}", json!({ "load_seconds": load_seconds }));
        let mut served: std::collections::BTreeMap<usize, Vec<f64>> = Default::default();
        for line in std::io::stdin().lock().lines() {
            let line = line.unwrap();
            let reply = match line.split_whitespace().collect::<Vec<_>>()[..] {
                ["latency", n] => {
                    let n: usize = n.parse().expect("latency takes a token count");
                    let seconds = batch1_seconds(&detector, n, explain);
                    served.entry(n).or_default().push(seconds);
                    json!({ "seconds": seconds })
                }
                [] => continue,
                ["throughput"] => {
                    assert!(corpus.is_some(), "throughput needs --corpus");
                    throughput = corpus_pass(&detector, &codes, explain);
                    throughput.clone()
                }
                _ => panic!("unknown request {line:?}: latency N or throughput"),
            };
            println!("{reply}");
        }
        for (n, mut times) in served {
            latency.insert(n.to_string(), json!(median(&mut times)));
        }
    } else {
        for &n in &lengths {
            batch1_seconds(&detector, n, explain); // warm-up
            let mut times: Vec<f64> = (0..repeats)
                .map(|_| batch1_seconds(&detector, n, explain))
                .collect();
            latency.insert(n.to_string(), json!(median(&mut times)));
        }
        if corpus.is_some() {
            throughput = corpus_pass(&detector, &codes, explain);
        }
    }

    let probe_logits: Vec<Vec<f32>> = probes
        .iter()
        .map(|p| detector.predict(p).unwrap().logits)
        .collect();
    println!(
        "{}",
        json!({
            "backend": detector.backend().name(),
            "precision": format!("{:?}", detector.precision()),
            "execution": detector.execution().to_string(),
            "threads": std::env::var("RAYON_NUM_THREADS").ok(),
            "load_seconds": load_seconds,
            "peak_rss_bytes": peak_rss_bytes(),
            "latency_seconds": latency,
            "throughput": throughput,
            "probe_logits": probe_logits,
            "cpu_peak_gflops": if peak { cpu_peak_gflops() } else { serde_json::Value::Null },
        })
    );
}

/// Seconds of one batch-1 prediction (or with `explain`, explanation) on an input of
/// `n` tokens, tokenizing included.
fn batch1_seconds(detector: &Detector, n: usize, explain: bool) -> f64 {
    // " x" is one token ("Ġx") in RoBERTa's vocabulary: n - 2 of them make n tokens.
    let text = " x".repeat(n - 2);
    assert_eq!(
        detector.tokenize(&text).unwrap().input_ids.len(),
        n,
        "probe text is not {n} tokens"
    );
    let t = Instant::now();
    if explain {
        detector.explain(&text).unwrap();
    } else {
        detector.predict(&text).unwrap();
    }
    t.elapsed().as_secs_f64()
}

/// One `predict_batch` (or with `explain`, `explain_batch`) pass over `codes`: its rate
/// and the insecure probabilities.
fn corpus_pass(detector: &Detector, codes: &[String], explain: bool) -> serde_json::Value {
    let refs: Vec<&str> = codes.iter().map(String::as_str).collect();
    let t = Instant::now();
    let predictions = if explain {
        let explained = detector.explain_batch(&refs).unwrap();
        explained.into_iter().map(|e| e.prediction).collect()
    } else {
        detector.predict_batch(&refs).unwrap()
    };
    let seconds = t.elapsed().as_secs_f64();
    json!({
        "functions": predictions.len(),
        "seconds": seconds,
        "functions_per_second": predictions.len() as f64 / seconds,
        "insecure_probabilities": predictions.iter().map(|p| p.insecure_probability).collect::<Vec<_>>(),
        "logits": predictions.iter().map(|p| p.logits.clone()).collect::<Vec<_>>(),
    })
}

/// The median of `times` (the upper one of an even count), which it sorts.
fn median(times: &mut [f64]) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// VmHWM from /proc/self/status (Linux), in bytes.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Peak GFLOP/s of vector multiply-adds on as many threads as rayon uses: each thread
/// runs independent accumulator chains with no memory traffic, so only the
/// multiply-add units bound it. f32 uses the widest FMA the CPU has (AVX-512, else
/// AVX2), named in `f32_isa`; `null` entries where the CPU lacks the instructions.
fn cpu_peak_gflops() -> serde_json::Value {
    // The thread count the CPU backends use: RAYON_NUM_THREADS, else every core.
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    // `kernel(n)` runs n rounds of `chains` instructions of `flops_per_instruction` each.
    // The best of several tries (each about 0.1 s): a peak is what the CPU can do, and
    // one try that a slow spell of a shared machine falls on would understate it.
    let rate = |kernel: fn(u64) -> f32, chains: u64, flops_per_instruction: f64| {
        const ITERATIONS: u64 = 20_000_000;
        const TRIES: usize = 5;
        let once = || {
            let started = Instant::now();
            std::thread::scope(|scope| {
                for _ in 0..threads {
                    scope.spawn(|| std::hint::black_box(kernel(ITERATIONS)));
                }
            });
            let instructions = (threads as u64 * ITERATIONS * chains) as f64;
            instructions * flops_per_instruction / started.elapsed().as_secs_f64() / 1e9
        };
        (0..TRIES).map(|_| once()).fold(0.0, f64::max)
    };
    #[cfg(target_arch = "x86_64")]
    {
        // The rates of the instructions the library's kernels run on this CPU.
        use insecure_code_detector::{CpuFeatures, Kernel};
        let cpu = CpuFeatures::get();
        let (f32_isa, f32_fma) = match Kernel::select(Precision::F32, cpu) {
            Some(Kernel::F32Avx512) => ("avx512", Some(rate(peak::fma, 16, 32.0))),
            Some(_) => ("avx2", Some(rate(peak::fma256, 12, 16.0))),
            None => ("none", None),
        };
        // The bf16 dot product wherever the CPU has it (the bf16 kernel runs on it only
        // where it outruns the f32 FMAs); `bf16-avx2` runs the f32 FMAs measured above.
        let bf16_dot = Kernel::Bf16Avx512
            .runs_on(cpu)
            .then(|| rate(peak::dpbf16, 16, 64.0));
        // What `Precision::Int8`'s kernel runs: AVX512-VNNI's vpdpbusd, 64 multiply-adds
        // (128 operations) each, else AVX2's vpmaddwd and vpaddd, 16 (32 operations)
        // per pair.
        let (int8_isa, int8_madd) = match Kernel::select(Precision::Int8, cpu) {
            Some(Kernel::Int8Vnni) => ("avx512vnni", Some(rate(peak::dpbusd, 16, 128.0))),
            Some(_) => ("avx2", Some(rate(peak::madd256, 12, 32.0))),
            None => ("none", None),
        };
        json!({ "threads": threads, "f32_isa": f32_isa, "f32_fma": f32_fma, "bf16_dot": bf16_dot,
                "int8_isa": int8_isa, "int8_madd": int8_madd })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = rate;
        json!({ "threads": threads, "f32_isa": "none", "f32_fma": null, "bf16_dot": null,
                "int8_isa": "none", "int8_madd": null })
    }
}

#[cfg(target_arch = "x86_64")]
mod peak {
    use std::arch::x86_64::*;

    /// 16 chains written out, so that they stay in registers.
    macro_rules! chains {
        ($acc:ident, $step:expr; $($i:literal)*) => {$( $acc[$i] = $step($acc[$i]); )*};
    }

    /// `iterations` x 16 FMAs (16 lanes, 2 flops each).
    pub fn fma(iterations: u64) -> f32 {
        assert!(is_x86_feature_detected!("avx512f"));
        #[target_feature(enable = "avx512f")]
        fn run(iterations: u64) -> f32 {
            let x = std::hint::black_box(_mm512_set1_ps(1.0));
            let y = std::hint::black_box(_mm512_set1_ps(0.0));
            let mut acc = [_mm512_setzero_ps(); 16];
            for _ in 0..iterations {
                chains!(acc, |a| _mm512_fmadd_ps(x, y, a); 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
            }
            acc.iter()
                .fold(0.0, |sum, &a| sum + _mm512_reduce_add_ps(a))
        }
        // SAFETY: AVX-512F was checked above.
        unsafe { run(iterations) }
    }

    /// `iterations` x 12 AVX2 FMAs (8 lanes, 2 flops each): 12 chains and the two
    /// operands fill AVX2's 16 vector registers.
    pub fn fma256(iterations: u64) -> f32 {
        assert!(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"));
        #[target_feature(enable = "avx2,fma")]
        fn run(iterations: u64) -> f32 {
            let x = std::hint::black_box(_mm256_set1_ps(1.0));
            let y = std::hint::black_box(_mm256_set1_ps(0.0));
            let mut acc = [_mm256_setzero_ps(); 12];
            for _ in 0..iterations {
                chains!(acc, |a| _mm256_fmadd_ps(x, y, a); 0 1 2 3 4 5 6 7 8 9 10 11);
            }
            let mut lanes = [0.0f32; 8];
            let sum = acc
                .iter()
                .fold(_mm256_setzero_ps(), |s, &a| _mm256_add_ps(s, a));
            // SAFETY: `lanes` holds 8 floats, the width of one AVX register.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sum) };
            lanes.iter().sum()
        }
        // SAFETY: AVX2 and FMA were checked above.
        unsafe { run(iterations) }
    }

    /// `iterations` x 12 AVX2 `vpmaddwd` + `vpaddd` pairs (8 lanes of 2 products
    /// summed into an accumulator): each chain feeds its own accumulator back in as
    /// an operand, so the products cannot be hoisted out of the loop.
    pub fn madd256(iterations: u64) -> f32 {
        assert!(is_x86_feature_detected!("avx2"));
        #[target_feature(enable = "avx2")]
        fn run(iterations: u64) -> f32 {
            let y = std::hint::black_box(_mm256_set1_epi16(0));
            let mut acc = [_mm256_setzero_si256(); 12];
            for _ in 0..iterations {
                chains!(acc, |a| _mm256_add_epi32(a, _mm256_madd_epi16(a, y)); 0 1 2 3 4 5 6 7 8 9 10 11);
            }
            let sum = acc
                .iter()
                .fold(_mm256_setzero_si256(), |s, &a| _mm256_add_epi32(s, a));
            _mm256_extract_epi32::<0>(sum) as f32
        }
        // SAFETY: AVX2 was checked above.
        unsafe { run(iterations) }
    }

    /// `iterations` x 16 `vpdpbusd` (16 lanes of 4 byte products summed into the
    /// accumulator), each chain's accumulator also an operand, as in `madd256`.
    pub fn dpbusd(iterations: u64) -> f32 {
        assert!(is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vnni"));
        #[target_feature(enable = "avx512f,avx512vnni")]
        fn run(iterations: u64) -> f32 {
            let y = std::hint::black_box(_mm512_set1_epi32(0));
            let mut acc = [_mm512_setzero_si512(); 16];
            for _ in 0..iterations {
                chains!(acc, |a| _mm512_dpbusd_epi32(a, a, y); 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
            }
            _mm512_reduce_add_epi32(
                acc.iter()
                    .fold(_mm512_setzero_si512(), |s, &a| _mm512_add_epi32(s, a)),
            ) as f32
        }
        // SAFETY: AVX-512F and AVX512-VNNI were checked above.
        unsafe { run(iterations) }
    }

    /// `iterations` x 16 `vdpbf16ps` (16 lanes, 2 products and 2 additions each).
    pub fn dpbf16(iterations: u64) -> f32 {
        assert!(is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16"));
        #[target_feature(enable = "avx512f,avx512bf16")]
        fn run(iterations: u64) -> f32 {
            // 0x3f80 is bf16 1.0: pairs of (1.0, 1.0) times pairs of zeros.
            let x: __m512bh = unsafe {
                std::mem::transmute(std::hint::black_box(_mm512_set1_epi32(0x3f80_3f80)))
            };
            let y: __m512bh =
                unsafe { std::mem::transmute(std::hint::black_box(_mm512_set1_epi32(0))) };
            let mut acc = [_mm512_setzero_ps(); 16];
            for _ in 0..iterations {
                chains!(acc, |a| _mm512_dpbf16_ps(a, x, y); 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
            }
            acc.iter()
                .fold(0.0, |sum, &a| sum + _mm512_reduce_add_ps(a))
        }
        // SAFETY: AVX-512F and AVX512-BF16 were checked above.
        unsafe { run(iterations) }
    }
}
