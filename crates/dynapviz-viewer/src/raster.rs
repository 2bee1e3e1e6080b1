//! A small CPU rasterizer for egui's output: textured, vertex-coloured triangles with
//! premultiplied-alpha blending and clip rectangles. It makes the dashboard render to PNG with
//! no GPU and no display (headless reports, CI snapshots, the screenshot key).

use std::collections::HashMap;

use egui::epaint::{ClippedPrimitive, ImageData, Primitive, TextureId, textures::TexturesDelta};
use egui::{Color32, Rect};

/// A texture on the CPU.
struct Texture {
    size: [usize; 2],
    pixels: Vec<Color32>,
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
                        self.textures.insert(*id, Texture { size: img.size, pixels: img.pixels.clone() });
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
        for y in min_y..max_y {
            for x in min_x..max_x {
                let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
                let w0 = ((p[1][0] - px) * (p[2][1] - py) - (p[2][0] - px) * (p[1][1] - py)) / area;
                let w1 = ((p[2][0] - px) * (p[0][1] - py) - (p[0][0] - px) * (p[2][1] - py)) / area;
                let w2 = 1.0 - w0 - w1;
                if w0 < -1e-4 || w1 < -1e-4 || w2 < -1e-4 {
                    continue;
                }
                let mut c = [0.0f32; 4];
                for k in 0..4 {
                    c[k] = w0 * colors[0][k] + w1 * colors[1][k] + w2 * colors[2][k];
                }
                if let Some((size, pixels)) = texture {
                    let u = w0 * v[0].uv.x + w1 * v[1].uv.x + w2 * v[2].uv.x;
                    let t = w0 * v[0].uv.y + w1 * v[1].uv.y + w2 * v[2].uv.y;
                    let tx = ((u * size[0] as f32) as usize).min(size[0].saturating_sub(1));
                    let ty = ((t * size[1] as f32) as usize).min(size[1].saturating_sub(1));
                    let s = pixels[ty * size[0] + tx];
                    let s = [s.r(), s.g(), s.b(), s.a()].map(|v| f32::from(v) / 255.0);
                    for k in 0..4 {
                        c[k] *= s[k];
                    }
                }
                let d = &mut self.pixels[y * self.width + x];
                let inv = 1.0 - c[3];
                for k in 0..4 {
                    d[k] = c[k] + d[k] * inv;
                }
            }
        }
    }

    /// The image as 8-bit RGBA (alpha made opaque).
    pub fn to_rgba8(&self) -> Vec<u8> {
        self.pixels
            .iter()
            .flat_map(|p| [p[0], p[1], p[2]].map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8).into_iter().chain([255]))
            .collect()
    }
}
