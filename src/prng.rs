//! The counter-based random numbers of steplens, the twin of `shaders/shared/prng.wgsl`.
//!
//! Every random number is a pure function of (seed, stream, a, b, index): no state, so the GPU
//! and the CPU reference draw the same perturbations in any order and any chunking. The hash is
//! PCG's output permutation applied in a chain (Jarzynski & Olano, "Hash Functions for GPU
//! Rendering", 2020), one link per counter word.

/// Streams keep independent uses of one seed apart.
pub mod stream {
    pub const INIT: u32 = 1;
    pub const SHUFFLE: u32 = 2;
    /// Perturbations whose gradients give q (the SVD set).
    pub const PERTURB_SVD: u32 = 3;
    /// Fresh perturbations for the projection picture.
    pub const PERTURB_PROJECT: u32 = 4;
    pub const SAMPLE_BATCHES: u32 = 5;
    /// The start vectors of the schedule's Hessian subspace iteration.
    pub const HESSIAN_START: u32 = 6;
}

#[inline]
pub fn pcg_hash(v: u32) -> u32 {
    let state = v.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277_803_737);
    (word >> 22) ^ word
}

/// The counter (seed, stream, a, b) hashed once: the words of its indices then cost one link
/// each ([`Counter::hash`]), where the host draws many indices of one (batch, point).
#[derive(Debug, Clone, Copy)]
pub struct Counter(u32);

impl Counter {
    #[inline]
    pub fn new(seed: u64, stream: u32, a: u32, b: u32) -> Counter {
        let mut h = pcg_hash(seed as u32);
        h = pcg_hash(h ^ (seed >> 32) as u32);
        h = pcg_hash(h ^ stream);
        h = pcg_hash(h ^ a);
        Counter(pcg_hash(h ^ b))
    }

    #[inline]
    pub fn hash(self, index: u32) -> u32 {
        pcg_hash(self.0 ^ index)
    }

    /// Uniform in [0, 1) with 24 random bits: exactly representable in f32, identical on the GPU.
    #[inline]
    pub fn uniform(self, index: u32) -> f32 {
        (self.hash(index) >> 8) as f32 * (1.0 / 16_777_216.0)
    }

    /// Standard normal by Box–Muller from the uniforms of indices 2·index and 2·index + 1.
    /// The GPU's `log`/`cos` differ from Rust's in the last bits: equal within f32 tolerance.
    pub fn normal(self, index: u32) -> f32 {
        let u1 = 1.0 - self.uniform(index.wrapping_mul(2)); // (0, 1]
        let u2 = self.uniform(index.wrapping_mul(2).wrapping_add(1));
        (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
    }
}

/// The random word for the counter (seed, stream, a, b, index).
#[inline]
pub fn hash(seed: u64, stream: u32, a: u32, b: u32, index: u32) -> u32 {
    Counter::new(seed, stream, a, b).hash(index)
}

/// Uniform in [0, 1) with 24 random bits: exactly representable in f32, identical on the GPU.
#[inline]
pub fn uniform(seed: u64, stream: u32, a: u32, b: u32, index: u32) -> f32 {
    Counter::new(seed, stream, a, b).uniform(index)
}

/// Standard normal by Box–Muller from two uniforms of the counters (…, 2·index) and (…, 2·index+1).
pub fn normal(seed: u64, stream: u32, a: u32, b: u32, index: u32) -> f32 {
    Counter::new(seed, stream, a, b).normal(index)
}

/// A permutation of 0..n (Fisher–Yates driven by the counter stream `(seed, SHUFFLE, epoch, 0, i)`).
pub fn permutation(n: usize, seed: u64, epoch: u32) -> Vec<u32> {
    let mut p: Vec<u32> = (0..n as u32).collect();
    for i in (1..n).rev() {
        let r = hash(seed, stream::SHUFFLE, epoch, 0, i as u32) as u64;
        // Lemire's multiply-shift maps the word onto 0..=i without a modulo bias worth noting.
        let j = ((r * (i as u64 + 1)) >> 32) as usize;
        p.swap(i, j);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_in_unit_interval_and_varied() {
        let xs: Vec<f32> = (0..10_000).map(|i| uniform(7, 3, 1, 2, i)).collect();
        assert!(xs.iter().all(|&x| (0.0..1.0).contains(&x)));
        let mean = xs.iter().sum::<f32>() / xs.len() as f32;
        assert!((mean - 0.5).abs() < 0.01, "mean {mean}");
    }

    #[test]
    fn normal_has_unit_variance() {
        let xs: Vec<f64> = (0..20_000).map(|i| normal(1, 3, 0, 0, i) as f64).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(mean.abs() < 0.03 && (var - 1.0).abs() < 0.05, "{mean} {var}");
    }

    #[test]
    fn permutation_is_a_permutation() {
        let mut p = permutation(1000, 3, 0);
        assert_ne!(p, (0..1000).collect::<Vec<u32>>());
        p.sort();
        assert_eq!(p, (0..1000).collect::<Vec<u32>>());
    }
}
