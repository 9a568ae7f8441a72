//! Order statistics over runs, batches and seeds.

/// The q-quantile (linear interpolation between order statistics) of the finite values; NaN
/// when there are none.
pub fn quantile(mut v: Vec<f64>, q: f64) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

/// The q-quantile where +∞ counts as a value (a diverged run's loss): the order statistics of
/// every non-NaN value, so a quantile that falls among the infinite ones is +∞.
pub fn quantile_with_inf(mut v: Vec<f64>, q: f64) -> f64 {
    v.retain(|x| !x.is_nan());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    if v[hi].is_infinite() {
        return if pos == lo as f64 { v[lo] } else { f64::INFINITY };
    }
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_between_order_statistics() {
        assert_eq!(quantile(vec![3.0, 1.0, f64::NAN, 2.0], 0.5), 2.0);
        assert_eq!(quantile(vec![1.0, 2.0, 3.0, 4.0], 0.25), 1.75);
        assert_eq!(quantile(vec![4.0, 1.0], 0.0), 1.0);
        assert!(quantile(vec![f64::NAN], 0.5).is_nan());
    }

    #[test]
    fn infinity_counts_as_the_largest_value() {
        let inf = f64::INFINITY;
        assert_eq!(quantile_with_inf(vec![1.0, 2.0, inf], 0.5), 2.0);
        assert_eq!(quantile_with_inf(vec![1.0, inf, inf], 0.5), inf);
        assert_eq!(quantile_with_inf(vec![1.0, 3.0, inf, inf], 0.25), 2.5);
        assert_eq!(quantile_with_inf(vec![1.0, 3.0, 5.0, inf, inf], 0.75), inf);
        assert_eq!(quantile_with_inf(vec![1.0, 2.0, 3.0, 4.0, inf], 0.75), 4.0);
    }
}
