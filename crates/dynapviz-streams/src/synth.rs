//! A synthetic DVS: scenes of moving and rotating shapes rendered as intensity images, turned
//! into events the way a DVS pixel does it (log-intensity change crossing a contrast threshold,
//! timestamps interpolated inside the frame step, a refractory period, background noise).
//! Deterministic by seed.

use dynapviz_events::{Event, Geometry};

use crate::rng::Rng;

/// DVS pixel parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DvsParams {
    /// Log-intensity change that makes one event (typical sensors: 0.15-0.3).
    pub contrast: f32,
    /// A pixel's dead time after an event, µs.
    pub refractory_us: i64,
    /// Background noise events per pixel per second.
    pub noise_hz: f64,
}

impl Default for DvsParams {
    fn default() -> Self {
        Self { contrast: 0.2, refractory_us: 100, noise_hz: 0.2 }
    }
}

/// Turns successive intensity frames into events.
#[derive(Clone, Debug)]
pub struct DvsEmulator {
    geometry: Geometry,
    params: DvsParams,
    reference: Vec<f32>,
    previous: Vec<f32>,
    last_event: Vec<i64>,
    started: bool,
    rng: Rng,
    scratch: Vec<Event>,
}

fn log_i(v: f32) -> f32 {
    (v.max(0.0) + 0.02).ln()
}

impl DvsEmulator {
    /// An emulator for a sensor of `geometry`.
    pub fn new(geometry: Geometry, params: DvsParams, seed: u64) -> Self {
        let n = usize::from(geometry.width) * usize::from(geometry.height);
        Self {
            geometry,
            params,
            reference: vec![0.0; n],
            previous: vec![0.0; n],
            last_event: vec![i64::MIN / 2; n],
            started: false,
            rng: Rng::new(seed),
            scratch: Vec::new(),
        }
    }

    /// The sensor size.
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// Takes the intensity frame (row-major, values in 0..1) seen at `t_us`, having seen the
    /// previous one at `t_prev_us`; appends the events in between, in time order.
    pub fn step(&mut self, frame: &[f32], t_prev_us: i64, t_us: i64, out: &mut Vec<Event>) {
        let w = usize::from(self.geometry.width);
        if !self.started {
            for (i, &v) in frame.iter().enumerate() {
                self.reference[i] = log_i(v);
                self.previous[i] = self.reference[i];
            }
            self.started = true;
            return;
        }
        let c = self.params.contrast;
        let dt = (t_us - t_prev_us) as f32;
        self.scratch.clear();
        for (i, &v) in frame.iter().enumerate() {
            let now = log_i(v);
            let before = self.previous[i];
            self.previous[i] = now;
            let mut r = self.reference[i];
            let change = now - before;
            while (now - r).abs() >= c {
                let up = now > r;
                r += if up { c } else { -c };
                // When, inside the step, the log intensity crossed the new reference level.
                let frac = if change.abs() > 1e-9 { ((r - before) / change).clamp(0.0, 1.0) } else { 1.0 };
                let t = t_prev_us + (frac * dt) as i64;
                if t - self.last_event[i] >= self.params.refractory_us {
                    self.last_event[i] = t;
                    self.scratch.push(Event::new(t, (i % w) as u16, (i / w) as u16, up));
                }
            }
            self.reference[i] = r;
        }
        let pixels = self.reference.len() as u64;
        let noise = self.rng.poisson(self.params.noise_hz * pixels as f64 * f64::from(dt) * 1e-6);
        for _ in 0..noise {
            let i = self.rng.below(pixels) as usize;
            let t = t_prev_us + self.rng.below((t_us - t_prev_us).max(1) as u64) as i64;
            self.scratch.push(Event::new(t, (i % w) as u16, (i / w) as u16, self.rng.below(2) == 1));
        }
        self.scratch.sort_by_key(|e| e.t);
        out.extend_from_slice(&self.scratch);
    }
}

/// A shape in a scene, in pixel units; positions move with constant velocity and bounce off
/// the borders; bars rotate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Shape {
    /// A filled disc.
    Disc {
        /// Centre x, y.
        center: [f64; 2],
        /// Radius.
        radius: f64,
        /// Velocity, pixels per second.
        velocity: [f64; 2],
    },
    /// A bar (rectangle) rotating about its centre.
    Bar {
        /// Centre x, y.
        center: [f64; 2],
        /// Length and thickness.
        size: [f64; 2],
        /// Angle at t = 0, radians.
        angle: f64,
        /// Rotation, radians per second.
        spin: f64,
        /// Velocity, pixels per second.
        velocity: [f64; 2],
    },
}

/// Moving shapes on a background, rendered with soft (anti-aliased) edges.
#[derive(Clone, Debug, PartialEq)]
pub struct Scene {
    /// Background intensity 0..1.
    pub background: f32,
    /// Shape intensity 0..1.
    pub foreground: f32,
    /// The shapes.
    pub shapes: Vec<Shape>,
}

fn bounce(p: f64, v: f64, t: f64, lo: f64, hi: f64) -> f64 {
    let span = (hi - lo).max(1e-9);
    let x = (p - lo + v * t).rem_euclid(2.0 * span);
    lo + if x > span { 2.0 * span - x } else { x }
}

impl Scene {
    /// A random scene of `n` shapes for a sensor of `geometry`.
    pub fn random(geometry: Geometry, n: usize, rng: &mut Rng) -> Self {
        let (w, h) = (f64::from(geometry.width), f64::from(geometry.height));
        let s = w.min(h);
        let shapes = (0..n)
            .map(|_| {
                let center = [rng.range(0.2, 0.8) * w, rng.range(0.2, 0.8) * h];
                let velocity = [rng.range(-0.6, 0.6) * s, rng.range(-0.6, 0.6) * s];
                if rng.below(2) == 0 {
                    Shape::Disc { center, radius: rng.range(0.05, 0.15) * s, velocity }
                } else {
                    Shape::Bar {
                        center,
                        size: [rng.range(0.2, 0.5) * s, rng.range(0.03, 0.08) * s],
                        angle: rng.range(0.0, std::f64::consts::PI),
                        spin: rng.range(-4.0, 4.0),
                        velocity,
                    }
                }
            })
            .collect();
        Self { background: 0.2, foreground: 0.9, shapes }
    }

    /// Renders the scene at `t_us` into `frame` (row-major `geometry` pixels).
    pub fn render(&self, geometry: Geometry, t_us: i64, frame: &mut [f32]) {
        let (w, h) = (usize::from(geometry.width), usize::from(geometry.height));
        let t = t_us as f64 * 1e-6;
        frame.fill(self.background);
        for shape in &self.shapes {
            match *shape {
                Shape::Disc { center, radius, velocity } => {
                    let cx = bounce(center[0], velocity[0], t, radius, w as f64 - radius);
                    let cy = bounce(center[1], velocity[1], t, radius, h as f64 - radius);
                    paint_disc(frame, w, h, [cx, cy], radius, self.foreground);
                }
                Shape::Bar { center, size, angle, spin, velocity } => {
                    let reach = 0.5 * (size[0] + size[1]);
                    let cx = bounce(center[0], velocity[0], t, 0.0, w as f64);
                    let cy = bounce(center[1], velocity[1], t, 0.0, h as f64);
                    let (s, c) = (angle + spin * t).sin_cos();
                    paint(frame, w, h, [cx, cy], reach + 1.0, self.foreground, |x, y| {
                        let (dx, dy) = (x - cx, y - cy);
                        let (u, v) = (dx * c + dy * s, -dx * s + dy * c);
                        (0.5 * size[0] - u.abs()).min(0.5 * size[1] - v.abs())
                    });
                }
            }
        }
    }
}

/// What a synthetic DVS looks at: anything that renders an intensity image at a given time.
pub trait Stage {
    /// Renders the stage at `t_us` into `frame` (row-major `geometry` pixels, values 0..1).
    fn render(&self, geometry: Geometry, t_us: i64, frame: &mut [f32]);
}

impl Stage for Scene {
    fn render(&self, geometry: Geometry, t_us: i64, frame: &mut [f32]) {
        Scene::render(self, geometry, t_us, frame);
    }
}

/// Blends `intensity` into pixels near `center` by the signed distance `inside(x, y)` (positive
/// inside, in pixels): a one-pixel soft edge, so sub-pixel motion changes pixel values smoothly
/// as it does on a real sensor.
pub(crate) fn paint(frame: &mut [f32], w: usize, h: usize, center: [f64; 2], reach: f64, intensity: f32, inside: impl Fn(f64, f64) -> f64) {
    let (x0, x1) = (((center[0] - reach).floor().max(0.0)) as usize, ((center[0] + reach).ceil().max(0.0) as usize).min(w));
    let (y0, y1) = (((center[1] - reach).floor().max(0.0)) as usize, ((center[1] + reach).ceil().max(0.0) as usize).min(h));
    for y in y0..y1 {
        for x in x0..x1 {
            let a = (inside(x as f64 + 0.5, y as f64 + 0.5) + 0.5).clamp(0.0, 1.0) as f32;
            let p = &mut frame[y * w + x];
            *p = *p * (1.0 - a) + intensity * a;
        }
    }
}

/// A filled disc.
pub(crate) fn paint_disc(frame: &mut [f32], w: usize, h: usize, c: [f64; 2], radius: f64, intensity: f32) {
    paint(frame, w, h, c, radius + 1.0, intensity, |x, y| radius - ((x - c[0]).powi(2) + (y - c[1]).powi(2)).sqrt());
}

/// A capsule: the segment `a`-`b` thickened by `radius` (a limb).
pub(crate) fn paint_capsule(frame: &mut [f32], w: usize, h: usize, a: [f64; 2], b: [f64; 2], radius: f64, intensity: f32) {
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let len2 = (dx * dx + dy * dy).max(1e-12);
    let center = [0.5 * (a[0] + b[0]), 0.5 * (a[1] + b[1])];
    let reach = 0.5 * len2.sqrt() + radius + 1.0;
    paint(frame, w, h, center, reach, intensity, |x, y| {
        let s = (((x - a[0]) * dx + (y - a[1]) * dy) / len2).clamp(0.0, 1.0);
        radius - ((x - a[0] - s * dx).powi(2) + (y - a[1] - s * dy).powi(2)).sqrt()
    });
}

/// An endless (or bounded) synthetic recording: a stage seen by a DVS emulator.
#[derive(Clone, Debug)]
pub struct SceneSource<S = Scene> {
    scene: S,
    emulator: DvsEmulator,
    frame: Vec<f32>,
    t_us: i64,
    step_us: i64,
    end_us: Option<i64>,
}

impl<S: Stage> SceneSource<S> {
    /// A source of `scene` stepped every `step_us`, until `duration_us` (None: endless).
    pub fn new(scene: S, geometry: Geometry, params: DvsParams, step_us: i64, duration_us: Option<i64>, seed: u64) -> Self {
        let mut emulator = DvsEmulator::new(geometry, params, seed);
        let mut frame = vec![0.0; usize::from(geometry.width) * usize::from(geometry.height)];
        scene.render(geometry, 0, &mut frame);
        emulator.step(&frame, 0, 0, &mut Vec::new());
        Self { scene, emulator, frame, t_us: 0, step_us: step_us.max(1), end_us: duration_us }
    }

    /// The sensor size.
    pub fn geometry(&self) -> Geometry {
        self.emulator.geometry()
    }

    /// Appends the events of the next step; `false` when the recording has ended.
    pub fn next_step(&mut self, out: &mut Vec<Event>) -> bool {
        if self.end_us.is_some_and(|end| self.t_us >= end) {
            return false;
        }
        let t_next = self.t_us + self.step_us;
        self.scene.render(self.emulator.geometry(), t_next, &mut self.frame);
        self.emulator.step(&self.frame, self.t_us, t_next, out);
        self.t_us = t_next;
        true
    }
}
