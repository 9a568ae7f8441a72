//! Where the legend goes: inside the plot where it hides no data (matplotlib's "best"), else in a
//! margin right of the plot; and drawing it there.

use plotters::chart::SeriesLabelPosition;
use plotters::coord::Shift;
use plotters::prelude::{Circle, Cross, DrawingArea, DrawingBackend, IntoFont, PathElement, Rectangle, Text};
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{Color, ShapeStyle, TextStyle, WHITE};

use super::axis::Axis;
use super::{
    Chart, Ctx, DOT, DrawResult, FONT, GRID, LEGEND_MARGIN, LEGEND_PX, LEGEND_SWATCH, MARGIN, SWATCH, Style, band_fill,
    colour, runs,
};

/// The legend's size in pixels (widest label, swatch, margins; lines 1.25 sizes apart), when
/// there are two or more entries.
pub(super) fn legend_size<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, chart: &Chart) -> Option<(f64, f64)> {
    let labels: Vec<&str> = chart
        .series
        .iter()
        .map(|s| s.label.as_str())
        .chain(chart.bands.iter().map(|b| b.label.as_str()))
        .filter(|l| !l.is_empty())
        .collect();
    if labels.len() < 2 {
        return None;
    }
    let font = TextStyle::from((FONT, LEGEND_PX).into_font());
    let text_w = labels.iter().filter_map(|l| root.estimate_text_size(l, &font).ok()).map(|s| s.0).max();
    let w = f64::from(text_w.unwrap_or(0) + LEGEND_SWATCH + 2 * LEGEND_MARGIN);
    let lines = labels.len() as f64;
    Some((w, (lines - 1.0) * 1.25 * LEGEND_PX + LEGEND_PX / 1.24 + f64::from(2 * LEGEND_MARGIN)))
}

/// Where the legend goes.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Placement {
    /// Inside the plot, where it hides no data.
    Inside(SeriesLabelPosition),
    /// Every place inside would hide data: right of the plot, in a margin made for it.
    Outside,
}

/// The legend inside the plot, at `position`.
pub(super) fn draw_legend<'a, DB: DrawingBackend + 'a>(
    ctx: &mut Ctx<'a, DB>,
    position: SeriesLabelPosition,
) -> DrawResult<DB> {
    ctx.configure_series_labels()
        .position(position)
        .margin(LEGEND_MARGIN)
        .legend_area_size(LEGEND_SWATCH)
        .label_font((FONT, LEGEND_PX))
        .background_style(WHITE.mix(0.9))
        .border_style(GRID)
        .draw()
}

/// The legend right of the plot, top-aligned with it, in the margin `draw` made for it (drawn
/// on the root: plotters clips its own legend to the plot).
pub(super) fn draw_outside_legend<'a, DB: DrawingBackend + 'a>(
    root: &DrawingArea<DB, Shift>,
    ctx: &Ctx<'a, DB>,
    chart: &Chart,
    size: (f64, f64),
) -> DrawResult<DB> {
    let (xs, ys) = ctx.plotting_area().get_pixel_range();
    let (x0, y0) = (xs.end + MARGIN as i32, ys.start);
    let corner = (x0 + size.0 as i32, y0 + size.1 as i32);
    root.draw(&Rectangle::new([(x0, y0), corner], WHITE.filled()))?;
    root.draw(&Rectangle::new([(x0, y0), corner], GRID))?;
    let font = TextStyle::from((FONT, LEGEND_PX).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    let series = chart.series.iter().enumerate().filter(|(_, s)| !s.label.is_empty());
    let bands = chart.bands.iter().enumerate().filter(|(_, b)| !b.label.is_empty());
    let entries = series
        .map(|(i, s)| (s.label.as_str(), Some(s.style), colour(i)))
        .chain(bands.map(|(i, b)| (b.label.as_str(), None, colour(i))));
    let sx = x0 + LEGEND_MARGIN as i32;
    for (k, (label, style, c)) in entries.enumerate() {
        let cy = y0 + LEGEND_MARGIN as i32 + (k as f64 * 1.25 * LEGEND_PX + LEGEND_PX / 2.0) as i32;
        let line = ShapeStyle { color: c.to_rgba(), filled: false, stroke_width: 2 };
        let thin = ShapeStyle { stroke_width: 1, ..line };
        match style {
            Some(Style::Line) => root.draw(&PathElement::new(vec![(sx, cy), (sx + SWATCH, cy)], line))?,
            Some(Style::Points) => root.draw(&Cross::new((sx + SWATCH / 2, cy), 4, thin))?,
            Some(Style::LinePoints) => {
                root.draw(&PathElement::new(vec![(sx, cy), (sx + SWATCH, cy)], line))?;
                root.draw(&Circle::new((sx + SWATCH / 2, cy), DOT, c.filled()))?;
            }
            None => root.draw(&Rectangle::new([(sx, cy - 7), (sx + SWATCH, cy + 7)], band_fill(c)))?,
        }
        root.draw(&Text::new(label, (sx + LEGEND_SWATCH as i32, cy), font.clone()))?;
    }
    Ok(())
}

/// Inside where a legend of `size` pixels covers no `samples` (unit coordinates, y up) of a
/// plot of `plot` pixels, else outside.
pub(super) fn legend_place(samples: &[(f64, f64)], plot: (f64, f64), size: (f64, f64)) -> Placement {
    let (place, hidden) = legend_position(samples, plot, size);
    if hidden == 0 { Placement::Inside(place) } else { Placement::Outside }
}

/// Where a legend of `size` pixels covers the fewest `samples` (unit coordinates, y up) in a
/// plot of `plot` pixels, and how many it covers there; ties go to the earlier place in
/// matplotlib's order for "best".
fn legend_position(samples: &[(f64, f64)], plot: (f64, f64), size: (f64, f64)) -> (SeriesLabelPosition, usize) {
    use SeriesLabelPosition::*;
    // (place, horizontal and vertical alignment: 0 = left/top, 1 = centre, 2 = right/bottom)
    let places = [
        (UpperRight, 2, 0),
        (UpperLeft, 0, 0),
        (LowerLeft, 0, 2),
        (LowerRight, 2, 2),
        (MiddleRight, 2, 1),
        (MiddleLeft, 0, 1),
        (LowerMiddle, 1, 2),
        (UpperMiddle, 1, 0),
        (MiddleMiddle, 1, 1),
    ];
    // plotters keeps a 5-pixel gap to the plot's edges.
    let start = |align: u8, extent: f64, len: f64| match align {
        0 => 5.0,
        1 => (extent - len) / 2.0,
        _ => extent - len - 5.0,
    };
    let hits = |h: u8, v: u8| {
        let (left, top) = (start(h, plot.0, size.0), start(v, plot.1, size.1));
        let (u0, u1) = (left / plot.0, (left + size.0) / plot.0);
        let (v0, v1) = (1.0 - (top + size.1) / plot.1, 1.0 - top / plot.1);
        samples.iter().filter(|(u, v)| (u0..=u1).contains(u) && (v0..=v1).contains(v)).count()
    };
    let counts: Vec<usize> = places.iter().map(|(_, h, v)| hits(*h, *v)).collect();
    let best = (0..places.len()).min_by_key(|&i| counts[i]).unwrap_or(0);
    (places[best].0.clone(), counts[best])
}

/// Data positions in unit plot coordinates (y up). Lines and band edges are also sampled
/// between their points, so a legend does not land on a long segment between two of them.
pub(super) fn samples(chart: &Chart, x: &Axis, y: &Axis) -> Vec<(f64, f64)> {
    let unit = |run: Vec<(f64, f64)>| run.into_iter().map(|(a, b)| (x.unit(a), y.unit(b))).collect::<Vec<_>>();
    let mut out = Vec::new();
    for s in &chart.series {
        let joined = s.style != Style::Points;
        runs(&s.points, x, y).into_iter().for_each(|r| push_samples(&mut out, &unit(r), joined));
    }
    for b in &chart.bands {
        for r in runs(&b.lower, x, y).into_iter().chain(runs(&b.upper, x, y)) {
            push_samples(&mut out, &unit(r), true);
        }
    }
    out
}

/// The points of `curve`, and when `joined` 8 more along each segment (dense curves are
/// their own samples).
fn push_samples(out: &mut Vec<(f64, f64)>, curve: &[(f64, f64)], joined: bool) {
    out.extend_from_slice(curve);
    if !joined || curve.len() > 2000 {
        return;
    }
    for w in curve.windows(2) {
        let ((a0, b0), (a1, b1)) = (w[0], w[1]);
        out.extend((1..8).map(|k| {
            let t = f64::from(k) / 8.0;
            (a0 + (a1 - a0) * t, b0 + (b1 - b0) * t)
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::plot::{Series, fit_axes, render_png};

    #[test]
    fn legend_avoids_the_data() {
        let place = |chart: &Chart| {
            let (x, y) = fit_axes(chart);
            legend_position(&samples(chart, &x, &y), (800.0, 500.0), (240.0, 90.0)).0
        };
        // A loss curve falling from the upper left: the upper right is free.
        let falling = Chart::new("", "", "")
            .with_series(Series::line("a", vec![(0.0, 1.0), (1.0, 0.1), (10.0, 0.0)]))
            .with_series(Series::line("b", vec![(0.0, 0.9), (10.0, 0.05)]));
        assert_eq!(place(&falling), SeriesLabelPosition::UpperRight);
        // A rising diagonal: the upper left.
        let rising = Chart::new("", "", "").with_series(Series::line("a", vec![(0.0, 0.0), (1.0, 1.0)]));
        assert_eq!(place(&rising), SeriesLabelPosition::UpperLeft);
        // A horizontal line along the top and one along the bottom: the middle right.
        let both = Chart::new("", "", "")
            .with_series(Series::line("top", vec![(0.0, 1.0), (1.0, 1.0)]))
            .with_series(Series::line("bottom", vec![(0.0, 0.0), (1.0, 0.0)]));
        assert_eq!(place(&both), SeriesLabelPosition::MiddleRight);
        // Scattered points are not joined: the gap between two crosses is free.
        let scatter = Chart::new("", "", "").with_series(Series::points("a", vec![(0.0, 0.0), (1.0, 1.0)]));
        let (x, y) = fit_axes(&scatter);
        assert_eq!(samples(&scatter, &x, &y).len(), 2);
    }

    /// Curves filling the whole plot (compare's many methods): no place inside is free, so
    /// the legend goes outside instead of over the data.
    #[test]
    fn a_legend_with_no_free_place_goes_outside() {
        let mut full = Chart::new("", "", "");
        for k in 0..12 {
            let level = k as f64 / 11.0;
            full = full.with_series(Series::line(format!("m{k}"), (0..=20).map(|i| (i as f64, level)).collect()));
        }
        let (x, y) = fit_axes(&full);
        assert_eq!(legend_place(&samples(&full, &x, &y), (800.0, 500.0), (240.0, 90.0)), Placement::Outside);
        let falling = Chart::new("", "", "")
            .with_series(Series::line("a", vec![(0.0, 1.0), (1.0, 0.1), (10.0, 0.0)]))
            .with_series(Series::line("b", vec![(0.0, 0.9), (10.0, 0.05)]));
        let (x, y) = fit_axes(&falling);
        assert_eq!(
            legend_place(&samples(&falling, &x, &y), (800.0, 500.0), (240.0, 90.0)),
            Placement::Inside(SeriesLabelPosition::UpperRight)
        );
        assert!(!render_png(&full).unwrap().is_empty());
    }
}
