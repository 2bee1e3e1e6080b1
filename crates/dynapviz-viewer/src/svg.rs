//! The dashboard as an SVG picture, for papers and slides: egui's shapes written as the SVG
//! elements they are (lines, polylines, rectangles, circles, text), so that a figure scales
//! without blurring, its text can be searched and edited, and its plot lines restyled. Pictures
//! (the DVS plot, the readout) are embedded as PNG, pixel for pixel. Shapes SVG has no element
//! for (bands, curves, rectangles with uneven corners, gradients) are written as the triangles
//! egui itself would draw, so nothing on the dashboard is left out.

use std::collections::HashMap;
use std::fmt::Write as _;

use egui::emath::Rot2;
use egui::epaint::text::ByteIndex;
use egui::epaint::{
    ClippedShape, ColorMode, FontFamily, Mesh, PathShape, RectShape, Shape, StrokeKind, TessellationOptions, Tessellator, TextShape,
    TextureId,
};
use egui::{Color32, Pos2, Rect, Vec2};
use image::ImageEncoder as _;

/// egui's proportional font (Ubuntu Light), then fonts about as wide, so that a viewer that
/// ignores `textLength` (librsvg) still fits the labels near where egui put them.
const PROPORTIONAL: &str = "Ubuntu, 'Noto Sans', 'Liberation Sans', Arial, Helvetica, 'Nimbus Sans', sans-serif";

/// A texture's pixels as the SVG needs them.
pub struct Texture<'a> {
    pub size: [usize; 2],
    /// Premultiplied, row-major, as egui keeps them.
    pub pixels: &'a [Color32],
    /// Magnified without smoothing (the DVS plot's sensor pixels): the SVG asks viewers for
    /// the same.
    pub nearest: bool,
}

/// The SVG document of `shapes` painted on a canvas of `size` points filled with `background`;
/// `texture` gives the pixels of the pictures they show.
pub fn document<'t>(
    shapes: Vec<ClippedShape>,
    size: Vec2,
    background: Color32,
    texture: impl Fn(TextureId) -> Option<Texture<'t>>,
) -> String {
    let mut w = Writer {
        body: String::new(),
        defs: String::new(),
        clips: HashMap::new(),
        images: HashMap::new(),
        texture,
        tessellator: Tessellator::new(1.0, TessellationOptions { feathering: false, ..TessellationOptions::default() }, [1, 1], Vec::new()),
        canvas: Rect::from_min_size(Pos2::ZERO, size),
        clip: None,
    };
    for ClippedShape { clip_rect, shape, transform_after_tessellation: t } in shapes {
        w.set_clip(clip_rect);
        // A popup scaling into place: moved as egui moves its triangles. (Compared field by
        // field: emath's comparisons assert on NaN, and a shape may carry one.)
        let moved = t.scaling != 1.0 || t.translation.x != 0.0 || t.translation.y != 0.0;
        if moved {
            let _ = writeln!(
                w.body,
                r#"<g transform="translate({} {}) scale({})">"#,
                num(t.translation.x),
                num(t.translation.y),
                num(t.scaling)
            );
        }
        w.shape(shape);
        if moved {
            w.body.push_str("</g>\n");
        }
    }
    w.set_clip(w.canvas);
    let mut out = String::with_capacity(w.body.len() + w.defs.len() + 512);
    let (width, height) = (num(size.x), num(size.y));
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="{PROPORTIONAL}">"#
    );
    if !w.defs.is_empty() {
        let _ = writeln!(out, "<defs>\n{}</defs>", w.defs);
    }
    let _ = writeln!(out, r#"<rect width="{width}" height="{height}"{}/>"#, fill(background));
    out.push_str(&w.body);
    out.push_str("</svg>\n");
    out
}

struct Writer<F> {
    body: String,
    defs: String,
    /// Clip rectangles written so far, by their corners' bits: id number.
    clips: HashMap<[u32; 4], usize>,
    /// Pictures written so far (texture, crop in texels): their PNG as a data URI.
    images: HashMap<(TextureId, [usize; 4]), String>,
    texture: F,
    tessellator: Tessellator,
    canvas: Rect,
    /// The clip rectangle of the open group (as [`clip_key`]), if one is open.
    clip: Option<[u32; 4]>,
}

impl<'t, F: Fn(TextureId) -> Option<Texture<'t>>> Writer<F> {
    /// Puts what follows in a group clipped to `clip` (none for one that holds the canvas).
    fn set_clip(&mut self, clip: Rect) {
        let key = clip_key(clip);
        if self.clip == Some(key) {
            return;
        }
        if self.clip.take().is_some() {
            self.body.push_str("</g>\n");
        }
        if clip.contains_rect(self.canvas) {
            return;
        }
        let next = self.clips.len();
        let id = *self.clips.entry(key).or_insert_with(|| {
            let r = clip.intersect(self.canvas);
            let _ = writeln!(
                self.defs,
                r#"<clipPath id="c{next}"><rect x="{}" y="{}" width="{}" height="{}"/></clipPath>"#,
                num(r.min.x),
                num(r.min.y),
                num(r.width().max(0.0)),
                num(r.height().max(0.0))
            );
            next
        });
        let _ = writeln!(self.body, r#"<g clip-path="url(#c{id})">"#);
        self.clip = Some(key);
    }

    fn shape(&mut self, shape: Shape) {
        match shape {
            Shape::Noop | Shape::Callback(_) => {}
            Shape::Vec(shapes) => shapes.into_iter().for_each(|s| self.shape(s)),
            Shape::LineSegment { points: [a, b], stroke } => {
                if let Some(stroke) = stroke_attrs(stroke.width, stroke.color) {
                    let _ =
                        writeln!(self.body, r#"<line x1="{}" y1="{}" x2="{}" y2="{}"{stroke}/>"#, num(a.x), num(a.y), num(b.x), num(b.y));
                }
            }
            Shape::Path(path) => match path.stroke.color {
                ColorMode::Solid(color) => self.path(&path, color),
                ColorMode::UV(_) => self.triangles(Shape::Path(path)),
            },
            Shape::Rect(rect) => {
                if !self.rect(&rect) {
                    self.triangles(Shape::Rect(rect));
                }
            }
            Shape::Circle(c) => {
                let stroke = stroke_attrs(c.stroke.width, c.stroke.color);
                if c.fill.a() > 0 || stroke.is_some() {
                    let _ = writeln!(
                        self.body,
                        r#"<circle cx="{}" cy="{}" r="{}"{}{}/>"#,
                        num(c.center.x),
                        num(c.center.y),
                        num(c.radius),
                        fill(c.fill),
                        stroke.unwrap_or_default()
                    );
                }
            }
            Shape::Text(text) => self.text(&text),
            Shape::Mesh(mesh) => {
                if !self.picture(&mesh) {
                    self.mesh(&mesh);
                }
            }
            other @ (Shape::Ellipse(_) | Shape::Band(_) | Shape::QuadraticBezier(_) | Shape::CubicBezier(_)) => self.triangles(other),
        }
    }

    fn path(&mut self, path: &PathShape, color: Color32) {
        if path.points.len() < 2 {
            return;
        }
        let stroke = stroke_attrs(path.stroke.width, color).unwrap_or_default();
        let filled = path.closed && path.fill.a() > 0;
        if stroke.is_empty() && !filled {
            return;
        }
        let mut points = String::with_capacity(path.points.len() * 12);
        for p in &path.points {
            let _ = write!(points, "{},{} ", num(p.x), num(p.y));
        }
        let points = points.trim_end();
        if path.closed {
            let _ = writeln!(self.body, r#"<polygon points="{points}"{}{stroke} stroke-linejoin="round"/>"#, fill(path.fill));
        } else {
            let _ =
                writeln!(self.body, r#"<polyline points="{points}" fill="none"{stroke} stroke-linejoin="round" stroke-linecap="round"/>"#);
        }
    }

    /// A rectangle SVG can say as it is; false for one it cannot (rotated, a gradient, a
    /// blur, uneven corners).
    fn rect(&mut self, r: &RectShape) -> bool {
        let c = r.corner_radius;
        if r.angle != 0.0 || r.brush.is_some() || r.blur_width > 0.0 || !(c.nw == c.ne && c.ne == c.sw && c.sw == c.se) {
            return false;
        }
        let stroke = stroke_attrs(r.stroke.width, r.stroke.color);
        let filled = r.fill.a() > 0;
        if stroke.is_none() && !filled {
            return true;
        }
        // SVG strokes straddle the outline: move the outline so that the stroke covers what
        // egui's does.
        let shift = match (stroke.is_some(), r.stroke_kind) {
            (false, _) | (_, StrokeKind::Middle) => 0.0,
            (true, StrokeKind::Inside) => -r.stroke.width / 2.0,
            (true, StrokeKind::Outside) => r.stroke.width / 2.0,
        };
        let b = r.rect.expand(shift);
        let radius = if c.nw > 0 { format!(r#" rx="{}""#, num((f32::from(c.nw) + shift).max(0.0))) } else { String::new() };
        let _ = writeln!(
            self.body,
            r#"<rect x="{}" y="{}" width="{}" height="{}"{radius}{}{}/>"#,
            num(b.min.x),
            num(b.min.y),
            num(b.width().max(0.0)),
            num(b.height().max(0.0)),
            fill(r.fill),
            stroke.unwrap_or_default()
        );
        true
    }

    /// Text as `<text>` elements, one per run of glyphs of one colour and font in a row,
    /// each starting where egui put it and stretched to egui's width (`textLength`), so that
    /// a viewer without egui's font, whose letters are wider or narrower, neither runs a label
    /// into a legend's marker nor moves it off its tick.
    fn text(&mut self, t: &TextShape) {
        let galley = &t.galley;
        let job = &galley.job;
        let mut chars = job.text.char_indices();
        let mut section = 0;
        let rotate =
            (t.angle != 0.0).then(|| format!(r#" transform="rotate({} {} {})""#, num(t.angle.to_degrees()), num(t.pos.x), num(t.pos.y)));
        for placed in &galley.rows {
            let mut run: Option<Run> = None;
            for g in &placed.row.glyphs {
                // The glyph's section: the next character of the job that is the glyph's (a
                // few at most are skipped: new lines, which have no glyph).
                if let Some((at, _)) = chars.by_ref().take(8).find(|&(_, c)| c == g.chr) {
                    section = job.sections.iter().position(|s| s.byte_range.contains(&ByteIndex(at))).unwrap_or(section);
                }
                if g.chr.is_whitespace() {
                    // Kept inside a run, between words; not at its ends.
                    if let Some(r) = &mut run {
                        r.pending.push(' ');
                    }
                    continue;
                }
                let format = job.sections.get(section).map(|s| &s.format);
                let mut color = placed.row.visuals.mesh.vertices.get(g.first_vertex as usize).map_or(t.fallback_color, |v| v.color);
                if color == Color32::PLACEHOLDER {
                    color = t.fallback_color;
                }
                if let Some(c) = t.override_text_color {
                    color = c;
                }
                let color = color.gamma_multiply(t.opacity_factor);
                let size = format.map_or(g.font_height, |f| f.font_id.size);
                let family = format.map(|f| f.font_id.family.clone()).unwrap_or_default();
                let at = t.pos + placed.pos.to_vec2() + g.pos.to_vec2();
                if run.as_ref().is_some_and(|r| r.color != color || r.size != size || r.family != family || r.y != at.y) {
                    self.text_run(run.take(), rotate.as_deref());
                }
                let r = run.get_or_insert_with(|| Run {
                    color,
                    size,
                    family,
                    text: String::new(),
                    pending: String::new(),
                    x: at.x,
                    end: at.x,
                    y: at.y,
                });
                r.text.push_str(&r.pending);
                r.pending.clear();
                push_escaped(&mut r.text, g.chr);
                r.end = at.x + g.advance_width;
            }
            self.text_run(run, rotate.as_deref());
        }
        // Underlines (a link's) under each row, as egui draws them: level, under the row's
        // bounds turned with the text.
        if t.underline.width > 0.0 && t.underline.color.a() > 0 {
            let turn = Rot2::from_angle(t.angle);
            for placed in galley.rows.iter().filter(|p| !p.row.visuals.mesh.is_empty()) {
                let bounds = placed.row.visuals.mesh_bounds;
                let bounds = if t.angle == 0.0 { bounds } else { bounds.rotate_bb(turn) };
                let r = bounds.translate(t.pos.to_vec2() + turn * placed.pos.to_vec2());
                self.shape(Shape::line_segment([r.left_bottom(), r.right_bottom()], t.underline));
            }
        }
    }

    fn text_run(&mut self, run: Option<Run>, rotate: Option<&str>) {
        let Some(r) = run.filter(|r| r.color.a() > 0) else { return };
        let family = match &r.family {
            FontFamily::Proportional => String::new(),
            FontFamily::Monospace => r#" font-family="Hack, 'DejaVu Sans Mono', monospace""#.to_string(),
            FontFamily::Name(name) => format!(r#" font-family="{}""#, escaped(name)),
        };
        let _ = writeln!(
            self.body,
            r#"<text x="{}" y="{}" font-size="{}" textLength="{}" lengthAdjust="spacingAndGlyphs" xml:space="preserve"{family}{}{}>{}</text>"#,
            num(r.x),
            num(r.y),
            num(r.size),
            num(r.end - r.x),
            fill(r.color),
            rotate.unwrap_or_default(),
            r.text
        );
    }

    /// A picture (a textured, axis-aligned quad) as an `<image>` of the texels it shows;
    /// false for any other mesh.
    fn picture(&mut self, mesh: &Mesh) -> bool {
        if mesh.texture_id == TextureId::default() || mesh.vertices.len() != 4 || mesh.indices.len() != 6 {
            return false;
        }
        let Some(texture) = (self.texture)(mesh.texture_id) else { return false };
        let v = &mesh.vertices;
        let rect = Rect::from_points(&v.iter().map(|v| v.pos).collect::<Vec<_>>());
        let uv = Rect::from_points(&v.iter().map(|v| v.uv).collect::<Vec<_>>());
        // Axis-aligned and not mirrored: each corner's texel is the matching corner's.
        let aligned = v.iter().all(|v| {
            let corner = |p: f32, lo: f32, hi: f32| {
                if (p - lo).abs() < 1e-3 {
                    Some(false)
                } else if (p - hi).abs() < 1e-3 {
                    Some(true)
                } else {
                    None
                }
            };
            corner(v.pos.x, rect.min.x, rect.max.x).is_some_and(|x| corner(v.uv.x, uv.min.x, uv.max.x) == Some(x))
                && corner(v.pos.y, rect.min.y, rect.max.y).is_some_and(|y| corner(v.uv.y, uv.min.y, uv.max.y) == Some(y))
        });
        let tint = v[0].color;
        if !aligned || v.iter().any(|v| v.color != tint) || rect.width() <= 0.0 || rect.height() <= 0.0 {
            return false;
        }
        let [tw, th] = texture.size;
        let texel = |u: f32, n: usize| ((u.clamp(0.0, 1.0) * n as f32).round() as usize).min(n);
        let crop = [texel(uv.min.x, tw), texel(uv.min.y, th), texel(uv.max.x, tw), texel(uv.max.y, th)];
        if crop[2] <= crop[0] || crop[3] <= crop[1] {
            return false;
        }
        let Some(uri) = self.image_uri(mesh.texture_id, crop, &texture) else { return false };
        // Of the tint (egui multiplies the texels by it) only its alpha is kept: the
        // dashboard tints pictures only to fade them.
        let a = tint.to_srgba_unmultiplied()[3];
        if a == 0 {
            return true;
        }
        let opacity = if a < 255 { format!(r#" opacity="{}""#, num(f32::from(a) / 255.0)) } else { String::new() };
        let pixelated = if texture.nearest { r#" style="image-rendering:pixelated""# } else { "" };
        let _ = writeln!(
            self.body,
            r#"<image x="{}" y="{}" width="{}" height="{}" preserveAspectRatio="none"{opacity}{pixelated} href="{uri}"/>"#,
            num(rect.min.x),
            num(rect.min.y),
            num(rect.width()),
            num(rect.height())
        );
        true
    }

    /// The PNG data URI of texels `crop` (x0, y0, x1, y1) of a texture, made once per SVG.
    fn image_uri(&mut self, id: TextureId, crop: [usize; 4], texture: &Texture<'_>) -> Option<String> {
        if let Some(uri) = self.images.get(&(id, crop)) {
            return Some(uri.clone());
        }
        let [x0, y0, x1, y1] = crop;
        let mut rgba = Vec::with_capacity((x1 - x0) * (y1 - y0) * 4);
        for y in y0..y1 {
            let row = texture.pixels.get(y * texture.size[0] + x0..y * texture.size[0] + x1)?;
            rgba.extend(row.iter().flat_map(Color32::to_srgba_unmultiplied));
        }
        let mut png = Vec::new();
        image::codecs::png::PngEncoder::new(&mut png)
            .write_image(&rgba, (x1 - x0) as u32, (y1 - y0) as u32, image::ExtendedColorType::Rgba8)
            .ok()?;
        let uri = format!("data:image/png;base64,{}", base64(&png));
        self.images.insert((id, crop), uri.clone());
        Some(uri)
    }

    /// A shape SVG has no element for, as the triangles egui draws of it. One with a point
    /// that is not a number or infinite has nothing to draw (and egui's tessellator asserts
    /// on NaN in debug builds).
    fn triangles(&mut self, shape: Shape) {
        let finite = match &shape {
            Shape::Path(p) => p.points.iter().all(|p| p.is_finite()),
            Shape::QuadraticBezier(b) => b.points.iter().all(|p| p.is_finite()),
            Shape::CubicBezier(b) => b.points.iter().all(|p| p.is_finite()),
            Shape::Ellipse(e) => e.center.is_finite() && e.radius.is_finite() && e.angle.is_finite(),
            other => other.visual_bounding_rect().is_finite(),
        };
        if !finite {
            return;
        }
        let mut mesh = Mesh::default();
        self.tessellator.tessellate_shape(shape, &mut mesh);
        self.mesh(&mesh);
    }

    /// A mesh as triangles, one colour each (its first corner's), those of one colour in one
    /// path.
    fn mesh(&mut self, mesh: &Mesh) {
        let mut by_color: Vec<(Color32, String)> = Vec::new();
        for tri in mesh.indices.chunks_exact(3) {
            let v = [tri[0], tri[1], tri[2]].map(|i| mesh.vertices.get(i as usize));
            let [Some(a), Some(b), Some(c)] = v else { continue };
            if a.color.a() == 0 {
                continue;
            }
            let d = match by_color.last_mut() {
                Some((color, d)) if *color == a.color => d,
                _ => {
                    by_color.push((a.color, String::new()));
                    &mut by_color.last_mut().expect("just pushed").1
                }
            };
            let _ = write!(d, "M{} {}L{} {}L{} {}Z", num(a.pos.x), num(a.pos.y), num(b.pos.x), num(b.pos.y), num(c.pos.x), num(c.pos.y));
        }
        for (color, d) in by_color {
            let _ = writeln!(self.body, r#"<path d="{d}"{}/>"#, fill(color));
        }
    }
}

/// A clip rectangle by its corners' bits: comparable whatever they hold (NaN too).
fn clip_key(r: Rect) -> [u32; 4] {
    [r.min.x, r.min.y, r.max.x, r.max.y].map(f32::to_bits)
}

/// Glyphs of one colour and font on one baseline, in a row.
struct Run {
    color: Color32,
    size: f32,
    family: FontFamily,
    /// The glyphs, escaped.
    text: String,
    /// Spaces after the last glyph, added when another follows.
    pending: String,
    /// Where the first glyph starts and the last ends, and the baseline.
    x: f32,
    end: f32,
    y: f32,
}

/// ` fill="#rrggbb"` (with its opacity when not opaque), or ` fill="none"`.
fn fill(c: Color32) -> String {
    match paint(c) {
        Some((hex, None)) => format!(r#" fill="{hex}""#),
        Some((hex, Some(o))) => format!(r#" fill="{hex}" fill-opacity="{o}""#),
        None => r#" fill="none""#.to_string(),
    }
}

/// The stroke attributes, or `None` for a stroke that draws nothing.
fn stroke_attrs(width: f32, c: Color32) -> Option<String> {
    let (hex, opacity) = paint(c).filter(|_| width > 0.0)?;
    let opacity = opacity.map(|o| format!(r#" stroke-opacity="{o}""#)).unwrap_or_default();
    Some(format!(r#" stroke="{hex}" stroke-width="{}"{opacity}"#, num(width)))
}

/// A colour as `#rrggbb` and its opacity when not opaque; `None` when fully transparent.
/// egui's colours are premultiplied, SVG's are not.
fn paint(c: Color32) -> Option<(String, Option<String>)> {
    let [r, g, b, a] = c.to_srgba_unmultiplied();
    (a > 0).then(|| (format!("#{r:02x}{g:02x}{b:02x}"), (a < 255).then(|| num(f32::from(a) / 255.0))))
}

/// A coordinate with at most two decimals and no trailing zeros: the dashboard's points are
/// whole or half pixels, and a hundredth of one is below what any viewer shows.
fn num(v: f32) -> String {
    let v = if v.is_finite() { v } else { 0.0 };
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".to_string() } else { s.to_string() }
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '&' => out.push_str("&amp;"),
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        '"' => out.push_str("&quot;"),
        '\'' => out.push_str("&apos;"),
        // Characters XML 1.0 cannot hold at all.
        c if (c as u32) < 0x20 => {}
        c => out.push(c),
    }
}

fn escaped(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    s.chars().for_each(|c| push_escaped(&mut out, c));
    out
}

/// Standard base64 with padding (RFC 4648), for the pictures' data URIs.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use egui::epaint::{CornerRadius, Vertex, WHITE_UV};
    use egui::{Stroke, pos2};

    use super::*;

    fn clipped(shape: Shape) -> ClippedShape {
        ClippedShape::new(Rect::EVERYTHING, shape)
    }

    fn svg_of(shapes: Vec<ClippedShape>) -> String {
        document(shapes, Vec2::new(200.0, 100.0), Color32::BLACK, |_| None)
    }

    #[test]
    fn numbers_are_short_and_base64_is_the_standard_one() {
        assert_eq!([num(1.0), num(0.5), num(2.126), num(-0.001), num(f32::NAN)], ["1", "0.5", "2.13", "0", "0"]);
        assert_eq!([base64(b""), base64(b"f"), base64(b"fo"), base64(b"foo"), base64(b"foobar")], ["", "Zg==", "Zm8=", "Zm9v", "Zm9vYmFy"]);
    }

    #[test]
    fn lines_paths_rectangles_and_circles_are_their_own_elements() {
        let red = Color32::from_rgb(255, 0, 0);
        let half = Color32::from_rgba_unmultiplied(0, 0, 255, 128);
        let svg = svg_of(vec![
            clipped(Shape::line_segment([pos2(1.0, 2.0), pos2(3.5, 4.0)], Stroke::new(1.5, red))),
            clipped(Shape::line(vec![pos2(0.0, 0.0), pos2(10.0, 5.0), pos2(20.0, 0.0)], Stroke::new(1.0, red))),
            clipped(Shape::rect_filled(Rect::from_min_size(pos2(5.0, 6.0), Vec2::new(7.0, 8.0)), 2.0, half)),
            clipped(Shape::circle_filled(pos2(50.0, 50.0), 4.0, red)),
        ]);
        assert!(svg.contains(r##"<line x1="1" y1="2" x2="3.5" y2="4" stroke="#ff0000" stroke-width="1.5"/>"##), "{svg}");
        assert!(svg.contains(r##"<polyline points="0,0 10,5 20,0" fill="none" stroke="#ff0000""##), "{svg}");
        assert!(svg.contains(r##"<rect x="5" y="6" width="7" height="8" rx="2" fill="#0000ff" fill-opacity="0.5"/>"##), "{svg}");
        assert!(svg.contains(r##"<circle cx="50" cy="50" r="4" fill="#ff0000"/>"##), "{svg}");
    }

    #[test]
    fn a_rectangle_with_uneven_corners_is_drawn_as_triangles_not_left_out() {
        let shape = RectShape::filled(
            Rect::from_min_size(pos2(10.0, 10.0), Vec2::new(40.0, 20.0)),
            CornerRadius { nw: 6, ne: 0, sw: 0, se: 6 },
            Color32::from_rgb(0, 200, 0),
        );
        let svg = svg_of(vec![clipped(Shape::Rect(shape))]);
        assert!(!svg.contains("<rect x=\"10\""), "{svg}");
        let path = svg.lines().find(|l| l.starts_with("<path")).expect("triangles");
        assert!(path.contains(r##"fill="#00c800""##) && path.matches('Z').count() >= 4, "{path}");
    }

    #[test]
    fn shapes_outside_the_canvas_are_clipped_by_their_rectangles() {
        let clip = Rect::from_min_max(pos2(10.0, 10.0), pos2(60.0, 40.0));
        let shape = ClippedShape::new(clip, Shape::circle_filled(pos2(0.0, 0.0), 30.0, Color32::WHITE));
        let svg = svg_of(vec![shape.clone(), shape, clipped(Shape::circle_filled(pos2(1.0, 1.0), 1.0, Color32::WHITE))]);
        assert_eq!(svg.matches("<clipPath").count(), 1, "{svg}");
        assert!(svg.contains(r#"<clipPath id="c0"><rect x="10" y="10" width="50" height="30"/></clipPath>"#), "{svg}");
        // Both clipped circles in one group, the third outside it.
        let group = svg.split(r#"<g clip-path="url(#c0)">"#).nth(1).expect("a group");
        let (inside, after) = group.split_once("</g>").expect("closed");
        assert_eq!((inside.matches("<circle").count(), after.matches("<circle").count()), (2, 1), "{svg}");
    }

    #[test]
    fn text_keeps_its_characters_places_and_colours() {
        let ctx = egui::Context::default();
        let mut galley = None;
        let mut out = ctx.run_ui(egui::RawInput::default(), |ui| {
            galley = Some(ui.painter().layout_no_wrap("a<b & c".into(), egui::FontId::proportional(20.0), Color32::from_rgb(10, 20, 30)));
        });
        out.textures_delta.clear();
        let galley: Arc<_> = galley.expect("laid out");
        let svg = svg_of(vec![clipped(Shape::galley(pos2(5.0, 7.0), galley.clone(), Color32::WHITE))]);
        let text = svg.lines().find(|l| l.starts_with("<text")).expect("a text element");
        assert!(text.ends_with(">a&lt;b &amp; c</text>"), "{text}");
        assert!(text.contains(r##"font-size="20""##) && text.contains(r##"fill="#0a141e""##), "{text}");
        // It starts where egui put the first glyph and is as wide as egui made it.
        let attr = |name: &str| -> f32 {
            let at = text.split(&format!(" {name}=\"")).nth(1).and_then(|s| s.split('"').next()).expect(name);
            at.parse().expect("a number")
        };
        let glyphs = &galley.rows[0].glyphs;
        let last = glyphs.last().expect("glyphs");
        assert!((attr("x") - (5.0 + glyphs[0].pos.x)).abs() < 0.01, "{text}");
        assert!((attr("textLength") - (last.pos.x + last.advance_width - glyphs[0].pos.x)).abs() < 0.01, "{text}");
        assert!((attr("y") - (7.0 + galley.rows[0].pos.y + glyphs[0].pos.y)).abs() < 0.01, "{text}");
    }

    #[test]
    fn underlined_text_gets_its_line() {
        let ctx = egui::Context::default();
        let mut galley = None;
        let mut out = ctx.run_ui(egui::RawInput::default(), |ui| {
            galley = Some(ui.painter().layout_no_wrap("link".into(), egui::FontId::proportional(14.0), Color32::WHITE));
        });
        out.textures_delta.clear();
        let galley: Arc<_> = galley.expect("laid out");
        let mut text = TextShape::new(pos2(10.0, 20.0), galley.clone(), Color32::WHITE);
        text.underline = Stroke::new(1.0, Color32::from_rgb(0, 0, 255));
        let svg = svg_of(vec![clipped(Shape::Text(text))]);
        let line = svg.lines().find(|l| l.starts_with("<line")).unwrap_or_else(|| panic!("no underline: {svg}"));
        let bottom = 20.0 + galley.rows[0].pos.y + galley.rows[0].visuals.mesh_bounds.bottom();
        assert!(line.contains(&format!(r#"y1="{}" "#, num(bottom))) && line.contains(r##"stroke="#0000ff""##), "{line}");
    }

    #[test]
    fn a_picture_is_embedded_as_the_png_of_the_texels_it_shows() {
        let id = TextureId::User(7);
        let pixels: Vec<Color32> = (0..12).map(|i| Color32::from_rgb(i * 20, 255 - i * 20, 7)).collect();
        let texture = || Texture { size: [4, 3], pixels: &pixels, nearest: true };
        let mut mesh = Mesh::with_texture(id);
        // The right half of the texture.
        mesh.add_rect_with_uv(
            Rect::from_min_size(pos2(10.0, 20.0), Vec2::new(30.0, 40.0)),
            Rect::from_min_max(pos2(0.5, 0.0), pos2(1.0, 1.0)),
            Color32::WHITE,
        );
        let svg = document(vec![clipped(Shape::mesh(mesh))], Vec2::new(100.0, 100.0), Color32::BLACK, |t| (t == id).then(texture));
        let image = svg.lines().find(|l| l.starts_with("<image")).expect("an image element");
        assert!(image.contains(r#"x="10" y="20" width="30" height="40""#) && image.contains("pixelated"), "{image}");
        let b64 = image.split("base64,").nth(1).and_then(|s| s.split('"').next()).expect("data");
        let png = decode_base64(b64);
        let decoded = image::load_from_memory(&png).expect("a PNG").to_rgba8();
        assert_eq!(decoded.dimensions(), (2, 3));
        for (x, y, p) in decoded.enumerate_pixels() {
            assert_eq!(p.0, pixels[(y * 4 + x + 2) as usize].to_srgba_unmultiplied());
        }
        // A mesh that is not a picture (egui's font texture) is drawn as triangles.
        let mut plain = Mesh::default();
        plain.colored_vertex(pos2(0.0, 0.0), Color32::RED);
        plain.vertices.push(Vertex { pos: pos2(9.0, 0.0), uv: WHITE_UV, color: Color32::RED });
        plain.vertices.push(Vertex { pos: pos2(0.0, 9.0), uv: WHITE_UV, color: Color32::RED });
        plain.add_triangle(0, 1, 2);
        let svg = svg_of(vec![clipped(Shape::mesh(plain))]);
        assert!(svg.contains(r##"<path d="M0 0L9 0L0 9Z" fill="#ff0000"/>"##), "{svg}");
    }

    fn decode_base64(s: &str) -> Vec<u8> {
        const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let vals: Vec<u32> =
            s.bytes().filter(|&b| b != b'=').map(|b| ALPHABET.iter().position(|&a| a == b).expect("base64") as u32).collect();
        let mut out = Vec::new();
        for chunk in vals.chunks(4) {
            let n = chunk.iter().enumerate().fold(0u32, |n, (i, &v)| n | v << (18 - 6 * i));
            out.extend(&[(n >> 16) as u8, (n >> 8) as u8, n as u8][..chunk.len() - 1]);
        }
        out
    }
}
