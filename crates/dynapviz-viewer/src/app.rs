//! The native window (eframe): pulls coalesced frames and lossless analysis from a running
//! session, draws the dashboard, and answers the keyboard (pause, speed, screenshot). While
//! paused it asks for no repaints, so it idles at no CPU.

use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use dynapviz_streams::pipeline::LatestSlot;
use dynapviz_streams::session::{Analysis, DisplayFrame};
use dynapviz_streams::source::Controls;

use crate::dashboard::Dashboard;
use crate::headless::Headless;

/// Why the window could not run.
#[derive(Debug, thiserror::Error)]
pub enum ViewerError {
    /// No X11/Wayland display.
    #[error(
        "no display found (DISPLAY and WAYLAND_DISPLAY are unset): use --headless DIR to render the dashboard to PNG files, or --serve ADDR to watch it in a browser"
    )]
    NoDisplay,
    /// The windowing system or OpenGL failed.
    #[error("the window could not be opened: {0} (try --headless DIR or --serve ADDR)")]
    Window(String),
}

struct ViewerApp<'a> {
    dashboard: Dashboard,
    display: Arc<LatestSlot<DisplayFrame>>,
    analysis: &'a Receiver<Vec<Analysis>>,
    controls: Option<Controls>,
    started: Instant,
    first_frame: bool,
    /// Frames left in which to size the window to the screen once its size is known.
    sizing_frames: u32,
    /// Asked every frame: true closes the window as its close button would.
    close_when: Box<dyn Fn() -> bool + 'a>,
}

/// How often a paused window, which draws nothing new, still looks at `close_when`.
const CLOSE_POLL: Duration = Duration::from_millis(200);

/// The window's size for a screen of `screen` points: `window_scale` / (16, 9) of it, as the
/// original sizes its window, and no larger than the screen.
fn window_size(screen: [f32; 2], window_scale: [f32; 2]) -> [f32; 2] {
    let [sw, sh] = screen;
    let [ws, hs] = window_scale;
    [(sw * ws / 16.0).clamp(64.0, sw.max(64.0)), (sh * hs / 9.0).clamp(64.0, sh.max(64.0))]
}

/// The screen the window is sized for until the real one is known.
const ASSUMED_SCREEN: [f32; 2] = [1920.0, 1080.0];

impl ViewerApp<'_> {
    /// Sizes the window to the screen once the windowing system says how large that is (not
    /// before the first frames, nor ever on some systems: then the assumed screen stays).
    fn fit_to_screen(&mut self, ctx: &egui::Context) {
        if self.sizing_frames == 0 {
            return;
        }
        self.sizing_frames -= 1;
        let Some(screen) = ctx.input(|i| i.viewport().monitor_size).filter(|m| m.x > 0.0 && m.y > 0.0) else {
            return;
        };
        self.sizing_frames = 0;
        let [w, h] = window_size([screen.x, screen.y], self.dashboard.resolved().options.window_scale);
        let now = ctx.content_rect().size();
        if (now.x - w).abs() > 1.0 || (now.y - h).abs() > 1.0 {
            tracing::debug!("screen {screen:?}: window {w}x{h}");
            ctx.send_viewport_cmd(egui::ViewportCommand::InnerSize(egui::vec2(w, h)));
        }
    }

    fn keys(&mut self, ctx: &egui::Context) {
        if ctx.input(|i| i.key_pressed(egui::Key::C)) {
            self.dashboard.show_chip = !self.dashboard.show_chip;
        }
        if ctx.input(|i| i.key_pressed(egui::Key::H)) {
            self.dashboard.heat_per_channel = !self.dashboard.heat_per_channel;
        }
        let (space, plus, minus, shot) = ctx.input(|i| {
            (
                i.key_pressed(egui::Key::Space),
                i.key_pressed(egui::Key::Plus) || i.key_pressed(egui::Key::Equals),
                i.key_pressed(egui::Key::Minus),
                i.key_pressed(egui::Key::S),
            )
        });
        if let Some(c) = &self.controls {
            if space {
                c.toggle_pause();
            }
            if plus {
                c.faster();
            }
            if minus {
                c.slower();
            }
            self.dashboard.stats.follow(c);
        }
        if shot {
            let rect = ctx.content_rect();
            let mut h = Headless::new(rect.width().max(64.0) as usize, rect.height().max(64.0) as usize);
            // A PNG for a quick look, an SVG of the same frame for a paper; named by the
            // millisecond, so that two screenshots in one second are two.
            let name =
                format!("dynapviz-{}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis()));
            let (png, svg) = (format!("{name}.png"), format!("{name}.svg"));
            match h.save_png_and_svg(&mut self.dashboard, png.as_ref(), svg.as_ref()) {
                Ok(()) => tracing::info!("screenshot saved to {png} and {svg}"),
                Err(e) => tracing::warn!("screenshot failed: {e}"),
            }
        }
    }
}

impl eframe::App for ViewerApp<'_> {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        self.fit_to_screen(&ctx);
        self.keys(&ctx);
        while let Ok(batch) = self.analysis.try_recv() {
            batch.iter().for_each(|a| self.dashboard.on_analysis(a));
        }
        if let Some(f) = self.display.take() {
            self.dashboard.on_frame(&f);
        }
        self.dashboard.stats.skipped_frames = self.display.skipped();
        egui::CentralPanel::default().show(ui, |ui| self.dashboard.ui(ui));
        self.dashboard.frame_drawn();
        if self.first_frame {
            self.first_frame = false;
            let ms = self.started.elapsed().as_secs_f64() * 1e3;
            tracing::info!("first frame drawn {ms:.0} ms after start");
            if std::env::var_os("DYNAPVIZ_PRINT_STARTUP").is_some() {
                eprintln!("first frame drawn {ms:.0} ms after start");
            }
        }
        if (self.close_when)() {
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        }
        ctx.request_repaint_after(if self.dashboard.stats.paused { CLOSE_POLL } else { Duration::from_millis(16) });
    }
}

/// Whether an X11 or Wayland display is configured (an empty variable counts as unset).
pub fn has_display() -> bool {
    ["DISPLAY", "WAYLAND_DISPLAY"].iter().any(|v| std::env::var_os(v).is_some_and(|d| !d.is_empty()))
}

/// Opens the window and runs until it is closed, or until `close_when` says so (a Ctrl-C in the
/// terminal, say, so that the caller ends as cleanly as after the close button). `started` is
/// the process start, for the start-to-first-frame figure.
pub fn run_window<'a>(
    dashboard: Dashboard,
    display: Arc<LatestSlot<DisplayFrame>>,
    analysis: &'a Receiver<Vec<Analysis>>,
    controls: Option<Controls>,
    started: Instant,
    close_when: impl Fn() -> bool + 'a,
) -> Result<(), ViewerError> {
    if !has_display() {
        return Err(ViewerError::NoDisplay);
    }
    // The original sizes the window as window_scale / (16, 9) of the screen, which is known
    // only once the window exists (see `ViewerApp::fit_to_screen`).
    let size = window_size(ASSUMED_SCREEN, dashboard.resolved().options.window_scale);
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default().with_title("dynapviz").with_inner_size(size),
        renderer: eframe::Renderer::Glow,
        ..eframe::NativeOptions::default()
    };
    let close_when = Box::new(close_when);
    let app = ViewerApp { dashboard, display, analysis, controls, started, first_frame: true, sizing_frames: 30, close_when };
    eframe::run_native(
        "dynapviz",
        options,
        Box::new(move |cc| {
            cc.egui_ctx.set_visuals(egui::Visuals::dark());
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| ViewerError::Window(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::window_size;

    #[test]
    fn the_window_is_a_fraction_of_the_screen_and_fits_in_it() {
        assert_eq!(window_size([1920.0, 1080.0], [12.0, 7.0]), [1440.0, 840.0]);
        assert_eq!(window_size([2880.0, 1620.0], [8.0, 4.5]), [1440.0, 810.0]);
        // The original's default, 4 x 8, on a laptop screen.
        assert_eq!(window_size([1366.0, 768.0], [4.0, 8.0]), [341.5, 682.6667]);
        assert_eq!(window_size([1366.0, 768.0], [32.0, 18.0]), [1366.0, 768.0], "no larger than the screen");
        assert_eq!(window_size([1366.0, 768.0], [0.01, 0.01]), [64.0, 64.0], "nor too small to draw");
    }
}
