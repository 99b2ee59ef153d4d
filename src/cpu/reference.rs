//! Plain-Rust versions of what the kernels compute, in f64 and without intrinsics: the
//! oracle the kernels' tests compare with. They run anywhere, Miri included
//! (`cargo +nightly miri test --lib cpu::reference`), and are written for clarity, not
//! speed.

/// erf in f64 to well below f32's precision: its Maclaurin series near 0, the
/// continued fraction of erfc beyond.
pub(crate) fn erf(x: f64) -> f64 {
    if x < 0.0 {
        return -erf(-x);
    }
    if x < 2.5 {
        let (mut term, mut sum, mut n) = (x, x, 0.0);
        while term.abs() > 1e-18 * sum.abs() {
            n += 1.0;
            term *= -x * x / n;
            sum += term / (2.0 * n + 1.0);
        }
        return sum * 2.0 / std::f64::consts::PI.sqrt();
    }
    // erfc(x) = e^(-x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))).
    let mut fraction = x;
    for k in (1..200).rev() {
        fraction = x + (k as f64 / 2.0) / fraction;
    }
    1.0 - (-x * x).exp() / std::f64::consts::PI.sqrt() / fraction
}

/// Exact GELU, x·Φ(x) = x/2 · (1 + erf(x/√2)), transformers' "gelu".
pub(crate) fn gelu(x: f64) -> f64 {
    0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2))
}

/// LayerNorm of `x`: (x - mean) / √(variance + epsilon) · gamma + beta, the variance
/// the mean square deviation (as transformers computes it).
pub(crate) fn layer_norm(x: &[f64], gamma: &[f32], beta: &[f32], epsilon: f64) -> Vec<f64> {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let variance = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    x.iter()
        .zip(gamma.iter().zip(beta))
        .map(|(v, (&g, &b))| (v - mean) / (variance + epsilon).sqrt() * f64::from(g) + f64::from(b))
        .collect()
}

/// softmax of `scores`, from their maximum.
pub(crate) fn softmax(scores: &[f64]) -> Vec<f64> {
    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
    let sum: f64 = weights.iter().sum();
    weights.iter().map(|w| w / sum).collect()
}

/// `a · w + bias` for `a` `[m, k]` and `w` `[k, n]`, both row-major, each operand
/// first passed through `round` (the identity, or the rounding a kernel applies to
/// its inputs): `[m, n]` row-major.
pub(crate) fn matmul(
    a: &[f32],
    w: &[f32],
    bias: &[f32],
    (m, k, n): (usize, usize, usize),
    round: impl Fn(f32) -> f64,
) -> Vec<f64> {
    assert_eq!((a.len(), w.len(), bias.len()), (m * k, k * n, n));
    let mut out = Vec::with_capacity(m * n);
    for r in 0..m {
        for c in 0..n {
            let sum: f64 = (0..k)
                .map(|i| round(a[r * k + i]) * round(w[i * n + c]))
                .sum();
            out.push(sum + f64::from(bias[c]));
        }
    }
    out
}

/// Multi-head self-attention of inputs laid end to end (`lengths` tokens each) from
/// their query, key and value projections `qkv` (`[total, 3 * width]`: queries, keys,
/// values, heads side by side), each input attending only to its own tokens:
/// softmax(q·kᵀ / √head_dim)·v per input and head, `[total, width]`.
pub(crate) fn attention(qkv: &[f32], lengths: &[usize], heads: usize, width: usize) -> Vec<f64> {
    let head_dim = width / heads;
    let total: usize = lengths.iter().sum();
    assert_eq!(qkv.len(), total * 3 * width);
    let at = |token: usize, part: usize, head: usize, dim: usize| {
        f64::from(qkv[token * 3 * width + part * width + head * head_dim + dim])
    };
    let mut context = vec![0f64; total * width];
    let mut start = 0;
    for &len in lengths {
        for head in 0..heads {
            for query in start..start + len {
                let scores: Vec<f64> = (start..start + len)
                    .map(|key| {
                        (0..head_dim)
                            .map(|d| at(query, 0, head, d) * at(key, 1, head, d))
                            .sum::<f64>()
                            / (head_dim as f64).sqrt()
                    })
                    .collect();
                let weights = softmax(&scores);
                for d in 0..head_dim {
                    context[query * width + head * head_dim + d] = (start..start + len)
                        .zip(&weights)
                        .map(|(key, w)| w * at(key, 2, head, d))
                        .sum();
                }
            }
        }
        start += len;
    }
    context
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_and_gelu_take_known_values() {
        // erf(1) and erf(3) to 16 digits (Abramowitz and Stegun, table 7.1).
        assert!((erf(1.0) - 0.842_700_792_949_714_9).abs() < 1e-15);
        assert!((erf(3.0) - 0.999_977_909_503_001_4).abs() < 1e-15);
        assert_eq!(erf(-1.0), -erf(1.0));
        assert_eq!(gelu(0.0), 0.0);
        // Φ(1) = (1 + erf(1/√2)) / 2 = 0.841344746068543.
        assert!((gelu(1.0) - 0.841_344_746_068_543).abs() < 1e-14);
    }

    #[test]
    fn layer_norm_and_softmax_normalize() {
        let x = [1.0, 2.0, 3.0, 6.0];
        let y = layer_norm(&x, &[1.0; 4], &[0.0; 4], 0.0);
        let mean = y.iter().sum::<f64>() / 4.0;
        let variance = y.iter().map(|v| v * v).sum::<f64>() / 4.0;
        assert!(mean.abs() < 1e-12 && (variance - 1.0).abs() < 1e-12);
        let p = softmax(&[0.0, 2.0_f64.ln(), 5.0]);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!((p[1] / p[0] - 2.0).abs() < 1e-12 && (p[2] / p[0] - 5f64.exp()).abs() < 1e-9);
        // Scores far apart: the largest takes it all, with no overflow.
        assert_eq!(softmax(&[1000.0, 0.0]), vec![1.0, 0.0]);
    }

    #[test]
    fn matmul_and_attention_on_small_cases() {
        // [[1, 2]] · [[1, 0, 1], [0, 1, 1]] + [0, 0, 10]
        let out = matmul(
            &[1.0, 2.0],
            &[1.0, 0.0, 1.0, 0.0, 1.0, 1.0],
            &[0.0, 0.0, 10.0],
            (1, 2, 3),
            f64::from,
        );
        assert_eq!(out, vec![1.0, 2.0, 13.0]);
        // One token attends to itself alone: its context is its value.
        let qkv = [0.5, -1.0, 0.25, 2.0, 3.0, -4.0];
        assert_eq!(attention(&qkv, &[1], 2, 2), vec![3.0, -4.0]);
        // Two equal keys share the weight: the context is the values' mean.
        let qkv = [1.0, 1.0, 2.0, 1.0, 1.0, 4.0];
        assert_eq!(attention(&qkv, &[2], 1, 1), vec![3.0, 3.0]);
    }
}
