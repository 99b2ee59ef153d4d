//! Which lines: a prediction with the classifier's own attention from `<s>` to each
//! token, summed by source line (LineVul's attribution, on the last layer).

use std::ops::Range;

use super::options::is_python_whitespace;
use super::{Prediction, Preprocessing};
use crate::tokenizer::ByteSpan;

/// A prediction with where the model looked: the last encoder layer's attention
/// probabilities from `<s>` to each token (averaged over heads), and their sums by
/// source line. [`Detector::explain`](crate::Detector::explain) gives it.
///
/// ```no_run
/// # let detector = insecure_code_detector::Detector::from_pretrained("m")?;
/// let code = "int f(char *s)\n{\n  char b[8];\n  strcpy(b, s);\n}\n";
/// let e = detector.explain(code)?;
/// for line in e.top_lines(3) {
///     println!("line {}: {:.3}", line.line, line.score);
/// }
/// # Ok::<(), insecure_code_detector::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    /// The prediction, as [`Detector::predict`](crate::Detector::predict) gives it.
    pub prediction: Prediction,
    /// One per token fed to the model, `<s>` and `</s>` included, in order; the
    /// scores sum to 1.
    pub tokens: Vec<TokenScore>,
    /// Every line that received a score, in line order: the sum of its tokens' scores.
    pub lines: Vec<LineScore>,
}

/// One token's share of the attention from `<s>`.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenScore {
    /// The token id.
    pub id: u32,
    /// The bytes of the code as given that the token came from (mapped back through
    /// the preprocessing); `None` for the `<s>` and `</s>` around the input.
    pub byte_range: Option<Range<usize>>,
    /// The line (from 1) of the token's first byte that is not whitespace; `None` for
    /// `<s>`, `</s>` and tokens of whitespace alone.
    pub line: Option<usize>,
    /// The mean over heads of the last layer's attention probability from `<s>` to
    /// this token.
    pub score: f32,
}

/// A source line's score: the sum of its tokens' scores.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LineScore {
    /// The line, from 1.
    pub line: usize,
    /// The sum of the scores of the tokens on it.
    pub score: f32,
}

impl Explanation {
    /// The `k` lines with the highest scores, highest first (ties in line order).
    pub fn top_lines(&self, k: usize) -> Vec<LineScore> {
        let mut lines = self.lines.clone();
        lines.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.line.cmp(&b.line)));
        lines.truncate(k);
        lines
    }
}

/// A long function's explanation on the window that gave its verdict
/// ([`Detector::explain_windows`](crate::Detector::explain_windows)): that window's
/// tokens and lines, numbered in the whole function.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowedExplanation {
    /// The window's explanation.
    pub explanation: Explanation,
    /// Byte range of the code as given that the window covers.
    pub byte_range: Range<usize>,
    /// Windows classified.
    pub windows: usize,
}

/// The explanation of `code`'s prediction from its tokens: `ids` with their `spans` in
/// `text` (the preprocessed code; `(0, 0)` for the framing `<s>` and `</s>`) and
/// their `scores`.
pub(crate) fn explain(
    prediction: Prediction,
    code: &str,
    (preprocessing, text): (Preprocessing, &str),
    ids: &[u32],
    spans: &[ByteSpan],
    scores: &[f32],
) -> Explanation {
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(code.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let line_of = |byte: usize| line_starts.partition_point(|&start| start <= byte);
    let tokens: Vec<TokenScore> = ids
        .iter()
        .zip(spans)
        .zip(scores)
        .map(|((&id, &(start, end)), &score)| {
            if start >= end {
                return TokenScore {
                    id,
                    byte_range: None,
                    line: None,
                    score,
                };
            }
            // Spans fall on character boundaries; were one not to, its bytes are read
            // as ASCII.
            let first = match text.get(start..end) {
                Some(piece) => piece
                    .char_indices()
                    .find(|&(_, c)| !is_python_whitespace(c))
                    .map(|(i, _)| start + i),
                None => text.as_bytes()[start..end]
                    .iter()
                    .position(|b| !b.is_ascii_whitespace())
                    .map(|i| start + i),
            };
            let line = first.map(|b| line_of(preprocessing.source_range(code, b..b + 1).start));
            TokenScore {
                id,
                byte_range: Some(preprocessing.source_range(code, start..end)),
                line,
                score,
            }
        })
        .collect();
    let mut sums = std::collections::BTreeMap::<usize, f32>::new();
    for token in &tokens {
        if let Some(line) = token.line {
            *sums.entry(line).or_default() += token.score;
        }
    }
    Explanation {
        prediction,
        tokens,
        lines: sums
            .into_iter()
            .map(|(line, score)| LineScore { line, score })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prediction() -> Prediction {
        Prediction {
            label: 0,
            label_name: "LABEL_0".into(),
            insecure_probability: 0.1,
            logits: vec![1.0, 0.0],
            tokens: 5,
            truncated: false,
        }
    }

    #[test]
    fn tokens_go_to_the_line_of_their_first_byte_that_is_not_whitespace() {
        let code = "int\r\n\tf;\n";
        // <s>, "int", "\r\n\t" (whitespace only), "\tf" (its first non-space on line 2), </s>
        let spans = [(0, 0), (0, 3), (3, 6), (5, 7), (0, 0)];
        let scores = [0.5, 0.2, 0.1, 0.15, 0.05];
        let e = explain(
            prediction(),
            code,
            (Preprocessing::Raw, code),
            &[0, 10, 11, 12, 2],
            &spans,
            &scores,
        );
        let lines: Vec<Option<usize>> = e.tokens.iter().map(|t| t.line).collect();
        assert_eq!(lines, [None, Some(1), None, Some(2), None]);
        assert_eq!(
            e.lines,
            [
                LineScore {
                    line: 1,
                    score: 0.2
                },
                LineScore {
                    line: 2,
                    score: 0.15
                }
            ]
        );
        assert_eq!(
            e.top_lines(1),
            [LineScore {
                line: 1,
                score: 0.2
            }]
        );
        assert_eq!(e.tokens[3].byte_range, Some(5..7));
    }

    #[test]
    fn collapsed_tokens_map_back_to_the_source_lines() {
        let code = "a\n\n  b c\n";
        let p = Preprocessing::CollapseWhitespace;
        let text = p.apply(code);
        assert_eq!(text, "a b c");
        // "a", " b", " c" in the collapsed text.
        let spans = [(0, 0), (0, 1), (1, 3), (3, 5), (0, 0)];
        let e = explain(
            prediction(),
            code,
            (p, &text),
            &[0, 5, 6, 7, 2],
            &spans,
            &[0.2; 5],
        );
        let lines: Vec<Option<usize>> = e.tokens.iter().map(|t| t.line).collect();
        assert_eq!(lines, [None, Some(1), Some(3), Some(3), None]);
        assert_eq!(e.tokens[2].byte_range, Some(5..6));
    }
}
