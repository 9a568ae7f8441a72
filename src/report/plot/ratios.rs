//! The suite's picture: for every member (a column, named below the axis) and method (a
//! colour), the median over seeds of the final loss ÷ the tuned constant's (a dot) and the
//! quartiles (a bar), on a log axis with 1 — the tuned constant — marked. A median that is ∞ (the
//! method diverged on most seeds) is a triangle on the top edge; a bar whose upper quartile is
//! ∞ runs to the top edge.

use plotters::coord::Shift;
use plotters::prelude::{Circle, DrawingArea, DrawingBackend, IntoFont, PathElement, Rectangle, Text, TriangleMarker};
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{Color, RGBColor, ShapeStyle, TextStyle, WHITE};

use super::{
    Axis, DESC_PX, DOT, DrawResult, FONT, FRAME, GRID, LEGEND_MARGIN, LEGEND_PX, MARGIN, Scale, TICK_PX, TITLE_PX,
    Y_TICKS, colour,
};

/// Quartiles and median of one method on one member: `[q1, median, q3]` (∞ for divergence).
pub type Spread = [f64; 3];

/// Ratios per method (rows) and member (columns).
#[derive(Debug, Clone, PartialEq)]
pub struct RatioChart {
    pub title: String,
    /// Column names: `dataset:model`, drawn on two lines.
    pub members: Vec<String>,
    pub methods: Vec<String>,
    /// `spreads[method][member]`; `None` where the method did not run on the member.
    pub spreads: Vec<Vec<Option<Spread>>>,
}

impl RatioChart {
    /// The y axis: every finite value and 1, on a log scale.
    fn y_axis(&self) -> Axis {
        let finite = self.spreads.iter().flatten().flatten().flat_map(|s| s.iter().copied());
        let values = finite.filter(|v| Axis::accepts(Scale::Log, *v)).chain([1.0]);
        Axis::fit(Scale::Log, values, Y_TICKS)
    }
}

/// Draws the whole chart on `root`.
pub(super) fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, chart: &RatioChart) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let (w, h) = root.dim_in_pixel();
    let (w, h) = (w as i32, h as i32);
    let y = chart.y_axis();
    let tick = TextStyle::from((FONT, TICK_PX).into_font());
    let legend_w = legend_width(root, chart) as i32;
    let y_labels = y.ticks(Y_TICKS);
    let label_w = y_labels.iter().filter_map(|v| root.estimate_text_size(&y.label(*v), &tick).ok()).map(|s| s.0).max();
    let title_h = (TITLE_PX / 1.24) as i32 + 2 * MARGIN as i32;
    let left = MARGIN as i32 + DESC_PX as i32 + 14 + label_w.unwrap_or(0) as i32 + 10;
    let (right, bottom) = (w - legend_w - 2 * MARGIN as i32, h - MARGIN as i32 - 2 * (TICK_PX as i32 + 6));
    let plot = (left, title_h, right.max(left + 1), bottom.max(title_h + 1));
    let py = |v: f64| plot.3 - ((plot.3 - plot.1) as f64 * y.unit(v)).round() as i32;
    // Grid and y labels.
    for v in y_labels {
        root.draw(&PathElement::new(vec![(plot.0, py(v)), (plot.2, py(v))], GRID))?;
        let style = tick.clone().pos(Pos::new(HPos::Right, VPos::Center));
        root.draw(&Text::new(y.label(v), (plot.0 - 8, py(v)), style))?;
    }
    let desc = TextStyle::from((FONT, DESC_PX).into_font())
        .transform(plotters::style::FontTransform::Rotate270)
        .pos(Pos::new(HPos::Center, VPos::Top));
    root.draw(&Text::new("final loss ÷ tuned constant's", (MARGIN as i32, (plot.1 + plot.3) / 2), desc))?;
    // 1: the tuned constant.
    let one = ShapeStyle { color: FRAME.to_rgba(), filled: false, stroke_width: 2 };
    root.draw(&PathElement::new(vec![(plot.0, py(1.0)), (plot.2, py(1.0))], one))?;
    // Columns: members; within a column the methods side by side.
    let members = chart.members.len().max(1) as i32;
    let column = (plot.2 - plot.0) / members;
    let methods = chart.methods.len().max(1) as i32;
    let step = (column * 4 / 5) / methods;
    for (j, name) in chart.members.iter().enumerate() {
        let x0 = plot.0 + j as i32 * column;
        if j > 0 {
            root.draw(&PathElement::new(vec![(x0, plot.1), (x0, plot.3)], GRID))?;
        }
        let centre = x0 + column / 2;
        for (k, line) in name.split(':').enumerate() {
            let style = tick.clone().pos(Pos::new(HPos::Center, VPos::Top));
            root.draw(&Text::new(line.to_string(), (centre, plot.3 + 6 + k as i32 * (TICK_PX as i32 + 4)), style))?;
        }
        for (m, spreads) in chart.spreads.iter().enumerate() {
            let Some([q1, median, q3]) = spreads.get(j).copied().flatten() else { continue };
            let x = x0 + column / 10 + step * m as i32 + step / 2;
            let c = colour(m);
            let clamp = |v: f64| if v.is_finite() { py(v).clamp(plot.1, plot.3) } else { plot.1 };
            let bar = ShapeStyle { color: c.to_rgba(), filled: false, stroke_width: 2 };
            root.draw(&PathElement::new(vec![(x, clamp(q1)), (x, clamp(q3))], bar))?;
            if median.is_finite() {
                root.draw(&Circle::new((x, clamp(median)), DOT + 1, c.filled()))?;
            } else {
                root.draw(&TriangleMarker::new((x, plot.1 + 6), 7, c.filled()))?;
            }
        }
    }
    root.draw(&Rectangle::new([(plot.0, plot.1), (plot.2, plot.3)], FRAME))?;
    // The title over the plot, shifted (not cut) when it is wider than the plot.
    let title = TextStyle::from((FONT, TITLE_PX).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
    let half = root.estimate_text_size(&chart.title, &title).map_or(0, |s| s.0 as i32 / 2);
    let centre = ((plot.0 + plot.2) / 2).min(w - MARGIN as i32 - half).max(MARGIN as i32 + half);
    root.draw(&Text::new(chart.title.clone(), (centre, MARGIN as i32), title))?;
    draw_legend(root, chart, (plot.2 + MARGIN as i32, plot.1))?;
    root.present()
}

const LEGEND_SWATCH: i32 = 24;
/// What the marks mean, below the methods in the legend.
const KEY: [&str; 3] = ["bar: quartiles over seeds", "▲: median ∞ (diverged)", "line: 1 (tuned constant)"];

fn legend_width<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, chart: &RatioChart) -> u32 {
    let font = TextStyle::from((FONT, LEGEND_PX).into_font());
    let labels = chart.methods.iter().map(String::as_str).chain(KEY);
    let widest = labels.filter_map(|l| root.estimate_text_size(l, &font).ok()).map(|s| s.0).max().unwrap_or(0);
    widest + LEGEND_SWATCH as u32 + 2 * LEGEND_MARGIN
}

fn draw_legend<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &RatioChart,
    at: (i32, i32),
) -> DrawResult<DB> {
    let font = TextStyle::from((FONT, LEGEND_PX).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    let line = (1.25 * LEGEND_PX) as i32;
    let entry = |k: usize| at.1 + LEGEND_MARGIN as i32 + k as i32 * line + line / 2;
    let sx = at.0 + LEGEND_MARGIN as i32;
    for (m, name) in chart.methods.iter().enumerate() {
        let c: RGBColor = colour(m);
        root.draw(&Circle::new((sx + LEGEND_SWATCH / 3, entry(m)), DOT + 1, c.filled()))?;
        root.draw(&Text::new(name.clone(), (sx + LEGEND_SWATCH, entry(m)), font.clone()))?;
    }
    for (k, key) in KEY.iter().enumerate() {
        root.draw(&Text::new(*key, (sx, entry(chart.methods.len() + 1 + k)), font.clone()))?;
    }
    Ok(())
}
