//! The dashboard without a window: egui runs offscreen, its output is rasterized on the CPU and
//! written as PNG. For reports, papers, CI snapshots and machines without a display.

use std::path::Path;

use egui::{Color32, RawInput, Rect, pos2, vec2};

use crate::dashboard::Dashboard;
use crate::raster::Canvas;

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
        let rgba = self.render_with(|ui| dashboard.ui(ui));
        dashboard.frame_drawn();
        rgba
    }

    /// Draws anything into the whole canvas and returns it as RGBA bytes.
    pub fn render_with(&mut self, mut draw: impl FnMut(&mut egui::Ui)) -> Vec<u8> {
        let size = vec2(self.canvas.width as f32, self.canvas.height as f32);
        // Two passes: egui settles layouts (legend sizes, text widths) on the second.
        let mut rgba_out = None;
        for pass in 0..2 {
            self.time += 1.0 / 60.0;
            let input =
                RawInput { screen_rect: Some(Rect::from_min_size(pos2(0.0, 0.0), size)), time: Some(self.time), ..RawInput::default() };
            let mut out = self.ctx.run_ui(input, |ui| {
                egui::CentralPanel::default().show(ui, |ui| draw(ui));
            });
            self.canvas.set_textures(&out.textures_delta);
            if pass == 1 {
                let primitives = self.ctx.tessellate(std::mem::take(&mut out.shapes), out.pixels_per_point);
                self.canvas.clear(Color32::from_rgb(27, 27, 27));
                self.canvas.paint(&primitives, out.pixels_per_point);
                rgba_out = Some(self.canvas.to_rgba8());
            }
            self.canvas.free_textures(&out.textures_delta);
            out.textures_delta.clear();
        }
        rgba_out.unwrap_or_default()
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

    /// Draws one frame and writes it as PNG.
    pub fn save_png(&mut self, dashboard: &mut Dashboard, path: &Path) -> Result<(), String> {
        let rgba = self.render(dashboard);
        self.write_png(&rgba, path)
    }
}
