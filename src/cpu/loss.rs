//! The per-sample losses in f64, the twin of `shaders/shared/loss.wgsl`.

use crate::model::LossCode;

/// The loss of a sample with logits `z` and target `t`, and whether the prediction is right;
/// replaces `z` by d loss / d z.
pub fn loss_and_dlogits(code: LossCode, z: &mut [f64], t: f64) -> (f64, bool) {
    match code {
        LossCode::SoftmaxCe => softmax_ce(z, t as usize),
        LossCode::SoftmaxSeedCompat => softmax_seed_compat(z, t as usize),
        LossCode::Logistic => logistic(z, t),
        LossCode::Squares => {
            let r = z[0] - t;
            z[0] = 2.0 * r;
            (r * r, false)
        }
    }
}

fn argmax(z: &[f64]) -> usize {
    // The first maximum, as the shader.
    (1..z.len()).fold(0, |best, k| if z[k] > z[best] { k } else { best })
}

/// Replaces z by softmax(z); returns ln Σ exp(z − max) and the index of the max.
fn softmax_in_place(z: &mut [f64]) -> (f64, usize) {
    let top = argmax(z);
    let m = z[top];
    let mut total = 0.0;
    for v in z.iter_mut() {
        *v = (*v - m).exp();
        total += *v;
    }
    for v in z.iter_mut() {
        *v /= total;
    }
    (total.ln(), top)
}

fn softmax_ce(z: &mut [f64], y: usize) -> (f64, bool) {
    let gap = z[argmax(z)] - z[y];
    let (lse, top) = softmax_in_place(z);
    z[y] -= 1.0;
    (lse + gap, top == y)
}

fn softmax_seed_compat(z: &mut [f64], y: usize) -> (f64, bool) {
    let (_, top) = softmax_in_place(z);
    let q = z.to_vec();
    let gap = q[argmax(&q)] - q[y];
    let mut r = q.clone();
    let (lse, _) = softmax_in_place(&mut r);
    r[y] -= 1.0;
    let qg: f64 = q.iter().zip(&r).map(|(a, b)| a * b).sum();
    for k in 0..z.len() {
        z[k] = q[k] * (r[k] - qg);
    }
    (lse + gap, top == y)
}

fn logistic(z: &mut [f64], t: f64) -> (f64, bool) {
    let v = z[0];
    let h = 1.0 / (1.0 + (-v).exp());
    z[0] = h - t;
    let loss = v.max(0.0) - t * v + (-v.abs()).exp().ln_1p();
    (loss, (v > 0.0) == (t > 0.5))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Central differences of the loss against the analytic derivative.
    fn check_gradient(code: LossCode, z: &[f64], t: f64) {
        let mut dz = z.to_vec();
        loss_and_dlogits(code, &mut dz, t);
        for k in 0..z.len() {
            let eps = 1e-6;
            let (mut a, mut b) = (z.to_vec(), z.to_vec());
            a[k] += eps;
            b[k] -= eps;
            let fa = loss_and_dlogits(code, &mut a, t).0;
            let fb = loss_and_dlogits(code, &mut b, t).0;
            let numeric = (fa - fb) / (2.0 * eps);
            assert!((numeric - dz[k]).abs() < 1e-7, "{code:?} k={k}: {numeric} vs {}", dz[k]);
        }
    }

    #[test]
    fn derivatives_match_finite_differences() {
        for code in [LossCode::SoftmaxCe, LossCode::SoftmaxSeedCompat] {
            check_gradient(code, &[0.3, -1.2, 2.0], 1.0);
            check_gradient(code, &[0.7, -0.4], 0.0);
        }
        check_gradient(LossCode::Logistic, &[0.8], 1.0);
        check_gradient(LossCode::Logistic, &[-2.5], 1.0);
        check_gradient(LossCode::Squares, &[0.8], 0.3);
    }

    #[test]
    fn seed_compat_floor_for_two_classes() {
        // A perfectly confident prediction: the notebook's double softmax bottoms at ln(1+e⁻¹).
        let (loss, _) = loss_and_dlogits(LossCode::SoftmaxSeedCompat, &mut [50.0, -50.0], 0.0);
        assert!((loss - (1.0 + (-1.0f64).exp()).ln()).abs() < 1e-12);
    }
}
