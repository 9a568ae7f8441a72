//! Chart axes: a linear or log range fitted to the data, its ticks and tick labels.

use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};

use super::Scale;
use crate::report::table::fmt_num;

/// Share of the data span added on each side, so points do not sit on the frame.
const PAD: f64 = 0.04;
/// A log axis gets a grid line at every 2…9 × 10ⁿ up to this many decades (more is clutter).
const MAX_MINOR_DECADES: usize = 6;
const ONE_TO_NINE: [f64; 9] = [1., 2., 3., 4., 5., 6., 7., 8., 9.];

/// One axis: its scale, its range in data units (finite, `lo < hi`, positive when log) and
/// how many labels it aims for. It implements plotters' [`Ranged`] itself, so linear and log
/// axes are one type (the drawing code is not generic over four coordinate combinations), and
/// it chooses its ticks and labels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Axis {
    pub(super) scale: Scale,
    pub(super) lo: f64,
    pub(super) hi: f64,
    pub(super) labels: usize,
}

/// How labelled ticks are placed.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Plan {
    /// Multiples of a 1-2-5 step.
    Step(f64),
    /// Every `k`-th power of ten.
    Decades(i64),
    /// m·10ⁿ for these mantissas.
    Mantissas(&'static [f64]),
}

impl Axis {
    /// Whether `v` can be drawn on this scale.
    pub(super) fn accepts(scale: Scale, v: f64) -> bool {
        v.is_finite() && (scale == Scale::Linear || v > 0.0)
    }

    /// The axis covering `values` (all accepted by `scale`) with a small margin, aiming for
    /// `labels` labelled ticks.
    pub(super) fn fit(scale: Scale, values: impl Iterator<Item = f64>, labels: usize) -> Axis {
        let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let (lo, hi) = match scale {
            Scale::Linear => fit_linear(lo, hi),
            Scale::Log => fit_log(lo, hi),
        };
        Axis { scale, lo, hi, labels: labels.max(2) }
    }

    /// Where `v` falls between the ends of the axis: 0 at `lo`, 1 at `hi`.
    pub(super) fn unit(&self, v: f64) -> f64 {
        match self.scale {
            Scale::Linear => (v - self.lo) / (self.hi - self.lo),
            Scale::Log => (v.ln() - self.lo.ln()) / (self.hi.ln() - self.lo.ln()),
        }
    }

    /// How to place at most `n` labelled ticks.
    fn plan(&self, n: usize) -> Plan {
        let (lo, hi, n) = (self.lo, self.hi, n.max(1));
        let linear = Plan::Step(nice_step((hi - lo) / n as f64));
        if self.scale == Scale::Linear {
            return linear;
        }
        let decades = decades(lo, hi).len();
        if decades >= 3 {
            return Plan::Decades(decades.div_ceil(n) as i64);
        }
        for ms in [&[1., 2., 5.][..], &ONE_TO_NINE] {
            if (2..=n).contains(&mantissa_ticks(lo, hi, ms).len()) {
                return Plan::Mantissas(ms);
            }
        }
        // Narrower than one mantissa step (a loss near its floor): plain steps read best.
        if decades >= 2 { Plan::Decades(1) } else { linear }
    }

    /// Labelled tick positions, at most about `n`.
    pub(super) fn ticks(&self, n: usize) -> Vec<f64> {
        match self.plan(n) {
            Plan::Step(step) => multiples(self.lo, self.hi, step),
            Plan::Decades(k) => {
                decades(self.lo, self.hi).into_iter().filter(|e| e.rem_euclid(k) == 0).map(pow10).collect()
            }
            Plan::Mantissas(ms) => mantissa_ticks(self.lo, self.hi, ms),
        }
    }

    /// Unlabelled grid positions: halves of the linear step, 1…9 × 10ⁿ on a log axis, at most
    /// `max` (else the labelled ones).
    fn minor_ticks(&self, n_bold: usize, max: usize) -> Vec<f64> {
        let minor = match self.plan(n_bold) {
            Plan::Step(step) => multiples(self.lo, self.hi, step / 2.0),
            Plan::Decades(_) if decades(self.lo, self.hi).len() > MAX_MINOR_DECADES => Vec::new(),
            Plan::Decades(_) | Plan::Mantissas(_) => mantissa_ticks(self.lo, self.hi, &ONE_TO_NINE),
        };
        if !minor.is_empty() && minor.len() <= max { minor } else { self.ticks(n_bold) }
    }

    /// A tick label: `10ⁿ` for powers of ten, the same number of decimals for every label of
    /// a stepped axis (0.316, 0.318, 0.320), compact decimals otherwise; with a true minus
    /// sign (−), which is as wide as a digit, as in typeset plots.
    pub(super) fn label(&self, v: f64) -> String {
        self.plain_label(v).replace('-', "−")
    }

    fn plain_label(&self, v: f64) -> String {
        match self.plan(self.labels) {
            Plan::Decades(_) => {
                let e = v.log10().round();
                if (v.log10() - e).abs() < 1e-9 { format!("10{}", superscript(e as i64)) } else { fmt_num(v, 6) }
            }
            Plan::Step(step) => fixed(v, step, self.lo.abs().max(self.hi.abs())),
            Plan::Mantissas(_) => fmt_num(v, 6),
        }
    }
}

impl Ranged for Axis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        // Only accepted points are drawn; the clamp keeps anything else from saturating.
        let t = self.unit(*value);
        let t = if t.is_finite() { t.clamp(-1.0, 2.0) } else { -1.0 };
        let (a, b) = (f64::from(limit.0), f64::from(limit.1));
        (a + (b - a) * t).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        let (max, bold) = (hint.max_num_points(), hint.bold_points());
        if hint.weight().allow_light_points() && max > bold { self.minor_ticks(bold, max) } else { self.ticks(max) }
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

fn fit_linear(lo: f64, hi: f64) -> (f64, f64) {
    if lo > hi {
        return (0.0, 1.0);
    }
    // Keep the span finite even for values near ±f64::MAX.
    let (lo, hi) = (lo.max(-1e307), hi.min(1e307));
    let pad = if hi > lo {
        (hi - lo) * PAD
    } else if lo == 0.0 {
        1.0
    } else {
        lo.abs() * 0.1
    };
    (lo - pad, hi + pad)
}

fn fit_log(lo: f64, hi: f64) -> (f64, f64) {
    if lo > hi {
        return (1.0, 10.0);
    }
    let (a, b) = (lo.ln(), hi.ln());
    let pad = if b > a { (b - a) * PAD } else { 2f64.ln() };
    let lo = (a - pad).exp().max(f64::MIN_POSITIVE);
    let hi = (b + pad).exp().min(f64::MAX);
    (lo, if hi > lo { hi } else { lo * 10.0 })
}

/// `v` with the decimals that `step` needs, when that is at most 6 and the axis' largest
/// magnitude `max` is below 10⁶; compact form otherwise.
fn fixed(v: f64, step: f64, max: f64) -> String {
    let decimals = (-step.log10().floor()).max(0.0);
    if decimals > 6.0 || max >= 1e6 || !decimals.is_finite() {
        return fmt_num(v, 6);
    }
    let s = format!("{v:.*}", decimals as usize);
    // `-0.0` formats as "-0.0"; a tick at zero should read "0.0".
    if s.trim_start_matches('-').chars().all(|c| c == '0' || c == '.') { s.trim_start_matches('-').into() } else { s }
}

/// The 1-2-5 step closest above `raw` (0 when `raw` is not a positive number).
fn nice_step(raw: f64) -> f64 {
    if !(raw > 0.0 && raw.is_finite()) {
        return 0.0;
    }
    let mag = 10f64.powf(raw.log10().floor());
    let m = match raw / mag {
        r if r <= 1.0 => 1.0,
        r if r <= 2.0 => 2.0,
        r if r <= 5.0 => 5.0,
        _ => 10.0,
    };
    m * mag
}

/// The multiples of `step` in `[lo, hi]`, computed as `k·step` so 0 is exactly 0.
fn multiples(lo: f64, hi: f64, step: f64) -> Vec<f64> {
    if !(step > 0.0 && step.is_finite()) {
        return Vec::new();
    }
    let (k0, k1) = ((lo / step).ceil(), (hi / step).floor());
    if !(k0.is_finite() && k1.is_finite() && k1 - k0 < 1000.0) {
        return Vec::new();
    }
    (k0 as i64..=k1 as i64).map(|k| k as f64 * step).collect()
}

/// Exact 10^e (parsing avoids `powi`'s rounding, so labels and grid lines sit exactly).
fn pow10(e: i64) -> f64 {
    format!("1e{e}").parse().unwrap_or(f64::NAN)
}

/// The exponents `e` with 10^e in `[lo, hi]`.
fn decades(lo: f64, hi: f64) -> Vec<i64> {
    let (e0, e1) = (lo.log10().floor() as i64, hi.log10().ceil() as i64);
    (e0..=e1).filter(|&e| (lo..=hi).contains(&pow10(e))).collect()
}

/// The values m·10^e in `[lo, hi]` for the mantissas `ms`.
fn mantissa_ticks(lo: f64, hi: f64, ms: &[f64]) -> Vec<f64> {
    let (e0, e1) = (lo.log10().floor() as i64, hi.log10().ceil() as i64);
    let all = (e0..=e1).flat_map(|e| ms.iter().map(move |m| m * pow10(e)));
    all.filter(|v| (lo..=hi).contains(v)).collect()
}

/// `n` in Unicode superscript digits (`-12` → `⁻¹²`).
fn superscript(n: i64) -> String {
    const DIGITS: [char; 10] = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];
    let digits = n.unsigned_abs().to_string();
    let digits = digits.chars().filter_map(|c| c.to_digit(10)).map(|d| DIGITS[d as usize]);
    (n < 0).then_some('⁻').into_iter().chain(digits).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn axis(scale: Scale, lo: f64, hi: f64) -> Axis {
        Axis { scale, lo, hi, labels: 8 }
    }

    fn close(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-12 * y.abs().max(1.0))
    }

    fn labels(ax: &Axis) -> Vec<String> {
        ax.ticks(ax.labels).iter().map(|v| ax.label(*v)).collect()
    }

    #[test]
    fn linear_ticks_are_nice_and_labels_uniform() {
        let ax = axis(Scale::Linear, -0.04, 1.04);
        assert!(close(&ax.ticks(8), &[0.0, 0.2, 0.4, 0.6, 0.8, 1.0]), "{:?}", ax.ticks(8));
        assert_eq!(ax.ticks(8)[0].to_bits(), 0f64.to_bits(), "zero is exactly zero");
        assert_eq!(labels(&ax), ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        assert_eq!(labels(&axis(Scale::Linear, -3.0, 12.0)), ["−2", "0", "2", "4", "6", "8", "10", "12"]);
        let big = axis(Scale::Linear, 0.0, 5e6);
        assert_eq!(labels(&big)[1], "1e6");
        let tiny = axis(Scale::Linear, 0.0, 4e-9);
        assert_eq!(labels(&tiny)[1], "5e−10");
    }

    #[test]
    fn log_ticks_by_span() {
        let wide = axis(Scale::Log, 3e-6, 2e3);
        assert!(close(&wide.ticks(8), &[1e-4, 1e-2, 1.0, 100.0]), "{:?}", wide.ticks(8));
        let all: Vec<String> = wide.ticks(20).iter().map(|v| wide.label(*v)).collect();
        assert_eq!(all, ["10⁻⁵", "10⁻⁴", "10⁻³", "10⁻²", "10⁻¹", "10⁰", "10¹", "10²", "10³"]);
        let two = axis(Scale::Log, 0.8, 60.0);
        assert!(close(&two.ticks(8), &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0]), "{:?}", two.ticks(8));
        assert_eq!(labels(&two), ["1", "2", "5", "10", "20", "50"]);
        let narrow = axis(Scale::Log, 0.25, 0.8);
        assert!(close(&narrow.ticks(8), &[0.3, 0.4, 0.5, 0.6, 0.7, 0.8]), "{:?}", narrow.ticks(8));
        let floor = axis(Scale::Log, 0.3145, 0.3237);
        assert_eq!(labels(&floor), ["0.316", "0.318", "0.320", "0.322"]);
    }

    #[test]
    fn minor_grid() {
        let two = axis(Scale::Log, 0.8, 60.0);
        assert_eq!(two.minor_ticks(8, 80).len(), 17, "1…9, 10…50");
        let many = axis(Scale::Log, 1e-9, 1e3);
        assert_eq!(many.minor_ticks(8, 200), many.ticks(8), "no clutter over 12 decades");
        let lin = axis(Scale::Linear, 0.0, 1.0);
        assert_eq!(lin.minor_ticks(8, 80).len(), 11);
    }

    #[test]
    fn crowded_decades_are_thinned() {
        let t = axis(Scale::Log, 1e-20, 1e20).ticks(8);
        assert!(t.len() <= 8 && t.len() >= 4, "{t:?}");
    }

    #[test]
    fn fit_handles_degenerate_data() {
        let empty = Axis::fit(Scale::Linear, std::iter::empty(), 8);
        assert_eq!((empty.lo, empty.hi), (0.0, 1.0));
        let one = Axis::fit(Scale::Linear, [5.0].into_iter(), 8);
        assert!(one.lo < 5.0 && one.hi > 5.0);
        let zero = Axis::fit(Scale::Linear, [0.0].into_iter(), 8);
        assert!(zero.lo < 0.0 && zero.hi > 0.0);
        let log_one = Axis::fit(Scale::Log, [1e-3].into_iter(), 8);
        assert!(log_one.lo > 0.0 && log_one.lo < 1e-3 && log_one.hi > 1e-3);
        let huge = Axis::fit(Scale::Linear, [-f64::MAX, f64::MAX].into_iter(), 8);
        assert!((huge.hi - huge.lo).is_finite() && !huge.ticks(8).is_empty());
        let extreme = Axis::fit(Scale::Log, [f64::MIN_POSITIVE / 4.0, f64::MAX].into_iter(), 8);
        assert!(extreme.lo > 0.0 && extreme.hi.is_finite() && extreme.hi > extreme.lo);
        assert!(!extreme.ticks(8).is_empty());
        assert!(labels(&extreme).iter().all(|l| l.starts_with("10")));
    }

    #[test]
    fn map_never_misbehaves() {
        let ax = axis(Scale::Log, 1.0, 100.0);
        assert_eq!(ax.map(&10.0, (0, 100)), 50);
        assert_eq!(ax.map(&10.0, (100, 0)), 50);
        for v in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e300] {
            let p = ax.map(&v, (0, 100));
            assert!((-100..=200).contains(&p), "{v} -> {p}");
        }
    }

    #[test]
    fn superscripts() {
        assert_eq!(superscript(0), "⁰");
        assert_eq!(superscript(-12), "⁻¹²");
        assert_eq!(superscript(308), "³⁰⁸");
    }
}
