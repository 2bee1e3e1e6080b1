//! A small CPU rasterizer for egui's output: textured, vertex-coloured triangles with
//! premultiplied-alpha blending and clip rectangles. It makes the dashboard render to PNG with
//! no GPU and no display (headless reports, CI snapshots, the screenshot key).

use std::collections::HashMap;

use egui::epaint::{ClippedPrimitive, ImageData, Primitive, TextureId, textures::TextureFilter, textures::TexturesDelta};
use egui::{Color32, Rect};

/// A texture on the CPU.
struct Texture {
    size: [usize; 2],
    pixels: Vec<Color32>,
    /// Magnified without smoothing (see [`crate::svg::Texture::nearest`]).
    nearest: bool,
}

/// An RGBA image egui draws into.
pub struct Canvas {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Premultiplied RGBA, row-major.
    pub pixels: Vec<[f32; 4]>,
    textures: HashMap<TextureId, Texture>,
}

impl Canvas {
    /// A canvas of `width` x `height` pixels.
    pub fn new(width: usize, height: usize) -> Self {
        Self { width, height, pixels: vec![[0.0; 4]; width * height], textures: HashMap::new() }
    }

    /// Fills with an opaque colour.
    pub fn clear(&mut self, c: Color32) {
        let v = [f32::from(c.r()) / 255.0, f32::from(c.g()) / 255.0, f32::from(c.b()) / 255.0, 1.0];
        self.pixels.fill(v);
    }

    /// Applies new and changed textures (call before [`Canvas::paint`]).
    pub fn set_textures(&mut self, delta: &TexturesDelta) {
        for (id, deltas) in &delta.set {
            for d in deltas {
                let ImageData::Color(img) = &d.image;
                match d.pos {
                    None => {
                        let nearest = d.options.magnification == TextureFilter::Nearest;
                        self.textures.insert(*id, Texture { size: img.size, pixels: img.pixels.clone(), nearest });
                    }
                    Some([x0, y0]) => {
                        if let Some(t) = self.textures.get_mut(id) {
                            for y in 0..img.size[1] {
                                for x in 0..img.size[0] {
                                    if x0 + x < t.size[0] && y0 + y < t.size[1] {
                                        t.pixels[(y0 + y) * t.size[0] + x0 + x] = img.pixels[y * img.size[0] + x];
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The pixels of texture `id`, if egui set it.
    pub(crate) fn texture(&self, id: TextureId) -> Option<crate::svg::Texture<'_>> {
        self.textures.get(&id).map(|t| crate::svg::Texture { size: t.size, pixels: &t.pixels, nearest: t.nearest })
    }

    /// Frees textures egui no longer uses (call after painting).
    pub fn free_textures(&mut self, delta: &TexturesDelta) {
        for id in &delta.free {
            self.textures.remove(id);
        }
    }

    /// Paints tessellated primitives; `ppp` is pixels per point.
    pub fn paint(&mut self, primitives: &[ClippedPrimitive], ppp: f32) {
        for p in primitives {
            let Primitive::Mesh(mesh) = &p.primitive else {
                continue;
            };
            let clip = Rect::from_min_max(p.clip_rect.min * ppp, p.clip_rect.max * ppp);
            // Taken out while painting so the canvas can be written as the texture is read.
            let texture = self.textures.remove(&mesh.texture_id);
            for tri in mesh.indices.chunks_exact(3) {
                let v = [tri[0], tri[1], tri[2]].map(|i| mesh.vertices.get(i as usize).copied());
                let [Some(a), Some(b), Some(c)] = v else {
                    continue;
                };
                self.triangle([a, b, c], ppp, clip, texture.as_ref().map(|t| (t.size, t.pixels.as_slice())));
            }
            if let Some(t) = texture {
                self.textures.insert(mesh.texture_id, t);
            }
        }
    }

    fn triangle(&mut self, v: [egui::epaint::Vertex; 3], ppp: f32, clip: Rect, texture: Option<([usize; 2], &[Color32])>) {
        let p = v.map(|v| [v.pos.x * ppp, v.pos.y * ppp]);
        let area = (p[1][0] - p[0][0]) * (p[2][1] - p[0][1]) - (p[2][0] - p[0][0]) * (p[1][1] - p[0][1]);
        if area.abs() < 1e-8 {
            return;
        }
        let min_x = p.iter().map(|q| q[0]).fold(f32::MAX, f32::min).max(clip.min.x).max(0.0).floor() as usize;
        let max_x = p.iter().map(|q| q[0]).fold(f32::MIN, f32::max).min(clip.max.x).min(self.width as f32).ceil() as usize;
        let min_y = p.iter().map(|q| q[1]).fold(f32::MAX, f32::min).max(clip.min.y).max(0.0).floor() as usize;
        let max_y = p.iter().map(|q| q[1]).fold(f32::MIN, f32::max).min(clip.max.y).min(self.height as f32).ceil() as usize;
        let colors =
            v.map(|v| [f32::from(v.color.r()), f32::from(v.color.g()), f32::from(v.color.b()), f32::from(v.color.a())].map(|c| c / 255.0));
        if colors.iter().all(|c| *c == [0.0; 4]) {
            // Premultiplied transparent black everywhere: blending it changes nothing.
            return;
        }
        let texel = |u: f32, t: f32| {
            texture.map(|(size, pixels)| {
                let tx = ((u * size[0] as f32) as usize).min(size[0].saturating_sub(1));
                let ty = ((t * size[1] as f32) as usize).min(size[1].saturating_sub(1));
                let s = pixels[ty * size[0] + tx];
                [s.r(), s.g(), s.b(), s.a()].map(|v| f32::from(v) / 255.0)
            })
        };
        // Most of a dashboard's area is filled rectangles: one colour and one texel (egui's
        // white one) at every vertex, so every pixel gets the same colour.
        let uniform = colors[1] == colors[0] && colors[2] == colors[0] && v[1].uv == v[0].uv && v[2].uv == v[0].uv;
        let flat = uniform.then(|| {
            let s = texel(v[0].uv.x, v[0].uv.y).unwrap_or([1.0; 4]);
            [0, 1, 2, 3].map(|k| colors[0][k] * s[k])
        });
        for y in min_y..max_y {
            let Some(((a0, b0), (a1, b1), xs)) = row_span(p, area, y as f32 + 0.5, min_x, max_x) else { continue };
            let row = &mut self.pixels[y * self.width..(y + 1) * self.width];
            for x in xs {
                let px = x as f32 + 0.5;
                let (w0, w1) = (a0 + b0 * px, a1 + b1 * px);
                let w2 = 1.0 - w0 - w1;
                if w0 < -1e-4 || w1 < -1e-4 || w2 < -1e-4 {
                    continue;
                }
                let c = match flat {
                    Some(c) => c,
                    None => {
                        let mut c = [0, 1, 2, 3].map(|k| w0 * colors[0][k] + w1 * colors[1][k] + w2 * colors[2][k]);
                        let u = w0 * v[0].uv.x + w1 * v[1].uv.x + w2 * v[2].uv.x;
                        let t = w0 * v[0].uv.y + w1 * v[1].uv.y + w2 * v[2].uv.y;
                        if let Some(s) = texel(u, t) {
                            for k in 0..4 {
                                c[k] *= s[k];
                            }
                        }
                        c
                    }
                };
                let d = &mut row[x];
                let inv = 1.0 - c[3];
                for k in 0..4 {
                    d[k] = c[k] + d[k] * inv;
                }
            }
        }
    }

    /// The image as 8-bit RGBA (alpha made opaque).
    pub fn to_rgba8(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.pixels.len() * 4);
        for p in &self.pixels {
            // Rounds half up, as `round` does for these non-negative values.
            let byte = |v: f32| (v.clamp(0.0, 1.0) * 255.0 + 0.5) as u8;
            out.extend_from_slice(&[byte(p[0]), byte(p[1]), byte(p[2]), 255]);
        }
        out
    }
}

/// The first two barycentric weights along row `py` (its centre) of triangle `p` (of signed
/// `area` times two), and the pixels in `min_x..max_x` it may cover: a few more than it does,
/// never fewer, so that the test per pixel decides. Each weight is linear along the row, so
/// where it is not negative is a half-line; a thin diagonal triangle (a plot's line) covers a
/// few pixels of a wide row.
fn row_span(p: [[f32; 2]; 3], area: f32, py: f32, min_x: usize, max_x: usize) -> Option<(Weight, Weight, std::ops::Range<usize>)> {
    // Weight i along the row: a + b * px, from the edge opposite vertex i.
    let edge = |i: usize, j: usize| {
        let (a, b) = (p[i], p[j]);
        ((a[0] * (b[1] - py) - b[0] * (a[1] - py)) / area, (a[1] - b[1]) / area)
    };
    let ((a0, b0), (a1, b1)) = (edge(1, 2), edge(2, 0));
    let (mut lo, mut hi) = (min_x as f32, max_x as f32);
    for (a, b) in [(a0, b0), (a1, b1), (1.0 - a0 - a1, -(b0 + b1))] {
        // The pixel test allows -1e-4; a wider margin, and a pixel more on each side, keep
        // rounding from dropping one it would paint.
        let at = (-1e-3 - a) / b - 0.5;
        if b > 0.0 {
            lo = lo.max(at.floor() - 1.0);
        } else if b < 0.0 {
            hi = hi.min(at.ceil() + 2.0);
        } else if a < -1e-3 {
            return None;
        }
    }
    (lo < hi).then_some(((a0, b0), (a1, b1), lo as usize..hi as usize))
}

/// A barycentric weight along a row: `a + b * px` at pixel centre `px`.
type Weight = (f32, f32);
