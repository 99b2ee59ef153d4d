//! Long functions as overlapping windows: [`Detector::predict_windows`] and
//! [`Detector::explain_windows`].

use super::batching::window_starts;
use super::explanation;
use super::{Detector, Prediction, WindowedExplanation, WindowedPrediction};
use crate::error::{Error, Result};
use crate::tokenizer::{ByteSpan, TokenizedInput};

impl Detector {
    /// The stride [`predict_windows`](Self::predict_windows) callers use by default
    /// (`icd scan --window`, the C API's 0, Python's `stride=0`): half of the tokens a
    /// window holds between `<s>` and `</s>` (255 for 512 tokens), at least 1.
    pub fn default_stride(max_tokens: usize) -> usize {
        (max_tokens.saturating_sub(2) / 2).max(1)
    }

    /// Classifies a function of any length as overlapping windows of `max_tokens`
    /// tokens, each `stride` content tokens after the previous one (the last window
    /// ends at the last token), and returns the window most likely insecure. A
    /// function that fits in one window gives the same result as [`predict`](Self::predict).
    ///
    /// ```no_run
    /// # let detector = insecure_code_detector::Detector::from_pretrained("m")?;
    /// let long_function = std::fs::read_to_string("big.c").unwrap();
    /// let w = detector.predict_windows(&long_function, 255)?;
    /// println!("{:.3} in bytes {:?} of {} windows", w.prediction.insecure_probability, w.byte_range, w.windows);
    /// # Ok::<(), insecure_code_detector::Error>(())
    /// ```
    pub fn predict_windows(&self, code: &str, stride: usize) -> Result<WindowedPrediction> {
        let run = self.run_windows(code, stride, false)?;
        Ok(WindowedPrediction {
            prediction: run.prediction,
            byte_range: run.byte_range,
            windows: run.windows,
        })
    }

    /// [`predict_windows`](Self::predict_windows), explained as
    /// [`explain`](Self::explain) explains: the tokens and lines of the window that
    /// gave the verdict, lines numbered within the whole of `code`.
    pub fn explain_windows(&self, code: &str, stride: usize) -> Result<WindowedExplanation> {
        let run = self.run_windows(code, stride, true)?;
        let explanation = explanation::explain(
            run.prediction,
            code,
            (self.preprocessing, &run.text),
            &run.ids,
            &run.spans,
            &run.scores,
        );
        Ok(WindowedExplanation {
            explanation,
            byte_range: run.byte_range,
            windows: run.windows,
        })
    }

    /// The windows of `code` run through the model, and the one most likely insecure
    /// (with its token scores where `explain`).
    fn run_windows(&self, code: &str, stride: usize, explain: bool) -> Result<WindowRun> {
        let width = self.max_tokens - 2;
        if stride == 0 || stride > width {
            return Err(Error::InvalidArgument {
                argument: "stride",
                message: format!("is {stride}, expected 1..={width} (max_tokens - 2)"),
            });
        }
        let text = self.preprocessing.apply(code);
        let (ids, offsets) = self.tokenizer.encode_with_offsets(&text)?;
        let starts = window_starts(ids.len(), width, stride);
        let frame = |start: usize| {
            let end = (start + width).min(ids.len());
            let mut input_ids = Vec::with_capacity(end - start + 2);
            input_ids.push(self.tokenizer.bos_id());
            input_ids.extend_from_slice(&ids[start..end]);
            input_ids.push(self.tokenizer.eos_id());
            input_ids
        };
        let windows: Vec<TokenizedInput> = starts
            .iter()
            .map(|&start| {
                let input_ids = frame(start);
                let length = input_ids.len();
                TokenizedInput {
                    input_ids,
                    untruncated_length: Some(length),
                }
            })
            .collect();
        let mut best: Option<(usize, Prediction, Vec<f32>)> = None;
        let order: Vec<usize> = (0..windows.len()).collect();
        for chunk in self.model_calls(&order, |i| windows[i].input_ids.len()) {
            let members: Vec<&TokenizedInput> = chunk.iter().map(|&i| &windows[i]).collect();
            // One input: every window's error is the input's.
            let scored = self
                .run_batch(&members, explain)
                .map_err(|e| e.renumbered(|_| 0))?;
            for (&index, (prediction, scores)) in chunk.iter().zip(scored) {
                if best.as_ref().is_none_or(|(_, b, _)| {
                    prediction.insecure_probability > b.insecure_probability
                }) {
                    best = Some((index, prediction, scores));
                }
            }
        }
        let (index, prediction, scores) = best.expect("at least one window");
        let start = starts[index];
        let end = (start + width).min(ids.len());
        let byte_range = if start < end {
            self.preprocessing
                .source_range(code, offsets[start].0..offsets[end - 1].1)
        } else {
            0..code.len()
        };
        // What the winner's explanation reads, only where it is wanted.
        let (text, spans) = if explain {
            let mut spans = Vec::with_capacity(end - start + 2);
            spans.push((0, 0));
            spans.extend_from_slice(&offsets[start..end]);
            spans.push((0, 0));
            (text.into_owned(), spans)
        } else {
            (String::new(), Vec::new())
        };
        Ok(WindowRun {
            ids: frame(start),
            prediction,
            scores,
            byte_range,
            windows: windows.len(),
            text,
            spans,
        })
    }
}

/// The windows of one input run, and the winner's parts for its explanation.
struct WindowRun {
    prediction: Prediction,
    /// The winner's token scores (empty unless explaining).
    scores: Vec<f32>,
    byte_range: std::ops::Range<usize>,
    windows: usize,
    /// The preprocessed text and the winner's spans in it (empty unless explaining),
    /// and the winner's ids.
    text: String,
    ids: Vec<u32>,
    spans: Vec<ByteSpan>,
}
