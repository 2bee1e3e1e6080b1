//! The dashboard: the state behind the four plots and how they are drawn. It draws into any
//! `egui::Ui`, so the native window and the headless renderer show exactly the same thing.

use std::collections::VecDeque;
use std::time::Instant;

use dynapviz_chip::RAILS;
use dynapviz_streams::session::{Analysis, DisplayFrame, Heat, HeatShape};
use dynapviz_streams::source::LinkDown;
use egui::{Color32, ColorImage, FontId, RichText, TextureHandle, TextureOptions, Ui, UiBuilder, pos2, vec2};
use egui_plot::{Legend, Line, Plot as EguiPlot, PlotBounds, PlotPoints, Points};

use crate::layout::{Plot, layout};
use crate::options::{LinePlotOptions, OptionsError, Resolved};

/// Line colours, distinct on a dark background.
const PALETTE: [Color32; 12] = [
    Color32::from_rgb(102, 194, 255),
    Color32::from_rgb(255, 170, 80),
    Color32::from_rgb(120, 220, 120),
    Color32::from_rgb(255, 110, 110),
    Color32::from_rgb(200, 150, 255),
    Color32::from_rgb(255, 220, 90),
    Color32::from_rgb(90, 230, 210),
    Color32::from_rgb(255, 140, 210),
    Color32::from_rgb(170, 170, 170),
    Color32::from_rgb(180, 230, 90),
    Color32::from_rgb(140, 170, 255),
    Color32::from_rgb(230, 160, 130),
];

/// Live figures about the viewer itself (beyond the original).
#[derive(Clone, Debug, Default)]
pub struct ViewStats {
    /// Frames drawn per second.
    pub fps: f64,
    /// Event-to-screen latency of recent frames, ms: (p50, p99).
    pub latency_ms: Option<(f64, f64)>,
    /// Display frames skipped because the window was slower than the source.
    pub skipped_frames: u64,
    /// Input events so far.
    pub events: u64,
    /// Playback paused.
    pub paused: bool,
    /// Playback speed factor asked (0: as fast as possible).
    pub speed: f64,
    /// How far paced playback is behind the wall clock, s (see
    /// [`dynapviz_streams::source::Controls::lag`]).
    pub behind_s: f64,
    /// Recording time not waited for in paced playback, s (see
    /// [`dynapviz_streams::source::Controls::set_max_gap`]).
    pub pauses_cut_s: f64,
    /// The events come live (a camera over the network): no pace, no speed.
    pub live: bool,
    /// Events a live stream let go unshown (see
    /// [`dynapviz_streams::source::Controls::dropped`]).
    pub dropped_events: u64,
    /// The live stream is down and being connected again (see
    /// [`dynapviz_streams::source::Controls::link_down`]).
    pub link_down: Option<LinkDown>,
    /// Times the live stream came back.
    pub reconnects: u64,
}

impl ViewStats {
    /// Takes the playback's state (paused, speed, lag, pauses cut, live drops) from its
    /// controls.
    pub fn follow(&mut self, c: &dynapviz_streams::source::Controls) {
        (self.paused, self.speed, self.behind_s, self.pauses_cut_s) =
            (c.paused(), c.speed(), c.lag().as_secs_f64(), c.skipped().as_secs_f64());
        (self.live, self.dropped_events) = (c.is_live(), c.dropped());
        (self.link_down, self.reconnects) = (c.link_down(), c.reconnects());
    }
}

/// What the chip panel shows about one layer besides its live counters.
#[derive(Clone, Debug, PartialEq)]
pub struct ChipLayerInfo {
    /// Layer number (1-based; 0 = DVS).
    pub index: usize,
    /// Core it runs on.
    pub core: Option<usize>,
    /// Kernel memory used / the core's.
    pub kernel_memory: (usize, usize),
    /// Neuron memory used / the core's.
    pub neuron_memory: (usize, usize),
}

/// Live counters of the simulated chip, with rates from the last two readings.
#[derive(Clone, Debug, Default)]
struct ChipLive {
    info: Vec<ChipLayerInfo>,
    last: Option<(i64, Vec<dynapviz_chip::LayerCounters>)>,
    /// Per layer (index 0 = DVS): spikes/s, synaptic ops/s, dropped total, and the synaptic
    /// ops/s of its busiest millisecond so far (what to hold against a core's bandwidth).
    rates: Vec<(f64, f64, u64, f64)>,
}

/// A per-class picture decoded once.
struct Picture {
    image: ColorImage,
    texture: Option<TextureHandle>,
}

/// Everything the plots show.
pub struct Dashboard {
    resolved: Resolved,
    dvs: Option<(usize, usize, Vec<Color32>)>,
    dvs_texture: Option<TextureHandle>,
    dvs_dirty: bool,
    heat: Option<(u16, ColorImage)>,
    heat_texture: Option<TextureHandle>,
    counts: Vec<VecDeque<[f64; 2]>>,
    power: Vec<VecDeque<[f64; 2]>>,
    readout: Option<(usize, bool)>,
    pictures: Vec<Picture>,
    t0_us: Option<i64>,
    now_s: f64,
    frame_times: VecDeque<Instant>,
    latencies: VecDeque<f64>,
    chip: ChipLive,
    /// Whether the chip panel (per-layer rates, cores, memory) is shown.
    pub show_chip: bool,
    /// Whether the heat map shows every channel's feature map (a mosaic) or their sum.
    pub heat_per_channel: bool,
    /// Viewer figures, shown in the status line.
    pub stats: ViewStats,
}

/// Colours a heat map: each channel's feature map as a tile of a mosaic (one pixel of gap), or
/// the channels summed; one scale for all, brightness by the square root so weak activity shows.
fn heat_image(heat: &Heat, per_channel: bool) -> ColorImage {
    let HeatShape { channels, width: w, height: h } = heat.shape;
    let plane = w * h;
    let (size, values) = if per_channel && channels > 1 {
        let cols = (channels as f64).sqrt().ceil() as usize;
        let rows = channels.div_ceil(cols);
        let (tw, th) = (cols * (w + 1) - 1, rows * (h + 1) - 1);
        let mut v = vec![f32::NAN; tw * th];
        for (c, map) in heat.values.chunks(plane.max(1)).enumerate().take(channels) {
            let (x0, y0) = ((c % cols) * (w + 1), (c / cols) * (h + 1));
            for (y, row) in map.chunks(w.max(1)).enumerate() {
                v[(y0 + y) * tw + x0..(y0 + y) * tw + x0 + row.len()].copy_from_slice(row);
            }
        }
        ([tw, th], v)
    } else {
        let mut v = vec![0f32; plane];
        for map in heat.values.chunks(plane.max(1)) {
            v.iter_mut().zip(map).for_each(|(s, x)| *s += x);
        }
        ([w, h], v)
    };
    let top = values.iter().copied().filter(|v| v.is_finite()).fold(1.0f32, f32::max);
    let pixels = values
        .iter()
        .map(|v| {
            if v.is_nan() {
                return Color32::from_rgb(60, 60, 70); // the gap between tiles
            }
            let a = (v / top).sqrt();
            Color32::from_rgb((20.0 + 235.0 * a) as u8, (20.0 + 160.0 * a * a) as u8, (30.0 + 40.0 * (1.0 - a)) as u8)
        })
        .collect();
    ColorImage { size, pixels, source_size: vec2(size[0] as f32, size[1] as f32) }
}

fn decode(path: &std::path::Path) -> Result<ColorImage, OptionsError> {
    let img = image::open(path).map_err(|e| OptionsError(format!("readout image {}: {e}", path.display())))?.to_rgba8();
    let size = [img.width() as usize, img.height() as usize];
    Ok(ColorImage::from_rgba_unmultiplied(size, img.as_raw()))
}

impl Dashboard {
    /// Decodes the readout pictures (a bad picture is an error here, before any window opens).
    pub fn new(resolved: Resolved) -> Result<Self, OptionsError> {
        let pictures =
            resolved.images.iter().map(|p| decode(p).map(|image| Picture { image, texture: None })).collect::<Result<Vec<_>, _>>()?;
        let classes = resolved.feature_names.len();
        let rails = resolved.options.power_monitor_number_of_items;
        Ok(Self {
            counts: vec![VecDeque::new(); classes],
            power: vec![VecDeque::new(); rails],
            resolved,
            dvs: None,
            dvs_texture: None,
            dvs_dirty: false,
            heat: None,
            heat_texture: None,
            heat_per_channel: true,
            readout: None,
            pictures,
            t0_us: None,
            now_s: 0.0,
            frame_times: VecDeque::new(),
            latencies: VecDeque::new(),
            chip: ChipLive::default(),
            show_chip: false,
            stats: ViewStats::default(),
        })
    }

    /// The network's layers, for the chip panel.
    pub fn set_chip(&mut self, info: Vec<ChipLayerInfo>) {
        self.chip.info = info;
    }

    /// Event time shown, seconds since the first frame or result.
    pub fn now_seconds(&self) -> f64 {
        self.now_s
    }

    /// The options in force.
    pub fn resolved(&self) -> &Resolved {
        &self.resolved
    }

    /// Seconds since the earliest time seen. Frames and analysis come by separate ways, so the
    /// first to arrive need not be the earliest (a frame at the end of a gap in the recording
    /// can come before the counts from before it): an earlier time moves the origin back and
    /// the points drawn so far with it.
    fn seconds(&mut self, t_us: i64) -> f64 {
        let t0 = *self.t0_us.get_or_insert(t_us);
        if t_us < t0 {
            let shift = (t0 - t_us) as f64 * 1e-6;
            self.counts.iter_mut().chain(&mut self.power).flatten().for_each(|p| p[0] += shift);
            self.now_s += shift;
            self.t0_us = Some(t_us);
            return 0.0;
        }
        (t_us - t0) as f64 * 1e-6
    }

    /// Takes a new DVS frame.
    pub fn on_frame(&mut self, f: &DisplayFrame) {
        let (w, h) = (usize::from(f.geometry.width), usize::from(f.geometry.height));
        let mut px = Vec::with_capacity(w * h);
        for (on, off) in f.on.iter().zip(&f.off) {
            let (a, b) = ((on * 0.5).min(1.0), (off * 0.5).min(1.0));
            px.push(Color32::from_rgb((20.0 + 220.0 * b) as u8, (20.0 + 200.0 * a) as u8, (24.0 + 80.0 * a + 60.0 * b) as u8));
        }
        self.dvs = Some((w, h, px));
        self.dvs_dirty = true;
        if let Some(heat) = &f.heat {
            self.heat = Some((heat.layer, heat_image(heat, self.heat_per_channel)));
        }
        self.now_s = self.now_s.max(self.seconds(f.t_us));
        self.stats.events = f.events_total;
        self.latencies.push_back(f.newest_input.elapsed().as_secs_f64() * 1e3);
        if self.latencies.len() > 240 {
            self.latencies.pop_front();
        }
        let mut sorted: Vec<f64> = self.latencies.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let pick = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
        self.stats.latency_ms = Some((pick(0.5), pick(0.99)));
    }

    /// Takes an analysis result.
    pub fn on_analysis(&mut self, a: &Analysis) {
        let span = |o: &LinePlotOptions| o.x_span;
        match a {
            Analysis::Counts { t_us, counts } => {
                let t = self.seconds(*t_us);
                self.now_s = self.now_s.max(t);
                let keep = span(&self.resolved.options.spike_count) * 2.0;
                for (line, &c) in self.counts.iter_mut().zip(counts) {
                    line.push_back([t, c as f64]);
                    while line.front().is_some_and(|p| p[0] < t - keep) {
                        line.pop_front();
                    }
                }
            }
            Analysis::Readout { feature, predicted, .. } => self.readout = Some((*feature, *predicted)),
            Analysis::Layers { t_us, counters } => {
                if let Some((t0, prev)) = &self.chip.last {
                    let dt = ((t_us - t0) as f64 * 1e-6).max(1e-9);
                    self.chip.rates = counters
                        .iter()
                        .zip(prev)
                        .map(|(c, p)| {
                            (
                                (c.spikes_after_pool - p.spikes_after_pool) as f64 / dt,
                                (c.synaptic_ops - p.synaptic_ops) as f64 / dt,
                                c.dropped_busy,
                                c.peak_synops_per_ms as f64 * 1e3,
                            )
                        })
                        .collect();
                }
                self.chip.last = Some((*t_us, counters.clone()));
            }
            Analysis::Snapshot(f) => self.on_frame(f),
            Analysis::Power(p) => {
                let t = self.seconds(p.timestamp);
                let keep = span(&self.resolved.options.power_measurement) * 2.0;
                if let Some(line) = self.power.get_mut(usize::from(p.channel)) {
                    line.push_back([t, p.value * 1e3]);
                    while line.front().is_some_and(|q| q[0] < t - keep) {
                        line.pop_front();
                    }
                }
            }
        }
    }

    /// Counts a drawn frame for the frame-rate figure.
    pub fn frame_drawn(&mut self) {
        let now = Instant::now();
        self.frame_times.push_back(now);
        while self.frame_times.front().is_some_and(|t| now.duration_since(*t).as_secs_f64() > 1.0) {
            self.frame_times.pop_front();
        }
        self.stats.fps = self.frame_times.len() as f64;
    }

    /// Draws the dashboard into `ui` (the whole window).
    pub fn ui(&mut self, ui: &mut Ui) {
        let o = &self.resolved.options;
        let full = ui.max_rect();
        let status_h = 18.0;
        let area = egui::Rect::from_min_max(full.min, pos2(full.max.x, full.max.y - status_h));
        let plots = layout(
            o.add_dvs_plot,
            o.add_spike_count_plot && !self.counts.is_empty(),
            o.add_readout_plot && !self.pictures.is_empty(),
            o.add_power_monitor_plot,
        );
        for (plot, f) in plots {
            let r = egui::Rect::from_min_max(
                pos2(area.min.x + f[0] * area.width(), area.min.y + f[1] * area.height()),
                pos2(area.min.x + f[2] * area.width(), area.min.y + f[3] * area.height()),
            )
            .shrink(4.0);
            ui.scope_builder(UiBuilder::new().max_rect(r), |ui| {
                ui.set_clip_rect(r);
                match plot {
                    Plot::Dvs => self.dvs_ui(ui),
                    Plot::SpikeCount => self.spike_count_ui(ui),
                    Plot::Readout => self.readout_ui(ui),
                    Plot::Power => self.power_ui(ui),
                }
            });
        }
        if self.show_chip {
            self.chip_ui(ui.ctx());
        }
        let s = &self.stats;
        let latency = s.latency_ms.map_or("-".to_string(), |(p50, p99)| format!("{p50:.1} / {p99:.1} ms"));
        let speed = match (s.speed, s.behind_s) {
            _ if s.live => live_status(s),
            (v, _) if v <= 0.0 => "max".to_string(),
            // Under a frame or two of lag is jitter, not falling behind.
            (v, behind) if behind >= 0.1 => format!("{v:.2}x, {behind:.1} s behind"),
            (v, _) => format!("{v:.2}x"),
        };
        let speed = if s.pauses_cut_s > 0.0 { format!("{speed}, {:.1} s of pauses cut", s.pauses_cut_s) } else { speed };
        let text = format!(
            "{}   {:.0} fps   event-to-screen p50/p99 {latency}   skipped frames {}   events {}   speed {speed}   [space] pause  {}[c] chip  {}[s] screenshot",
            if s.paused { "PAUSED" } else { "live" },
            s.fps,
            s.skipped_frames,
            s.events,
            // A live camera has no speed to change.
            if s.live { "" } else { "[+/-] speed  " },
            if self.heat.is_some() { "[h] channels/sum  " } else { "" }
        );
        let status = egui::Rect::from_min_max(pos2(full.min.x + 6.0, full.max.y - status_h), full.max);
        ui.scope_builder(UiBuilder::new().max_rect(status), |ui| ui.label(RichText::new(text).small().color(Color32::GRAY)));
    }

    fn chip_ui(&self, ctx: &egui::Context) {
        let rate = |v: f64| {
            if v >= 1e6 {
                format!("{:.2} M", v / 1e6)
            } else if v >= 1e3 {
                format!("{:.1} k", v / 1e3)
            } else {
                format!("{v:.0}")
            }
        };
        egui::Window::new("Chip").anchor(egui::Align2::RIGHT_TOP, vec2(-8.0, 24.0)).resizable(false).collapsible(true).show(ctx, |ui| {
            egui::Grid::new("chip_layers").striped(true).show(ui, |ui| {
                for h in ["layer", "core", "spikes/s", "synops/s", "peak synops/s", "dropped", "kernel mem", "neuron mem"] {
                    ui.label(RichText::new(h).strong());
                }
                ui.end_row();
                let dvs = self.chip.rates.first();
                ui.label("dvs");
                ui.label("-");
                ui.label(dvs.map_or("-".into(), |r| rate(r.0)));
                ui.label("-");
                ui.label("-");
                ui.label("-");
                ui.label("");
                ui.label("");
                ui.end_row();
                for l in &self.chip.info {
                    let r = self.chip.rates.get(l.index);
                    ui.label(l.index.to_string());
                    ui.label(l.core.map_or("-".into(), |c| c.to_string()));
                    ui.label(r.map_or("-".into(), |r| rate(r.0)));
                    ui.label(r.map_or("-".into(), |r| rate(r.1)));
                    ui.label(r.map_or("-".into(), |r| rate(r.3)));
                    ui.label(r.map_or("-".into(), |r| r.2.to_string()));
                    ui.label(format!("{}/{}", l.kernel_memory.0, l.kernel_memory.1));
                    ui.label(format!("{}/{}", l.neuron_memory.0, l.neuron_memory.1));
                    ui.end_row();
                }
            });
        });
    }

    fn title(ui: &mut Ui, text: &str) {
        ui.label(RichText::new(text).strong());
    }

    fn dvs_ui(&mut self, ui: &mut Ui) {
        if let Some((layer, image)) = self.heat.take() {
            // DVS on the left, the heat map of the monitored layer on the right.
            let r = ui.available_rect_before_wrap();
            let (left, right) = r.split_left_right_at_fraction(0.5);
            ui.scope_builder(UiBuilder::new().max_rect(left), |ui| self.dvs_only_ui(ui));
            ui.scope_builder(UiBuilder::new().max_rect(right.shrink2(vec2(4.0, 0.0))), |ui| {
                let how = if self.heat_per_channel { "per channel" } else { "summed over channels" };
                Self::title(ui, &format!("Layer {layer} spikes, {how} (h)"));
                match &mut self.heat_texture {
                    Some(t) => t.set(image.clone(), TextureOptions::NEAREST),
                    None => self.heat_texture = Some(ui.ctx().load_texture("heat", image.clone(), TextureOptions::NEAREST)),
                }
                let avail = ui.available_size();
                let [w, h] = image.size;
                let scale = (avail.x / w as f32).min(avail.y / h as f32).max(0.1);
                let (rect, _) = ui.allocate_exact_size(vec2(w as f32 * scale, h as f32 * scale), egui::Sense::hover());
                if let Some(t) = &self.heat_texture {
                    ui.painter().image(t.id(), rect, egui::Rect::from_min_max(pos2(0.0, 0.0), pos2(1.0, 1.0)), Color32::WHITE);
                }
            });
            self.heat = Some((layer, image));
            return;
        }
        self.dvs_only_ui(ui);
    }

    fn dvs_only_ui(&mut self, ui: &mut Ui) {
        Self::title(ui, "DVS");
        let [sw, sh] = self.resolved.options.dvs_shape;
        if self.dvs_dirty
            && let Some((w, h, px)) = &self.dvs
        {
            let image = ColorImage { size: [*w, *h], pixels: px.clone(), source_size: vec2(*w as f32, *h as f32) };
            match &mut self.dvs_texture {
                Some(t) => t.set(image, TextureOptions::NEAREST),
                None => self.dvs_texture = Some(ui.ctx().load_texture("dvs", image, TextureOptions::NEAREST)),
            }
            self.dvs_dirty = false;
        }
        // Square pixels at any window size: fit `dvs_shape` into the space, keep its aspect.
        let avail = ui.available_size();
        let scale = (avail.x / f32::from(sw)).min(avail.y / f32::from(sh)).max(0.1);
        let size = vec2(f32::from(sw) * scale, f32::from(sh) * scale);
        let (rect, _) = ui.allocate_exact_size(size, egui::Sense::hover());
        ui.painter().rect_filled(rect, 0.0, Color32::from_rgb(20, 20, 24));
        if let Some(t) = &self.dvs_texture {
            ui.painter().image(t.id(), rect, egui::Rect::from_min_max(pos2(0.0, 0.0), pos2(1.0, 1.0)), Color32::WHITE);
        }
        if let Some(down) = &self.stats.link_down {
            // Over the sensor's picture: a still picture would look like a quiet scene.
            let text = format!(
                "stream lost {:.0} s ago\n{}\nconnecting again{}",
                down.since.elapsed().as_secs_f64(),
                down.why,
                if down.tries > 0 { format!(" (try {})", down.tries) } else { String::new() }
            );
            // From the picture's top, as wide as the plot's cell: a small picture (a narrow
            // window) would cut a centred note off at both ends.
            let cell = ui.clip_rect();
            let galley =
                ui.painter().layout(text, FontId::proportional(13.0), Color32::from_rgb(250, 190, 70), (cell.width() - 24.0).max(40.0));
            let left = (rect.center().x - galley.size().x / 2.0).max(cell.left() + 12.0);
            let at = pos2(left, rect.top() + 12.0);
            ui.painter().rect_filled(egui::Rect::from_min_size(at, galley.size()).expand(8.0), 4.0, Color32::from_black_alpha(210));
            ui.painter().galley(at, galley, Color32::WHITE);
        }
    }

    fn line_plot(ui: &mut Ui, id: &str, lines: &[VecDeque<[f64; 2]>], names: &[String], o: &LinePlotOptions, now: f64) {
        let x_min = (now - o.x_span).max(0.0);
        let x_max = x_min + o.x_span;
        let visible_max = lines.iter().flat_map(|l| l.iter().filter(|p| p[0] >= x_min).map(|p| p[1])).fold(0.0, f64::max);
        let y_max = (visible_max * o.max_y_rate).max(o.default_y_max);
        let label_interval = o.label_interval;
        EguiPlot::new(id)
            .legend(Legend::default().follow_insertion_order(true))
            .x_axis_label(o.x_label.clone())
            .y_axis_label(o.y_label.clone())
            .allow_drag(false)
            .allow_zoom(false)
            .allow_scroll(false)
            .x_axis_formatter(
                |mark, _| {
                    if mark.value.fract().abs() < 1e-9 { format!("{:.0}", mark.value) } else { format!("{:.1}", mark.value) }
                },
            )
            .x_grid_spacer(move |input| time_marks(input.bounds, label_interval))
            .y_grid_spacer(|input| value_marks(input.bounds, input.base_step_size))
            .y_axis_formatter(|mark, _| value_label(mark))
            .show(ui, |p| {
                p.set_plot_bounds(PlotBounds::from_min_max([x_min, 0.0], [x_max, y_max]));
                for (i, (line, name)) in lines.iter().zip(names).enumerate() {
                    let pts: Vec<[f64; 2]> = line.iter().copied().collect();
                    let color = PALETTE[i % PALETTE.len()];
                    if o.show_point_circles {
                        p.points(Points::new(name.clone(), PlotPoints::from(pts.clone())).color(color).radius(2.5));
                    }
                    p.line(Line::new(name.clone(), PlotPoints::from(pts)).color(color));
                }
            });
    }

    fn spike_count_ui(&mut self, ui: &mut Ui) {
        Self::title(ui, "Spike count");
        let r = &self.resolved;
        Self::line_plot(ui, "spike_count", &self.counts, &r.feature_names, &r.options.spike_count, self.now_s);
    }

    fn power_ui(&mut self, ui: &mut Ui) {
        Self::title(ui, "Power (estimate)");
        let names: Vec<String> = RAILS.iter().take(self.power.len()).map(|s| s.to_string()).collect();
        Self::line_plot(ui, "power", &self.power, &names, &self.resolved.options.power_measurement, self.now_s);
    }

    fn readout_ui(&mut self, ui: &mut Ui) {
        Self::title(ui, "Readout");
        let (feature, predicted) = self.readout.unwrap_or((self.resolved.default_feature, false));
        let Some(pic) = self.pictures.get_mut(feature) else {
            return;
        };
        let texture = pic
            .texture
            .get_or_insert_with(|| ui.ctx().load_texture(format!("readout{feature}"), pic.image.clone(), TextureOptions::LINEAR));
        let name = &self.resolved.feature_names[feature];
        let avail = ui.available_size() - vec2(0.0, 24.0);
        let [iw, ih] = pic.image.size;
        let scale = (avail.x / iw as f32).min(avail.y / ih as f32).max(0.01);
        let (rect, _) = ui.allocate_exact_size(vec2(iw as f32 * scale, ih as f32 * scale), egui::Sense::hover());
        // No prediction: the default picture, dimmed, so it reads as "nothing decided".
        let tint = if predicted { Color32::WHITE } else { Color32::from_gray(70) };
        ui.painter().image(texture.id(), rect, egui::Rect::from_min_max(pos2(0.0, 0.0), pos2(1.0, 1.0)), tint);
        let caption =
            if predicted { RichText::new(name).heading() } else { RichText::new(format!("{name} (no prediction)")).color(Color32::GRAY) };
        ui.label(caption);
    }
}

/// The x axis' marks: one per `interval` (the original's `label_interval`) from `lo` up to
/// `hi`, not at `hi` itself. Each mark's step is the interval times the largest power of two (up
/// to 8) that divides its index, as egui's own grids nest: the plot labels every mark where the
/// interval is wide enough on screen, and only every second, fourth or eighth where it is not,
/// instead of none (a 25 s span labelled every 2.5 s is too dense for a third of the window).
fn time_marks((lo, hi): (f64, f64), interval: f64) -> Vec<egui_plot::GridMark> {
    let count = (hi - lo) / interval;
    // NaN fails this too.
    if !(0.0..=1e4).contains(&count) {
        return Vec::new();
    }
    // None at the right edge itself, where the label would be cut in half.
    let first = (lo / interval).ceil() as i64;
    let last = (hi / interval).ceil() as i64 - 1;
    (first..=last)
        .map(|k| {
            // 0 has every power of two for a divisor: it takes the largest, 8.
            let nest = 1_i64 << k.trailing_zeros().min(3);
            egui_plot::GridMark { value: k as f64 * interval, step_size: interval * nest as f64 }
        })
        .collect()
}

/// The y axis' marks: multiples of the finest step of 1, 2 or 5 times a power of ten that is at
/// least `base` (the plot's finest grid step), each with the coarsest of a chain of such steps
/// it is a multiple of, up to about a thousand times the finest. The plot labels the marks whose
/// step leaves room on screen: a power plot of 1 mW in 170 pixels reads 0, 0.2 ... 1, where
/// egui's own powers of ten left only 0 (0.1 mW too close, 1 mW at the edge).
fn value_marks((lo, hi): (f64, f64), base: f64) -> Vec<egui_plot::GridMark> {
    let step = nice_step_at_least(base);
    let count = (hi - lo) / step;
    // NaN fails this too.
    if !(0.0..=1e4).contains(&count) {
        return Vec::new();
    }
    // Each coarser step a multiple of the one before (1, 2, 10, 20 ...; 5, 10, 20, 100 ...):
    // the labels of one level never fall between those of the next (0.4, 0.5, 0.6). A 2 goes
    // up by 5, a 1 or a 5 by 2; the ratios to `step` are whole numbers.
    let mut mantissa = (step / 10f64.powf(step.log10().floor())).round() as i64;
    let coarser: Vec<i64> = (0..6)
        .scan(1_i64, |ratio, _| {
            let by = if mantissa == 2 { 5 } else { 2 };
            mantissa = if mantissa * by == 10 { 1 } else { mantissa * by };
            *ratio *= by;
            Some(*ratio)
        })
        .collect();
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last)
        .map(|k| {
            let ratio = coarser.iter().rev().find(|&&ratio| k % ratio == 0).copied().unwrap_or(1);
            let step_size = step * ratio as f64;
            egui_plot::GridMark { value: k as f64 * step, step_size }
        })
        .collect()
}

/// A y mark's label, with the decimals its step needs (egui's own rounds the decimals of the
/// step's power of ten: 0.5 became "0").
fn value_label(mark: egui_plot::GridMark) -> String {
    let decimals = (-(mark.step_size.log10() + 1e-9).floor()).clamp(0.0, 12.0) as usize;
    format!("{:.*}", decimals, mark.value)
}

/// The smallest of 1, 2 and 5 times a power of ten that is at least `x` (positive, finite).
fn nice_step_at_least(x: f64) -> f64 {
    let x = if x.is_finite() && x > 0.0 { x } else { 1.0 };
    let decade = 10f64.powf(x.log10().floor());
    [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * decade).find(|&t| t >= x * (1.0 - 1e-9)).unwrap_or(10.0 * decade)
}

/// The status line's word on a live stream: its drops, its reconnections, and whether it is
/// down now.
fn live_status(s: &ViewStats) -> String {
    let mut text = "live".to_string();
    if s.dropped_events > 0 {
        text += &format!(", {} events dropped", s.dropped_events);
    }
    if s.reconnects > 0 {
        text += &format!(", reconnected {}x", s.reconnects);
    }
    if let Some(down) = &s.link_down {
        text += &format!(", stream lost {:.0} s ago", down.since.elapsed().as_secs_f64());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heat(channels: usize, w: usize, h: usize) -> Heat {
        let shape = HeatShape { channels, width: w, height: h };
        Heat { layer: 1, shape, values: (0..shape.len()).map(|i| i as f32).collect() }
    }

    #[test]
    fn value_marks_step_by_one_two_five() {
        assert_eq!(nice_step_at_least(0.03), 0.05);
        assert_eq!(nice_step_at_least(0.1), 0.1);
        assert_eq!(nice_step_at_least(0.11), 0.2);
        assert_eq!(nice_step_at_least(600.0), 1000.0);
        assert_eq!(nice_step_at_least(f64::NAN), 1.0);
        // 0..1 mW with a finest step of 0.03: marks every 0.05, then 0.1, 0.2, 1, 2, 10, 20.
        let marks = value_marks((0.0, 1.0), 0.03);
        assert_eq!(marks.len(), 21);
        let step_of = |v: f64| marks.iter().find(|m| (m.value - v).abs() < 1e-9).map(|m| m.step_size);
        assert_eq!(step_of(0.05), Some(0.05));
        assert_eq!(step_of(0.1), Some(0.1));
        assert_eq!(step_of(0.3), Some(0.1));
        assert_eq!(step_of(0.4), Some(0.2));
        assert_eq!(step_of(0.5), Some(0.1), "not a level of its own between 0.4 and 0.6");
        assert_eq!(step_of(1.0), Some(1.0));
        assert_eq!(step_of(0.0), Some(20.0), "0 is a multiple of every coarser step");
        assert!(marks.iter().all(|m| m.step_size >= 0.05 - 1e-12));
        // From a 2: 10, 20, 100.
        let marks = value_marks((0.0, 100.0), 1.5);
        assert_eq!(marks.iter().find(|m| m.value == 10.0).map(|m| m.step_size), Some(10.0));
        assert_eq!(marks.iter().find(|m| m.value == 60.0).map(|m| m.step_size), Some(20.0));
        let label = |value: f64, step_size: f64| value_label(egui_plot::GridMark { value, step_size });
        assert_eq!(
            [label(0.5, 0.5), label(0.05, 0.05), label(0.3, 0.1), label(1.0, 1.0), label(150.0, 50.0)],
            ["0.5", "0.05", "0.3", "1", "150"]
        );
        assert!(value_marks((0.0, f64::INFINITY), 0.1).is_empty());
        assert!(value_marks((5.0, 1.0), 0.1).is_empty());
    }

    #[test]
    fn time_marks_nest_so_that_some_labels_show_on_a_narrow_plot() {
        let marks = time_marks((0.0, 25.0), 2.5);
        assert_eq!(marks.len(), 10);
        let steps: Vec<f64> = marks.iter().map(|m| m.step_size / 2.5).collect();
        assert_eq!(steps, [8.0, 1.0, 2.0, 1.0, 4.0, 1.0, 2.0, 1.0, 8.0, 1.0]);
        assert!(marks.iter().zip(0..).all(|(m, k)| (m.value - f64::from(k) * 2.5).abs() < 1e-12));
        // A window that starts later: the marks still sit on multiples of the interval.
        let later = time_marks((31.0, 56.0), 2.5);
        assert_eq!(later.first().map(|m| m.value), Some(32.5));
        assert_eq!(later.first().map(|m| m.step_size), Some(2.5));
        assert_eq!(later.iter().find(|m| m.value == 40.0).map(|m| m.step_size), Some(20.0));
        // No interval, no marks (rather than a loop without end).
        assert!(time_marks((0.0, 25.0), 0.0).is_empty());
        assert!(time_marks((0.0, f64::INFINITY), 1.0).is_empty());
    }

    #[test]
    fn channels_become_tiles_of_a_mosaic_with_gaps() {
        // 5 channels of 3x2: 3 columns, 2 rows of tiles, one pixel apart.
        let img = heat_image(&heat(5, 3, 2), true);
        assert_eq!(img.size, [3 * 4 - 1, 2 * 3 - 1]);
        let gap = Color32::from_rgb(60, 60, 70);
        assert_eq!(img.pixels[3], gap, "column between tiles");
        assert_eq!(img.pixels[2 * 11], gap, "row between tiles");
        // The sixth tile does not exist: gap colour too.
        assert_eq!(img.pixels[3 * 11 + 8], gap);
        // The brightest value (channel 4, last pixel) is at tile (1, 1), its last pixel.
        let brightest = img.pixels.iter().max_by_key(|c| c.r()).copied();
        assert_eq!(brightest, Some(img.pixels[4 * 11 + 6]));
    }

    /// A frame from the end of a gap in the recording comes before the counts and power from
    /// before it: the origin moves back to the earliest time, and the plots show the latest.
    #[test]
    fn an_earlier_time_moves_the_origin_back() {
        let options = crate::options::VizOptions { add_power_monitor_plot: true, ..Default::default() };
        let mut d = Dashboard::new(options.resolve(Some(3)).expect("options")).expect("dashboard");
        let frame = |t_us| DisplayFrame {
            t_us,
            geometry: dynapviz_events::Geometry::new(4, 4),
            on: vec![0.0; 16],
            off: vec![0.0; 16],
            newest_input: Instant::now(),
            events_total: 0,
            heat: None,
        };
        d.on_frame(&frame(20_500_000));
        d.on_analysis(&Analysis::Counts { t_us: 500_000, counts: vec![1, 2, 3] });
        let sample = dynapviz_chip::PowerSample { channel: 0, value: 1e-4, timestamp: 20_000 };
        d.on_analysis(&Analysis::Power(sample));
        d.on_analysis(&Analysis::Counts { t_us: 21_000_000, counts: vec![4, 5, 6] });
        assert_eq!(d.t0_us, Some(20_000));
        assert!((d.now_s - 20.98).abs() < 1e-9, "{}", d.now_s);
        let xs: Vec<f64> = d.counts[0].iter().map(|p| p[0]).collect();
        assert!(xs.len() == 2 && (xs[0] - 0.48).abs() < 1e-9 && (xs[1] - 20.98).abs() < 1e-9, "{xs:?}");
        assert_eq!(d.power[0].front().map(|p| p[0]), Some(0.0));
    }

    #[test]
    fn summed_channels_keep_the_layer_size() {
        let img = heat_image(&heat(4, 3, 2), false);
        assert_eq!(img.size, [3, 2]);
        // Sums grow with the index: the last pixel is the brightest.
        assert!(img.pixels.windows(2).all(|p| p[0].r() <= p[1].r()));
    }
}
