//! Z-scores: every feature (and, for least squares, the target) shifted and scaled by the
//! training set's mean and population standard deviation, the same numbers applied to the test
//! set, so that nothing about the test set leaks into training.

use serde::Serialize;

use super::{Data, Dataset, Features, detect_classes};

/// What [`standardize`] did, to record in `config.json` and to undo: feature j became
/// (x − mean[j]) / std[j], or 0 where std[j] = 0 (a constant feature).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Standardization {
    /// The training set's mean of each feature.
    pub mean: Vec<f64>,
    /// The training set's population standard deviation of each feature (0: constant, mapped to 0).
    pub std: Vec<f64>,
    /// The target's training mean, when the target was standardised too.
    pub target_mean: Option<f64>,
    /// The target's training population standard deviation, when it was standardised.
    pub target_std: Option<f64>,
}

/// Mean and population standard deviation of `values` (in f64, two passes).
fn moments(values: impl Iterator<Item = f64> + Clone, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 0.0);
    }
    let mean = values.clone().sum::<f64>() / n as f64;
    let var = values.map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64;
    (mean, var.sqrt())
}

/// (v − mean) / std as f32; 0 for a constant column (std = 0). A test value so far out that
/// the quotient exceeds f32 is clamped to ±f32::MAX (it cannot happen on the training set,
/// whose z-scores are bounded by √n).
fn z(v: f64, mean: f64, std: f64) -> f32 {
    if std > 0.0 { ((v - mean) / std).clamp(-f32::MAX as f64, f32::MAX as f64) as f32 } else { 0.0 }
}

/// Standardise `data` in place with the training set's statistics: every feature becomes a
/// z-score (a constant feature becomes 0); with `target` (least squares) the target too. The
/// features become [`Features::F32`] (MNIST's u8 pixels included). Class detection is redone
/// for a standardised target (a least-squares target is no longer a class index).
pub fn standardize(data: &mut Data, target: bool) -> Standardization {
    let train = &data.train;
    let (n, p) = (train.n, train.p);
    let (mut mean, mut std) = (Vec::with_capacity(p), Vec::with_capacity(p));
    for j in 0..p {
        let (m, s) = moments((0..n).map(move |i| train.x(i, j)), n);
        mean.push(m);
        std.push(s);
    }
    let (target_mean, target_std) = if target {
        let (m, s) = moments(train.targets.iter().map(|&t| t as f64), n);
        (Some(m), Some(s))
    } else {
        (None, None)
    };
    let stats = Standardization { mean, std, target_mean, target_std };
    apply(&mut data.train, &stats);
    if let Some(test) = &mut data.test {
        apply(test, &stats);
    }
    stats
}

/// Apply `stats` to one set (its features must number `stats.mean.len()`).
fn apply(set: &mut Dataset, stats: &Standardization) {
    let p = set.p;
    let features: Vec<f32> =
        (0..set.n * p).map(|k| z(set.features.get(k), stats.mean[k % p], stats.std[k % p])).collect();
    set.features = Features::F32(features);
    if let (Some(m), Some(s)) = (stats.target_mean, stats.target_std) {
        for t in &mut set.targets {
            *t = z(*t as f64, m, s);
        }
        set.classes = detect_classes(&mut set.targets);
    }
}
