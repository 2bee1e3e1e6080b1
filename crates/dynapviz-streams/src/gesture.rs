//! Synthetic gestures: an articulated upper body (torso, head, two-segment arms, hands) performing
//! the 11 classes of IBM's DVS128 Gesture dataset
//! ([`GESTURE_CLASSES`](dynapviz_events::GESTURE_CLASSES)), rendered at the sensor's resolution
//! for the DVS emulator. Subjects differ in size, position, proportions, clothing contrast, sway and
//! tempo, and every performance has its own speed, amplitude and phase, so a classifier must
//! generalise rather than memorise one trajectory. Deterministic by seed.
//!
//! The camera faces the subject: the subject's right arm is on the image's left. "Clockwise" is
//! as the camera sees it (y grows downwards, so a growing angle turns clockwise on screen).

use std::f64::consts::{PI, TAU};

use dynapviz_events::Geometry;

use crate::rng::Rng;
use crate::synth::{Stage, paint_capsule, paint_disc};

/// A person: body proportions, place in the picture, clothing and how they move.
#[derive(Clone, Debug, PartialEq)]
pub struct Subject {
    /// Body unit in pixels (about the sensor's height for an average subject).
    pub unit: f64,
    /// Neck position at rest, pixels.
    pub neck: [f64; 2],
    /// Upper arm and forearm lengths, in body units.
    pub arm: [f64; 2],
    /// Half the shoulder width, in body units.
    pub shoulder: f64,
    /// Limb thickness (radius), in body units.
    pub limb: f64,
    /// Intensities 0..1: background, shirt (torso and upper arms), skin (head, forearms, hands).
    pub intensity: [f32; 3],
    /// Body sway: amplitude in body units, frequency in Hz, phase.
    pub sway: [f64; 3],
    /// Tempo factor: this subject's gestures are this much faster than the average.
    pub tempo: f64,
}

impl Subject {
    /// A random subject for a sensor of `geometry`.
    pub fn random(geometry: Geometry, rng: &mut Rng) -> Self {
        let size = f64::from(geometry.width.min(geometry.height));
        let unit = size * rng.range(0.8, 1.1);
        let [background, shirt, skin] = clothing(rng);
        Self {
            unit,
            neck: [size * 0.5 + rng.range(-0.08, 0.08) * size, size * rng.range(0.3, 0.42)],
            arm: [rng.range(0.16, 0.2), rng.range(0.15, 0.19)],
            shoulder: rng.range(0.13, 0.17),
            limb: rng.range(0.032, 0.048),
            intensity: [background, shirt, skin],
            sway: [rng.range(0.0, 0.025), rng.range(0.15, 0.5), rng.range(0.0, TAU)],
            tempo: rng.range(0.8, 1.25),
        }
    }
}

/// Background, shirt and skin intensities, pairwise different enough in log intensity that
/// every part of the figure shows against the background and forearms show over the torso.
/// The subject is lit and brighter than the room: were it darker, a dark arm turning one way
/// would give exactly the events of a bright arm turning the other (leading and trailing edges
/// swap polarity), and no classifier could tell clockwise from counter-clockwise.
fn clothing(rng: &mut Rng) -> [f32; 3] {
    // Work in log intensity (what a DVS pixel sees), between 0.08 and 0.97.
    let (lo, hi) = (0.08f64.ln(), 0.97f64.ln());
    let (figure, parts) = (0.7, 0.35);
    let background = rng.range(lo, hi - figure - parts - 0.1);
    let room = hi - background - figure;
    let a = rng.range(0.0, room - parts);
    let b = rng.range(a + parts, room);
    let (shirt, skin) = if rng.below(2) == 0 { (a, b) } else { (b, a) };
    let level = |l: f64| (l.exp() - 0.02) as f32;
    [level(background), level(background + figure + shirt), level(background + figure + skin)]
}

/// One performance of a gesture: who, which class, and its own tempo, amplitude and phase.
#[derive(Clone, Debug, PartialEq)]
pub struct Gesture {
    /// The performer.
    pub subject: Subject,
    /// Index into [`GESTURE_CLASSES`](dynapviz_events::GESTURE_CLASSES) (label - 1).
    pub class: usize,
    /// Seconds per cycle.
    pub period: f64,
    /// Phase at t = 0, radians.
    pub phase: f64,
    /// Amplitude factor around the class's typical movement.
    pub amplitude: f64,
    /// +1 or -1: the free direction of a class (which way an arm roll turns).
    pub direction: f64,
    /// The random movement of `other_gestures`: per hand and axis, two (amplitude, Hz, phase).
    pub wander: [[[f64; 3]; 4]; 2],
    /// Time origin of the performance, µs (the gesture's own clock starts here).
    pub t0_us: i64,
}

/// Typical seconds per cycle of each class.
const PERIODS: [[f64; 2]; 11] = [
    [0.45, 0.75], // hand_clapping
    [0.45, 0.8],  // right_hand_wave
    [0.45, 0.8],  // left_hand_wave
    [0.9, 1.5],   // right_arm_clockwise
    [0.9, 1.5],   // right_arm_counter_clockwise
    [0.9, 1.5],   // left_arm_clockwise
    [0.9, 1.5],   // left_arm_counter_clockwise
    [0.4, 0.65],  // arm_roll
    [0.4, 0.65],  // air_drums
    [0.25, 0.45], // air_guitar
    [1.0, 2.0],   // other_gestures
];

impl Gesture {
    /// A random performance of `class` by `subject`, starting at `t0_us`.
    pub fn random(subject: Subject, class: usize, t0_us: i64, rng: &mut Rng) -> Self {
        let [lo, hi] = PERIODS[class.min(10)];
        let period = rng.range(lo, hi) / subject.tempo;
        let mut wander = [[[0.0; 3]; 4]; 2];
        for hand in &mut wander {
            for term in hand.iter_mut() {
                *term = [rng.range(0.02, 0.09), rng.range(0.3, 1.6), rng.range(0.0, TAU)];
            }
        }
        Self {
            subject,
            class: class.min(10),
            period,
            phase: rng.range(0.0, TAU),
            amplitude: rng.range(0.8, 1.2),
            direction: if rng.below(2) == 0 { 1.0 } else { -1.0 },
            wander,
            t0_us,
        }
    }

    /// Joint positions at `t_us`.
    pub fn pose(&self, t_us: i64) -> Pose {
        let s = &self.subject;
        let u = s.unit;
        let t = (t_us - self.t0_us) as f64 * 1e-6;
        let sway = s.sway[0] * u * (TAU * s.sway[1] * t + s.sway[2]).sin();
        let neck = [s.neck[0] + sway, s.neck[1] + 0.3 * sway.abs()];
        // Side: -1 is the subject's right (image left), +1 the subject's left.
        let shoulder = |side: f64| [neck[0] + side * s.shoulder * u, neck[1] + 0.03 * u];
        let rest = |side: f64| {
            let sh = shoulder(side);
            [sh[0] + side * 0.07 * u, sh[1] + 0.9 * (s.arm[0] + s.arm[1]) * u]
        };
        let w = TAU * t / self.period + self.phase;
        let a = self.amplitude;
        let reach = (s.arm[0] + s.arm[1]) * u;
        let chest = [neck[0], neck[1] + 0.2 * u];
        let (right, left) = (-1.0, 1.0);
        let circle = |side: f64, dir: f64| {
            let sh = shoulder(side);
            let c = [sh[0] + side * 0.08 * u, sh[1]];
            let r = 0.85 * reach;
            [c[0] + r * (dir * w).cos(), c[1] + r * (dir * w).sin()]
        };
        let wave = |side: f64| {
            let sh = shoulder(side);
            [sh[0] + side * (0.1 * u + 0.08 * a * u * w.sin()), sh[1] - 0.2 * u + 0.015 * u * (2.0 * w).cos()]
        };
        let hands = match self.class {
            0 => {
                let gap = 0.025 * u + 0.16 * a * u * (0.5 + 0.5 * w.cos());
                [[chest[0] - gap, chest[1]], [chest[0] + gap, chest[1]]]
            }
            1 => [wave(right), rest(left)],
            2 => [rest(right), wave(left)],
            3 => [circle(right, 1.0), rest(left)],
            4 => [circle(right, -1.0), rest(left)],
            5 => [rest(right), circle(left, 1.0)],
            6 => [rest(right), circle(left, -1.0)],
            7 => {
                let r = 0.065 * a * u;
                let c = [chest[0], chest[1] + 0.04 * u];
                let th = self.direction * w;
                [[c[0] - 0.04 * u + r * th.cos(), c[1] + r * th.sin()], [c[0] + 0.04 * u - r * th.cos(), c[1] - r * th.sin()]]
            }
            8 => {
                let strike = |side: f64, ph: f64| {
                    let sh = shoulder(side);
                    let lift = (w + ph).sin().max(0.0).powf(0.7);
                    [sh[0] + side * 0.1 * u, sh[1] + 0.27 * u - 0.12 * a * u * lift]
                };
                [strike(right, 0.0), strike(left, PI)]
            }
            9 => {
                let sh = shoulder(left);
                let fret = [sh[0] + 0.27 * u, sh[1] + 0.1 * u + 0.015 * u * (w / 3.0).sin()];
                let strum = [neck[0] - 0.05 * u + 0.015 * u * w.cos(), neck[1] + 0.32 * u + 0.065 * a * u * w.sin()];
                [strum, fret]
            }
            _ => {
                let tt = t / self.period * 1.5;
                let mut hands = [rest(right), rest(left)];
                for (side, (hand, terms)) in hands.iter_mut().zip(&self.wander).enumerate() {
                    // Start from a random place between rest and shoulder height.
                    hand[1] -= (0.15 + 0.1 * side as f64) * u * a;
                    for (axis, term) in terms.iter().enumerate() {
                        hand[axis / 2] += term[0] * u * (TAU * term[1] * tt + term[2]).sin();
                    }
                }
                hands
            }
        };
        let arm = |side: f64, hand: [f64; 2]| -> [[f64; 2]; 3] {
            let sh = shoulder(side);
            let (elbow, hand) = two_link(sh, hand, s.arm[0] * u, s.arm[1] * u, side, neck[0]);
            [sh, elbow, hand]
        };
        Pose {
            neck,
            head: [neck[0], neck[1] - 0.11 * u],
            hip: [neck[0] - 0.3 * sway, neck[1] + 0.45 * u],
            right: arm(right, hands[0]),
            left: arm(left, hands[1]),
        }
    }
}

/// Solves a two-segment arm reaching from `shoulder` towards `target`: the elbow bends outwards
/// (away from the body's midline `mid_x`) and down, the way arms do; out-of-reach targets are
/// approached along the line.
fn two_link(shoulder: [f64; 2], target: [f64; 2], l1: f64, l2: f64, side: f64, mid_x: f64) -> ([f64; 2], [f64; 2]) {
    let (dx, dy) = (target[0] - shoulder[0], target[1] - shoulder[1]);
    let d = (dx * dx + dy * dy).sqrt().clamp((l1 - l2).abs() + 1e-3, l1 + l2 - 1e-3);
    let base = dy.atan2(dx);
    let alpha = ((l1 * l1 + d * d - l2 * l2) / (2.0 * l1 * d)).clamp(-1.0, 1.0).acos();
    let candidate = |sign: f64| {
        let a = base + sign * alpha;
        [shoulder[0] + l1 * a.cos(), shoulder[1] + l1 * a.sin()]
    };
    let outwards = |e: [f64; 2]| side * (e[0] - mid_x) + 0.3 * (e[1] - shoulder[1]);
    let (e1, e2) = (candidate(1.0), candidate(-1.0));
    let elbow = if outwards(e1) >= outwards(e2) { e1 } else { e2 };
    let hand = [shoulder[0] + d * base.cos(), shoulder[1] + d * base.sin()];
    (elbow, hand)
}

/// Joint positions, pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pose {
    /// Base of the neck.
    pub neck: [f64; 2],
    /// Centre of the head.
    pub head: [f64; 2],
    /// Centre of the hips.
    pub hip: [f64; 2],
    /// Subject's right arm: shoulder, elbow, hand.
    pub right: [[f64; 2]; 3],
    /// Subject's left arm: shoulder, elbow, hand.
    pub left: [[f64; 2]; 3],
}

impl Gesture {
    /// Paints `pose` over `frame` (which holds the background already).
    pub fn paint_pose(&self, pose: &Pose, geometry: Geometry, frame: &mut [f32]) {
        let s = &self.subject;
        let (w, h) = (usize::from(geometry.width), usize::from(geometry.height));
        let u = s.unit;
        let [_, shirt, skin] = s.intensity;
        paint_capsule(frame, w, h, pose.neck, pose.hip, 0.11 * u, shirt);
        paint_capsule(frame, w, h, pose.right[0], pose.left[0], 0.035 * u, shirt);
        paint_disc(frame, w, h, pose.head, 0.075 * u, skin);
        for arm in [pose.right, pose.left] {
            paint_capsule(frame, w, h, arm[0], arm[1], s.limb * u * 1.15, shirt);
            paint_capsule(frame, w, h, arm[1], arm[2], s.limb * u, skin);
            paint_disc(frame, w, h, arm[2], s.limb * u * 1.4, skin);
        }
    }
}

impl Stage for Gesture {
    fn render(&self, geometry: Geometry, t_us: i64, frame: &mut [f32]) {
        frame.fill(self.subject.intensity[0]);
        self.paint_pose(&self.pose(t_us), geometry, frame);
    }
}

/// A picture of `class` for the readout plot, `size` x `size` RGB bytes: an average subject in
/// the middle of the gesture, with the trail its hands leave over one cycle.
pub fn icon_rgb(class: usize, size: u16) -> Vec<u8> {
    let g = Geometry { width: size, height: size };
    let n = usize::from(size) * usize::from(size);
    let u = f64::from(size) * 0.95;
    let subject = Subject {
        unit: u,
        neck: [f64::from(size) * 0.5, f64::from(size) * 0.36],
        arm: [0.18, 0.17],
        shoulder: 0.15,
        limb: 0.035,
        intensity: [0.0, 1.0, 1.0],
        sway: [0.0, 0.0, 0.0],
        tempo: 1.0,
    };
    let mut rng = Rng::new(class as u64);
    let mut gesture = Gesture::random(subject, class, 0, &mut rng);
    gesture.amplitude = 1.0;
    gesture.direction = 1.0;
    gesture.phase = 0.0;
    let period_us = (gesture.period * 1e6) as i64;
    let (mut trail, mut body, mut layer) = (vec![0f32; n], vec![0f32; n], vec![0f32; n]);
    let steps = 24;
    for k in 0..steps {
        layer.fill(0.0);
        let pose = gesture.pose(period_us * k / steps);
        for arm in [pose.right, pose.left] {
            paint_disc(&mut layer, usize::from(size), usize::from(size), arm[2], 0.045 * u, 1.0);
        }
        let weight = 0.25 + 0.75 * k as f32 / steps as f32;
        trail.iter_mut().zip(&layer).for_each(|(t, &c)| *t = t.max(c * weight));
    }
    gesture.paint_pose(&gesture.pose(period_us * (steps - 1) / steps), g, &mut body);
    let (bg, hue, fg) = ([30.0, 34.0, 46.0], [240.0, 176.0, 64.0], [222.0, 228.0, 238.0]);
    let mut rgb = Vec::with_capacity(3 * n);
    for (&t, &b) in trail.iter().zip(&body) {
        // The trail shows through the body, so movement in front of the torso stays visible.
        let t = t * 0.85;
        for c in 0..3 {
            let v = bg[c] * (1.0 - b) + fg[c] * b;
            rgb.push((v * (1.0 - t) + hue[c] * t).round().clamp(0.0, 255.0) as u8);
        }
    }
    rgb
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gesture(class: usize, seed: u64) -> Gesture {
        let mut rng = Rng::new(seed);
        let subject = Subject::random(Geometry::DVS128, &mut rng);
        Gesture::random(subject, class, 0, &mut rng)
    }

    #[test]
    fn limbs_keep_their_length_in_every_pose() {
        for class in 0..dynapviz_events::GESTURE_CLASSES.len() {
            let g = gesture(class, class as u64);
            let u = g.subject.unit;
            for t in (0..2_000_000).step_by(37_000) {
                let p = g.pose(t);
                for arm in [p.right, p.left] {
                    let upper = ((arm[1][0] - arm[0][0]).powi(2) + (arm[1][1] - arm[0][1]).powi(2)).sqrt();
                    let fore = ((arm[2][0] - arm[1][0]).powi(2) + (arm[2][1] - arm[1][1]).powi(2)).sqrt();
                    assert!((upper - g.subject.arm[0] * u).abs() < 1e-6, "class {class}: upper arm {upper}");
                    assert!((fore - g.subject.arm[1] * u).abs() < 1e-3, "class {class}: forearm {fore}");
                }
            }
        }
    }

    #[test]
    fn one_armed_gestures_move_only_that_arm() {
        let travel = |g: &Gesture, left: bool| {
            let hand = |t| {
                let p = g.pose(t);
                if left { p.left[2] } else { p.right[2] }
            };
            let mut path = 0.0;
            for t in (0..1_000_000).step_by(10_000) {
                let (a, b) = (hand(t), hand(t + 10_000));
                path += ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt();
            }
            path
        };
        for (class, moving_left) in [(1, false), (2, true), (3, false), (4, false), (5, true), (6, true)] {
            let g = gesture(class, 7);
            let (moving, still) = (travel(&g, moving_left), travel(&g, !moving_left));
            assert!(
                moving > 4.0 * still + 20.0,
                "{}: moving hand {moving:.0} px, other hand {still:.0} px",
                dynapviz_events::GESTURE_CLASSES[class]
            );
        }
    }

    #[test]
    fn clockwise_turns_clockwise_on_screen() {
        // Cross product of successive hand displacements: positive = clockwise with y down.
        let turn = |class: usize, left: bool| {
            let g = gesture(class, 3);
            let hand = |t| {
                let p = g.pose(t);
                if left { p.left[2] } else { p.right[2] }
            };
            let mut sum = 0.0;
            for t in (0..2_000_000).step_by(20_000) {
                let (a, b, c) = (hand(t), hand(t + 20_000), hand(t + 40_000));
                sum += (b[0] - a[0]) * (c[1] - b[1]) - (b[1] - a[1]) * (c[0] - b[0]);
            }
            sum
        };
        assert!(turn(3, false) > 0.0 && turn(4, false) < 0.0);
        assert!(turn(5, true) > 0.0 && turn(6, true) < 0.0);
    }

    #[test]
    fn rendering_is_deterministic_and_shows_the_figure() {
        let g = gesture(0, 11);
        let mut a = vec![0.0; 128 * 128];
        let mut b = vec![0.0; 128 * 128];
        g.render(Geometry::DVS128, 123_456, &mut a);
        gesture(0, 11).render(Geometry::DVS128, 123_456, &mut b);
        assert_eq!(a, b);
        let bg = g.subject.intensity[0];
        let figure = a.iter().filter(|&&v| (v - bg).abs() > 0.05).count();
        assert!(figure > 128 * 128 / 20, "figure covers only {figure} pixels");
    }

    #[test]
    fn every_part_of_every_subject_stands_out() {
        let log = |v: f32| (f64::from(v) + 0.02).ln();
        for seed in 0..500 {
            let [bg, shirt, skin] = Subject::random(Geometry::DVS128, &mut Rng::new(seed)).intensity;
            assert!(log(shirt) - log(bg) >= 0.7 - 1e-6 && log(skin) - log(bg) >= 0.7 - 1e-6, "seed {seed}: {bg} {shirt} {skin}");
            assert!(skin <= 1.0 && bg > 0.0, "seed {seed}: {bg} {skin}");
            assert!((log(skin) - log(shirt)).abs() >= 0.35, "seed {seed}: shirt {shirt}, skin {skin}");
        }
    }
}
