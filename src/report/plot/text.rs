//! Chart text: the embedded font and a backend adapter that typesets with it.
//!
//! plotters 0.3.7 draws ab_glyph text without each glyph's left side bearing (letters sit
//! unevenly: "MNIS T") and centres lines on half the nominal size (labels float above their
//! ticks). [`Typeset`] wraps a backend, draws bitmap text itself with ab_glyph, and measures
//! text the same way for every output, so layout (label areas, legend boxes) agrees with
//! what is drawn. SVG text is still written as `<text>` for the viewer to render.

use std::sync::OnceLock;

use ab_glyph::{Font, FontRef, PxScale, ScaleFont, point};
use plotters::style::{FontStyle, register_font};
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind};

use crate::{Error, Result};

/// The family name plotters asks for; the embedded font is registered under it.
pub(super) const FAMILY: &str = "sans-serif";
const FONT_BYTES: &[u8] = include_bytes!("../../../assets/DejaVuSans.ttf");

/// plotters' text sizes are 1.24 × the em size (its SVG backend writes `size / 1.24`).
const SIZE_PER_EM: f32 = 1.24;
/// The baseline's depth in a one-em line box. plotters sizes boxes as one em; this depth
/// puts the middle of digits and capitals (cap height 0.73 em in DejaVu Sans) at the box's
/// middle, so labels centre on their ticks and sit evenly in legend rows.
const BASELINE_EM: f32 = 0.865;

/// The parsed embedded font, after registering it with plotters once per process.
pub(super) fn font() -> Result<&'static FontRef<'static>> {
    static FONT: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    FONT.get_or_init(|| {
        // plotters needs it for any text path this adapter does not intercept.
        register_font(FAMILY, FontStyle::Normal, FONT_BYTES).ok()?;
        FontRef::try_from_slice(FONT_BYTES).ok()
    })
    .as_ref()
    .ok_or_else(|| Error::Runtime("the embedded chart font assets/DejaVuSans.ttf cannot be parsed".into()))
}

/// A laid-out line of text: glyph pen positions relative to its top-left corner.
struct Line<'f> {
    font: ab_glyph::PxScaleFont<&'f FontRef<'static>>,
    glyphs: Vec<ab_glyph::Glyph>,
    width: f32,
    height: f32,
}

/// Lays out `text` at plotters size `size` on one line of one em, with kerning.
fn layout<'f>(font: &'f FontRef<'static>, text: &str, size: f64) -> Line<'f> {
    let em = (size as f32 / SIZE_PER_EM).max(1.0);
    let units = font.units_per_em().unwrap_or(2048.0);
    let scaled = font.as_scaled(PxScale::from(em * font.height_unscaled() / units));
    let (baseline, height) = (BASELINE_EM * em, em);
    let mut pen = 0.0f32;
    let mut prev = None;
    let mut glyphs = Vec::with_capacity(text.len());
    for c in text.chars() {
        let id = scaled.glyph_id(c);
        if let Some(p) = prev {
            pen += scaled.kern(p, id);
        }
        glyphs.push(id.with_scale_and_position(scaled.scale(), point(pen, baseline)));
        pen += scaled.h_advance(id);
        prev = Some(id);
    }
    Line { font: scaled, glyphs, width: pen, height }
}

/// A backend that measures text with the embedded font and, when `raster`, also draws it
/// (anti-aliased, rotated as asked); everything else goes to the wrapped backend.
pub(super) struct Typeset<B> {
    pub(super) inner: B,
    pub(super) raster: bool,
    pub(super) font: &'static FontRef<'static>,
}

impl<B: DrawingBackend> Typeset<B> {
    fn raster_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        let color = style.color();
        let line = layout(self.font, text, style.size());
        let dx = match style.anchor().h_pos {
            HPos::Left => 0.0,
            HPos::Center => -line.width / 2.0,
            HPos::Right => -line.width,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0.0,
            VPos::Center => -line.height / 2.0,
            VPos::Bottom => -line.height,
        };
        let transform = style.transform();
        let (w, h) = self.inner.get_size();
        let (w, h) = (i32::try_from(w).unwrap_or(i32::MAX), i32::try_from(h).unwrap_or(i32::MAX));
        for glyph in line.glyphs {
            let Some(outline) = line.font.outline_glyph(glyph) else {
                continue;
            };
            let b = outline.px_bounds();
            let mut pixels = Vec::new();
            outline.draw(|x, y, coverage| pixels.push((x, y, coverage)));
            for (x, y, coverage) in pixels {
                let gx = (b.min.x + x as f32 + dx).round() as i32;
                let gy = (b.min.y + y as f32 + dy).round() as i32;
                let (tx, ty) = transform.transform(gx, gy);
                let (px, py) = (pos.0 + tx, pos.1 + ty);
                if coverage > 0.0 && (0..w).contains(&px) && (0..h).contains(&py) {
                    let alpha = color.alpha * f64::from(coverage.min(1.0));
                    self.inner.draw_pixel((px, py), BackendColor { alpha, rgb: color.rgb })?;
                }
            }
        }
        Ok(())
    }
}

impl<B: DrawingBackend> DrawingBackend for Typeset<B> {
    type ErrorType = B::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }

    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.inner.ensure_prepared()
    }

    fn present(&mut self) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.inner.present()
    }

    fn draw_pixel(&mut self, point: BackendCoord, color: BackendColor) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.inner.draw_pixel(point, color)
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.inner.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.inner.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.inner.draw_path(path, style)
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.inner.draw_circle(center, radius, style, fill)
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.inner.fill_polygon(vert, style)
    }

    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        if style.color().alpha == 0.0 {
            Ok(())
        } else if self.raster {
            self.raster_text(text, style, pos)
        } else {
            self.inner.draw_text(text, style, pos)
        }
    }

    fn estimate_text_size<S: BackendTextStyle>(
        &self,
        text: &str,
        style: &S,
    ) -> Result<(u32, u32), DrawingErrorKind<B::ErrorType>> {
        let line = layout(self.font, text, style.size());
        Ok((line.width.ceil() as u32, line.height.ceil() as u32))
    }

    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.inner.blit_bitmap(pos, size, src)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn font_parses_and_covers_the_labels_we_use() {
        let f = font().unwrap();
        for c in "Π_q(θ)∇f_i σ τ=∞ R² α β λ ⁰¹²³⁴⁵⁶⁷⁸⁹⁻ ×".chars().filter(|c| *c != ' ')
        {
            assert_ne!(f.glyph_id(c).0, 0, "no glyph for {c:?}");
        }
    }

    #[test]
    fn layout_widths_add_up() {
        let f = font().unwrap();
        let one = layout(f, "0.5", 18.0);
        let two = layout(f, "0.50.5", 18.0);
        assert!(one.width > 10.0 && (one.height - 18.0 / 1.24).abs() < 0.01, "{} {}", one.width, one.height);
        assert!((two.width - 2.0 * one.width).abs() < 1.0);
        assert_eq!(layout(f, "", 18.0).width, 0.0);
    }
}
