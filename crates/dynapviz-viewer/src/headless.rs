//! The dashboard without a window: egui runs offscreen, its output is rasterized on the CPU and
//! written as PNG or as an animated GIF, or written as SVG. For reports, papers, CI snapshots,
//! slides and machines without a display.

use std::path::Path;

use egui::{Color32, RawInput, Rect, pos2, vec2};

use crate::dashboard::Dashboard;
use crate::raster::Canvas;

/// The canvas under the dashboard.
const BACKGROUND: Color32 = Color32::from_rgb(27, 27, 27);

/// Renders dashboards to images.
pub struct Headless {
    ctx: egui::Context,
    canvas: Canvas,
    time: f64,
}

impl Headless {
    /// A renderer of `width` x `height` pixels.
    pub fn new(width: usize, height: usize) -> Self {
        let ctx = egui::Context::default();
        ctx.set_visuals(egui::Visuals::dark());
        // A still picture: no fade-in animations half done.
        ctx.all_styles_mut(|s| s.animation_time = 0.0);
        Self { ctx, canvas: Canvas::new(width, height), time: 0.0 }
    }

    /// Draws one frame of `dashboard` and returns it as RGBA bytes.
    pub fn render(&mut self, dashboard: &mut Dashboard) -> Vec<u8> {
        self.render_frame(dashboard, false).0
    }

    /// Draws one frame of `dashboard` and returns it as RGBA bytes and as an SVG document
    /// (see [`crate::svg`]): the same frame, so that the two pictures agree.
    pub fn render_and_svg(&mut self, dashboard: &mut Dashboard) -> (Vec<u8>, String) {
        let (rgba, svg) = self.render_frame(dashboard, true);
        (rgba, svg.unwrap_or_default())
    }

    fn render_frame(&mut self, dashboard: &mut Dashboard, svg: bool) -> (Vec<u8>, Option<String>) {
        let out = self.draw(|ui| dashboard.ui(ui), svg);
        dashboard.frame_drawn();
        out
    }

    /// Draws anything into the whole canvas and returns it as RGBA bytes.
    pub fn render_with(&mut self, draw: impl FnMut(&mut egui::Ui)) -> Vec<u8> {
        self.draw(draw, false).0
    }

    /// [`Self::render_with`], and the same picture as an SVG document.
    pub fn render_with_and_svg(&mut self, draw: impl FnMut(&mut egui::Ui)) -> (Vec<u8>, String) {
        let (rgba, svg) = self.draw(draw, true);
        (rgba, svg.unwrap_or_default())
    }

    /// Draws into the whole canvas; returns the RGBA bytes and, if asked, the SVG.
    fn draw(&mut self, mut draw: impl FnMut(&mut egui::Ui), svg: bool) -> (Vec<u8>, Option<String>) {
        let size = vec2(self.canvas.width as f32, self.canvas.height as f32);
        // Two passes: egui settles layouts (legend sizes, text widths) on the second.
        let mut drawn = (Vec::new(), None);
        for pass in 0..2 {
            self.time += 1.0 / 60.0;
            let input =
                RawInput { screen_rect: Some(Rect::from_min_size(pos2(0.0, 0.0), size)), time: Some(self.time), ..RawInput::default() };
            let mut out = self.ctx.run_ui(input, |ui| {
                egui::CentralPanel::default().show(ui, |ui| draw(ui));
            });
            self.canvas.set_textures(&out.textures_delta);
            if pass == 1 {
                let shapes = std::mem::take(&mut out.shapes);
                let ppp = out.pixels_per_point;
                let vector = svg.then(|| crate::svg::document(shapes.clone(), size / ppp, BACKGROUND, |id| self.canvas.texture(id)));
                let primitives = self.ctx.tessellate(shapes, ppp);
                self.canvas.clear(BACKGROUND);
                self.canvas.paint(&primitives, ppp);
                drawn = (self.canvas.to_rgba8(), vector);
            }
            self.canvas.free_textures(&out.textures_delta);
            out.textures_delta.clear();
        }
        drawn
    }

    /// Size in pixels.
    pub fn size(&self) -> (usize, usize) {
        (self.canvas.width, self.canvas.height)
    }

    /// Writes RGBA bytes of this renderer's size as PNG.
    pub fn write_png(&self, rgba: &[u8], path: &Path) -> Result<(), String> {
        let (w, h) = self.size();
        image::save_buffer(path, rgba, w as u32, h as u32, image::ExtendedColorType::Rgba8).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Encodes RGBA bytes of this renderer's size as PNG in memory, as RGB (the dashboard is
    /// opaque), for the live view. The png crate's default compression: on the dashboard it
    /// was both faster and smaller than its "fast" one (`cargo bench -p dynapviz-viewer --bench
    /// picture`).
    pub fn encode_png(&self, rgba: &[u8]) -> Result<Vec<u8>, String> {
        use image::ImageEncoder;
        let (w, h) = self.size();
        let rgb: Vec<u8> = rgba.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
        let mut png = Vec::new();
        image::codecs::png::PngEncoder::new(&mut png)
            .write_image(&rgb, w as u32, h as u32, image::ExtendedColorType::Rgb8)
            .map_err(|e| format!("PNG encoding: {e}"))?;
        Ok(png)
    }

    /// Draws one frame and writes it as PNG to `png` and as SVG to `svg`.
    pub fn save_png_and_svg(&mut self, dashboard: &mut Dashboard, png: &Path, svg: &Path) -> Result<(), String> {
        let (rgba, vector) = self.render_and_svg(dashboard);
        self.write_png(&rgba, png)?;
        write_svg(&vector, svg)
    }
}

/// Writes an SVG document (see [`Headless::render_and_svg`]).
pub fn write_svg(svg: &str, path: &Path) -> Result<(), String> {
    std::fs::write(path, svg).map_err(|e| format!("{}: {e}", path.display()))
}

/// An animated GIF being written frame by frame (looping forever), so a long session never holds
/// its frames in memory.
pub struct GifWriter {
    encoder: image::codecs::gif::GifEncoder<std::io::BufWriter<std::fs::File>>,
    path: std::path::PathBuf,
    delay_ms: u32,
    frames: usize,
}

impl GifWriter {
    /// Creates `path`; each frame shows for `delay_ms`.
    pub fn create(path: &Path, delay_ms: u32) -> Result<Self, String> {
        let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
        // Speed 20 of 1..30: colour quantisation fast enough for hundreds of frames, and the
        // dashboard's flat colours lose little.
        let mut encoder = image::codecs::gif::GifEncoder::new_with_speed(std::io::BufWriter::new(file), 20);
        encoder.set_repeat(image::codecs::gif::Repeat::Infinite).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Self { encoder, path: path.to_path_buf(), delay_ms: delay_ms.max(20), frames: 0 })
    }

    /// Appends an RGBA frame of `width` x `height`.
    pub fn push(&mut self, rgba: Vec<u8>, width: usize, height: usize) -> Result<(), String> {
        let bad = |e: &dyn std::fmt::Display| format!("{}: {e}", self.path.display());
        let img = image::RgbaImage::from_raw(width as u32, height as u32, rgba).ok_or_else(|| bad(&"frame size mismatch"))?;
        let frame = image::Frame::from_parts(img, 0, 0, image::Delay::from_numer_denom_ms(self.delay_ms, 1));
        self.encoder.encode_frame(frame).map_err(|e| bad(&e))?;
        self.frames += 1;
        Ok(())
    }

    /// Frames written so far.
    pub fn frames(&self) -> usize {
        self.frames
    }
}
