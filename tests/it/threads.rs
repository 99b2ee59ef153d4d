//! One detector shared by several threads gives the serial results.

use std::sync::Arc;

use crate::common::*;
use insecure_code_detector::Detector;

#[test]
fn eight_threads_predicting_at_once_match_serial_results() {
    let reference = reference("roberta-2-labels");
    let texts: Vec<String> = reference.inputs.iter().map(|i| i.text.clone()).collect();
    for backend in test_backends() {
        let detector = Arc::new(
            Detector::builder(fixture("roberta-2-labels"))
                .backend(backend)
                .build()
                .unwrap(),
        );
        let serial: Vec<_> = texts.iter().map(|t| detector.predict(t).unwrap()).collect();
        // wgpu runs on a software rasterizer in CI; fewer rounds keep it quick.
        let rounds = if backend == insecure_code_detector::Backend::Wgpu {
            25
        } else {
            200
        };
        let handles: Vec<_> = (0..8)
            .map(|thread| {
                let detector = Arc::clone(&detector);
                let texts = texts.clone();
                std::thread::spawn(move || {
                    (0..rounds)
                        .map(|round| {
                            let i = (thread * 7 + round) % texts.len();
                            (i, detector.predict(&texts[i]).unwrap())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for handle in handles {
            for (i, prediction) in handle.join().unwrap() {
                assert_eq!(prediction, serial[i], "{backend}: input {i}");
            }
        }
    }
}
