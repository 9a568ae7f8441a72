//! PNG and SVG charts with plotters, declared as data: a [`Chart`] holds [`Series`] (lines,
//! crosses, or both) and shaded [`Band`]s; [`save`] writes it atomically.
//!
//! ```no_run
//! use steplens::report::plot::{save, Band, Chart, Series};
//! let losses: Vec<(f64, f64)> = (1..=6).map(|e| (e as f64, 1.0 / e as f64)).collect();
//! let chart = Chart::new("Training loss", "epoch", "loss")
//!     .log_y()
//!     .with_series(Series::line_points("constant 0.005", losses))
//!     .with_band(Band::new("quartiles", vec![(1.0, 0.5), (6.0, 0.1)], vec![(1.0, 2.0), (6.0, 0.3)]));
//! save(&chart, Some("loss.png".as_ref()), Some("loss.svg".as_ref()))?;
//! # Ok::<(), steplens::Error>(())
//! ```
//!
//! Drawing never fails on data: non-finite points are skipped, so are non-positive values on a
//! log axis (silently: a loss of exactly 0 is not an error), and a chart with nothing left to
//! draw still renders its frame and title. Text uses DejaVu Sans, embedded in the binary
//! because plotters is built without system-font lookup and CI machines may have no fonts.

mod axis;
mod legend;
mod ratios;
mod text;

pub use ratios::{RatioChart, Spread};

use std::path::Path;

use plotters::backend::RGBPixel;
use plotters::chart::ChartContext;
use plotters::coord::Shift;
use plotters::drawing::IntoDrawingArea;
use plotters::prelude::{
    BitMapBackend, Cartesian2d, ChartBuilder, Circle, Cross, DrawingArea, DrawingAreaErrorKind, DrawingBackend,
    EmptyElement, IntoFont, LineSeries, PathElement, Polygon, Rectangle, SVGBackend, Text,
};
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{Color, RGBColor, ShapeStyle, TextStyle, WHITE};

use self::axis::Axis;
use self::legend::{Placement, draw_legend, draw_outside_legend, legend_place, legend_size, samples};
use self::text::{FAMILY as FONT, Typeset};
use crate::report::files::write_atomic;
use crate::{Error, Result};

/// Pixel size of PNG charts (and the SVG canvas).
pub const SIZE: (u32, u32) = (1000, 700);

/// How values map onto an axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scale {
    #[default]
    Linear,
    /// Base-10 logarithmic; values ≤ 0 are not drawn.
    Log,
}

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Style {
    /// A line through the points (broken where a point is skipped).
    #[default]
    Line,
    /// A small cross at each point, like matplotlib's `'x'` marker.
    Points,
    /// A line with a dot at each point.
    LinePoints,
}

/// A named set of `(x, y)` points.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Series {
    /// The legend entry; an empty label has none.
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub style: Style,
}

impl Series {
    /// A line series.
    pub fn line(label: impl Into<String>, points: Vec<(f64, f64)>) -> Series {
        Series { label: label.into(), points, style: Style::Line }
    }

    /// A scatter of crosses.
    pub fn points(label: impl Into<String>, points: Vec<(f64, f64)>) -> Series {
        Series { label: label.into(), points, style: Style::Points }
    }

    /// A line with a dot at each point (for few points, e.g. one per epoch).
    pub fn line_points(label: impl Into<String>, points: Vec<(f64, f64)>) -> Series {
        Series { label: label.into(), points, style: Style::LinePoints }
    }
}

/// A shaded area between two curves, e.g. the quartiles around a median. Band `i` takes the
/// colour of series `i`, so a band and the series it surrounds belong at the same index.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Band {
    /// The legend entry; an empty label has none.
    pub label: String,
    pub lower: Vec<(f64, f64)>,
    pub upper: Vec<(f64, f64)>,
}

impl Band {
    /// A band between the curves `lower` and `upper` (each in increasing x).
    pub fn new(label: impl Into<String>, lower: Vec<(f64, f64)>, upper: Vec<(f64, f64)>) -> Band {
        Band { label: label.into(), lower, upper }
    }
}

/// A 2-D chart. Labels are plain Unicode (`"Π_q(∇f_i)"`): the embedded font covers Greek and
/// mathematical symbols, and there is no TeX.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x_scale: Scale,
    pub y_scale: Scale,
    pub series: Vec<Series>,
    pub bands: Vec<Band>,
}

impl Chart {
    /// An empty chart with linear axes.
    pub fn new(title: impl Into<String>, x_label: impl Into<String>, y_label: impl Into<String>) -> Chart {
        Chart { title: title.into(), x_label: x_label.into(), y_label: y_label.into(), ..Chart::default() }
    }

    /// Makes the x axis logarithmic.
    pub fn log_x(mut self) -> Chart {
        self.x_scale = Scale::Log;
        self
    }

    /// Makes the y axis logarithmic.
    pub fn log_y(mut self) -> Chart {
        self.y_scale = Scale::Log;
        self
    }

    /// Adds a series.
    pub fn with_series(mut self, series: Series) -> Chart {
        self.series.push(series);
        self
    }

    /// Adds a band.
    pub fn with_band(mut self, band: Band) -> Chart {
        self.bands.push(band);
        self
    }
}

/// Something drawn on a canvas of [`SIZE`]: a [`Chart`], or the suite's [`RatioChart`].
pub trait Picture {
    fn title(&self) -> &str;
    fn draw_on<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB>;
}

impl Picture for Chart {
    fn title(&self) -> &str {
        &self.title
    }

    fn draw_on<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        draw(root, self)
    }
}

impl Picture for RatioChart {
    fn title(&self) -> &str {
        &self.title
    }

    fn draw_on<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        ratios::draw(root, self)
    }
}

/// Writes `chart` as PNG and/or SVG, each atomically.
pub fn save(chart: &impl Picture, png: Option<&Path>, svg: Option<&Path>) -> Result<()> {
    if let Some(path) = png {
        write_atomic(path, &render_png(chart)?)?;
    }
    if let Some(path) = svg {
        write_atomic(path, render_svg(chart)?.as_bytes())?;
    }
    Ok(())
}

/// The chart as an SVG document.
pub fn render_svg(chart: &impl Picture) -> Result<String> {
    let font = text::font()?;
    let mut svg = String::new();
    {
        let inner = SVGBackend::with_string(&mut svg, SIZE);
        let root = Typeset { inner, raster: false, font }.into_drawing_area();
        chart.draw_on(&root).map_err(|e| draw_error(chart, e))?;
    }
    Ok(svg)
}

/// The chart as a PNG file's bytes (8-bit RGB, [`SIZE`]).
pub fn render_png(chart: &impl Picture) -> Result<Vec<u8>> {
    let font = text::font()?;
    let (w, h) = SIZE;
    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    {
        let inner =
            BitMapBackend::<RGBPixel>::with_buffer_and_format(&mut rgb, SIZE).map_err(|e| draw_error(chart, e))?;
        let root = Typeset { inner, raster: true, font }.into_drawing_area();
        chart.draw_on(&root).map_err(|e| draw_error(chart, e))?;
    }
    encode_png(&rgb, w, h)
        .map_err(|e| Error::Runtime(format!("cannot encode the chart {:?} as PNG: {e}", chart.title())))
}

fn draw_error(chart: &impl Picture, e: impl std::fmt::Display) -> Error {
    Error::Runtime(format!("cannot draw the chart {:?}: {e}", chart.title()))
}

fn encode_png(rgb: &[u8], w: u32, h: u32) -> std::result::Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(out)
}

// ---- Sizes and colours --------------------------------------------------------------------

// Text sizes in plotters' unit (1.24 × the em size in pixels).
const TITLE_PX: f64 = 30.0;
const DESC_PX: f64 = 23.0;
const TICK_PX: f64 = 19.0;
const LEGEND_PX: f64 = 19.0;
const X_TICKS: usize = 9;
const Y_TICKS: usize = 8;
const MARGIN: u32 = 16;
const LEGEND_MARGIN: u32 = 12;
/// Width of the legend's sample area, and of the swatch drawn in it (the rest is a gap).
const LEGEND_SWATCH: u32 = 36;
const SWATCH: i32 = 26;
/// Radius of the dots of `Style::LinePoints`.
const DOT: u32 = 4;
const GRID: RGBColor = RGBColor(222, 222, 222);
const GRID_MINOR: RGBColor = RGBColor(241, 241, 241);
const FRAME: RGBColor = RGBColor(64, 64, 64);

/// matplotlib's "tab10" palette (distinct, colour-blind-friendlier than pure hues), then black and navy.
const PALETTE: [RGBColor; 12] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(0, 0, 0),
    RGBColor(0, 0, 139),
];

fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

// ---- Drawing ------------------------------------------------------------------------------

type Ctx<'a, DB> = ChartContext<'a, DB, Cartesian2d<Axis, Axis>>;
pub type DrawResult<DB> = std::result::Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// Draws the whole chart on `root`.
fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, chart: &Chart) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let (x, y) = fit_axes(chart);
    let y_area = y_label_area(root, &y, !chart.y_label.is_empty());
    let x_area = TICK_PX as u32 + 18 + if chart.x_label.is_empty() { 0 } else { DESC_PX as u32 + 12 };
    let title_h = if chart.title.is_empty() { 0 } else { (TITLE_PX / 1.24) as u32 + 16 };
    // Where the legend goes: inside where it hides no data, else outside, right of the plot.
    let legend = legend_size(root, chart);
    let (rw, rh) = root.dim_in_pixel();
    let inside_plot = (
        f64::from(rw.saturating_sub(3 * MARGIN + y_area).max(1)),
        f64::from(rh.saturating_sub(2 * MARGIN + title_h + x_area).max(1)),
    );
    let placement = legend.map(|size| legend_place(&samples(chart, &x, &y), inside_plot, size));
    let outside = match (legend, &placement) {
        (Some((w, _)), Some(Placement::Outside)) => w as u32 + MARGIN,
        _ => 0,
    };
    let mut ctx = ChartBuilder::on(root)
        .margin(MARGIN)
        .margin_top(MARGIN + title_h)
        .margin_right(2 * MARGIN + outside)
        .x_label_area_size(x_area)
        .y_label_area_size(y_area)
        .build_cartesian_2d(x, y)?;
    draw_mesh(&mut ctx, chart, &x, &y)?;
    // Bands first so lines stay on top; their legend entries follow the series'.
    for (i, band) in chart.bands.iter().enumerate() {
        draw_band(&mut ctx, band, colour(i), &x, &y)?;
    }
    for (i, series) in chart.series.iter().enumerate() {
        draw_series(&mut ctx, series, colour(i), &x, &y)?;
    }
    for (i, band) in chart.bands.iter().enumerate() {
        band_legend(&mut ctx, band, colour(i))?;
    }
    draw_frame(&ctx)?;
    draw_title(root, &ctx, &chart.title)?;
    match (placement, legend) {
        (Some(Placement::Inside(place)), _) => draw_legend(&mut ctx, place)?,
        (Some(Placement::Outside), Some(size)) => draw_outside_legend(root, &ctx, chart, size)?,
        _ => {}
    }
    root.present()
}

/// The title, centred over the plot (not the image) as matplotlib does.
fn draw_title<'a, DB: DrawingBackend + 'a>(
    root: &DrawingArea<DB, Shift>,
    ctx: &Ctx<'a, DB>,
    title: &str,
) -> DrawResult<DB> {
    if title.is_empty() {
        return Ok(());
    }
    let (xs, _) = ctx.plotting_area().get_pixel_range();
    let centre = (xs.start + xs.end) / 2;
    let style = TextStyle::from((FONT, TITLE_PX).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
    root.draw(&Text::new(title, (centre, MARGIN as i32), style))
}

/// Both axes, fitted to the points that both axes accept.
fn fit_axes(chart: &Chart) -> (Axis, Axis) {
    let pts: Vec<(f64, f64)> = all_points(chart).filter(|&p| accepted(chart, p)).collect();
    let x = Axis::fit(chart.x_scale, pts.iter().map(|p| p.0), X_TICKS);
    (x, Axis::fit(chart.y_scale, pts.iter().map(|p| p.1), Y_TICKS))
}

fn all_points(chart: &Chart) -> impl Iterator<Item = (f64, f64)> + '_ {
    let series = chart.series.iter().flat_map(|s| s.points.iter());
    let bands = chart.bands.iter().flat_map(|b| b.lower.iter().chain(&b.upper));
    series.chain(bands).copied()
}

fn accepted(chart: &Chart, (x, y): (f64, f64)) -> bool {
    Axis::accepts(chart.x_scale, x) && Axis::accepts(chart.y_scale, y)
}

/// Width of the y label area: the widest tick label, the tick marks and the rotated title.
fn y_label_area<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, y: &Axis, has_desc: bool) -> u32 {
    let font = TextStyle::from((FONT, TICK_PX).into_font());
    let widest = y
        .ticks(Y_TICKS)
        .iter()
        .filter_map(|v| root.estimate_text_size(&y.label(*v), &font).ok())
        .map(|(w, _)| w)
        .max()
        .unwrap_or(0);
    widest + 20 + if has_desc { DESC_PX as u32 + 14 } else { 0 }
}

fn draw_mesh<'a, DB: DrawingBackend + 'a>(ctx: &mut Ctx<'a, DB>, chart: &Chart, x: &Axis, y: &Axis) -> DrawResult<DB> {
    let x_fmt = |v: &f64| x.label(*v);
    let y_fmt = |v: &f64| y.label(*v);
    let mut mesh = ctx.configure_mesh();
    mesh.x_labels(X_TICKS)
        .y_labels(Y_TICKS)
        .max_light_lines(10)
        .bold_line_style(GRID)
        .light_line_style(GRID_MINOR)
        .axis_style(FRAME)
        .label_style((FONT, TICK_PX))
        .axis_desc_style((FONT, DESC_PX))
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt);
    if !chart.x_label.is_empty() {
        mesh.x_desc(chart.x_label.as_str());
    }
    if !chart.y_label.is_empty() {
        mesh.y_desc(chart.y_label.as_str());
    }
    mesh.draw()
}

/// A closed outline of a band: the lower curve forward, the upper one back.
fn draw_band<'a, DB: DrawingBackend + 'a>(
    ctx: &mut Ctx<'a, DB>,
    band: &Band,
    c: RGBColor,
    x: &Axis,
    y: &Axis,
) -> DrawResult<DB> {
    let ok = |p: &&(f64, f64)| Axis::accepts(x.scale, p.0) && Axis::accepts(y.scale, p.1);
    let outline: Vec<(f64, f64)> =
        band.lower.iter().filter(ok).chain(band.upper.iter().rev().filter(ok)).copied().collect();
    ctx.draw_series((outline.len() >= 3).then(|| Polygon::new(outline, band_fill(c))))?;
    Ok(())
}

fn band_fill(c: RGBColor) -> ShapeStyle {
    c.mix(0.2).filled()
}

/// A band's legend entry: an empty series carrying a swatch of its fill.
fn band_legend<'a, DB: DrawingBackend + 'a>(ctx: &mut Ctx<'a, DB>, band: &Band, c: RGBColor) -> DrawResult<DB> {
    if !band.label.is_empty() {
        let fill = band_fill(c);
        ctx.draw_series(std::iter::empty::<PathElement<(f64, f64)>>())?
            .label(band.label.as_str())
            .legend(move |(px, py)| Rectangle::new([(px, py - 7), (px + SWATCH, py + 7)], fill));
    }
    Ok(())
}

/// The runs of consecutive drawable points: a skipped point breaks the line, as in matplotlib.
fn runs(points: &[(f64, f64)], x: &Axis, y: &Axis) -> Vec<Vec<(f64, f64)>> {
    let ok = |p: &(f64, f64)| Axis::accepts(x.scale, p.0) && Axis::accepts(y.scale, p.1);
    points.split(|p| !ok(p)).filter(|r| !r.is_empty()).map(<[_]>::to_vec).collect()
}

fn draw_series<'a, DB: DrawingBackend + 'a>(
    ctx: &mut Ctx<'a, DB>,
    s: &Series,
    c: RGBColor,
    x: &Axis,
    y: &Axis,
) -> DrawResult<DB> {
    let line = ShapeStyle { color: c.to_rgba(), filled: false, stroke_width: 2 };
    let thin = ShapeStyle { stroke_width: 1, ..line };
    let dot = c.filled();
    let runs = runs(&s.points, x, y);
    if s.style != Style::Points {
        for run in &runs {
            ctx.draw_series(LineSeries::new(run.iter().copied(), line))?;
        }
    }
    let pts = runs.iter().flatten().copied();
    match s.style {
        Style::Line => {}
        Style::Points => {
            ctx.draw_series(pts.map(|p| Cross::new(p, 4, thin)))?;
        }
        Style::LinePoints => {
            ctx.draw_series(pts.map(|p| Circle::new(p, DOT, dot)))?;
        }
    }
    if s.label.is_empty() {
        return Ok(());
    }
    // An empty series carries the legend entry, so it exists even with nothing to draw.
    let anno = ctx.draw_series(std::iter::empty::<PathElement<(f64, f64)>>())?;
    let label = anno.label(s.label.as_str());
    match s.style {
        Style::Line => label.legend(move |(px, py)| PathElement::new([(px, py), (px + SWATCH, py)], line)),
        Style::Points => label.legend(move |(px, py)| Cross::new((px + SWATCH / 2, py), 4, thin)),
        Style::LinePoints => label.legend(move |(px, py)| {
            EmptyElement::at((px, py))
                + PathElement::new([(0, 0), (SWATCH, 0)], line)
                + Circle::new((SWATCH / 2, 0), DOT, dot)
        }),
    };
    Ok(())
}

/// A full box around the plot (plotters draws only the left and bottom axes).
fn draw_frame<'a, DB: DrawingBackend + 'a>(ctx: &Ctx<'a, DB>) -> DrawResult<DB> {
    let area = ctx.plotting_area().strip_coord_spec();
    let (w, h) = area.dim_in_pixel();
    let (w, h) = (i32::try_from(w).unwrap_or(i32::MAX), i32::try_from(h).unwrap_or(i32::MAX));
    area.draw(&Rectangle::new([(0, 0), (w - 1, h - 1)], FRAME))
}
