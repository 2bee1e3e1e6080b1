//! Each layout rendered headless from known input and compared with the PNGs checked in under
//! `tests/snapshots/` (UPDATE_SNAPSHOTS=1 rewrites them). The sinabs gesture icons and names
//! show in the readout. The SVG of a frame holds what its PNG shows.

use std::path::{Path, PathBuf};
use std::time::Instant;

use dynapviz_chip::PowerSample;
use dynapviz_events::Geometry;
use dynapviz_streams::session::{Analysis, DisplayFrame};
use dynapviz_streams::source::LinkDown;
use dynapviz_viewer::dashboard::ViewStats;
use dynapviz_viewer::{Dashboard, Headless, VizOptions};

fn icons(dir: &Path, n: usize) -> Vec<PathBuf> {
    (0..n)
        .map(|i| {
            let p = dir.join(format!("{i}_class{i}.png"));
            let hue = [[230, 90, 90], [90, 200, 110], [90, 140, 240]][i % 3];
            image::RgbaImage::from_fn(48, 48, |x, y| {
                if (x / 8 + y / 8) % 2 == 0 { image::Rgba([hue[0], hue[1], hue[2], 255]) } else { image::Rgba([30, 30, 40, 255]) }
            })
            .save(&p)
            .expect("icon");
            p
        })
        .collect()
}

/// Feeds a fixed story: a DVS frame with a diagonal of ON and a ring of OFF, 20 collections of
/// counts, a readout of class 1 and 5-rail power.
fn feed(d: &mut Dashboard) {
    let g = Geometry::new(64, 64);
    let (mut on, mut off) = (vec![0.0f32; 64 * 64], vec![0.0f32; 64 * 64]);
    for i in 0..64 {
        on[i * 64 + i] = 2.0;
        let a = i as f32 / 64.0 * std::f32::consts::TAU;
        let (x, y) = ((32.0 + 20.0 * a.cos()) as usize, (32.0 + 20.0 * a.sin()) as usize);
        off[y * 64 + x] = 2.0;
    }
    d.on_frame(&DisplayFrame { t_us: 0, geometry: g, on, off, newest_input: Instant::now(), events_total: 1234, heat: None });
    for k in 0..20u64 {
        let t_us = (k as i64 + 1) * 500_000;
        d.on_analysis(&Analysis::Counts { t_us, counts: vec![k % 7, (k * 3) % 11, 20 - k] });
        for ch in 0..5u8 {
            d.on_analysis(&Analysis::Power(PowerSample {
                channel: ch,
                value: 1e-4 * f64::from(ch + 1) + 1e-5 * k as f64,
                timestamp: t_us,
            }));
        }
    }
    d.on_analysis(&Analysis::Readout { t_us: 10_000_000, feature: 1, predicted: true });
    d.stats = ViewStats {
        fps: 60.0,
        latency_ms: Some((1.0, 2.0)),
        skipped_frames: 3,
        events: 1234,
        paused: false,
        speed: 1.0,
        behind_s: 0.0,
        pauses_cut_s: 0.0,
        live: false,
        dropped_events: 0,
        ..ViewStats::default()
    };
}

/// A dashboard of 3 classes with the plots asked for (DVS, spike count, readout, power), its
/// readout pictures `images`, given the story of [`feed`].
fn fed_dashboard(images: &[PathBuf], [dvs, spike, readout, power]: [bool; 4]) -> Dashboard {
    let o = VizOptions {
        add_dvs_plot: dvs,
        add_spike_count_plot: spike,
        add_readout_plot: readout,
        add_power_monitor_plot: power,
        power_monitor_number_of_items: 5,
        readout_images: Some(images.to_vec()),
        dvs_shape: [64, 64],
        ..VizOptions::default()
    };
    let mut d = Dashboard::new(o.resolve(Some(3)).expect("options")).expect("dashboard");
    feed(&mut d);
    d
}

fn compare(name: &str, rgba: &[u8], w: usize, h: usize) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots").join(format!("{name}.png"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        image::save_buffer(&path, rgba, w as u32, h as u32, image::ExtendedColorType::Rgba8).expect("write snapshot");
        return;
    }
    let want =
        image::open(&path).unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_SNAPSHOTS=1 to create it)", path.display())).to_rgba8();
    assert_eq!((want.width() as usize, want.height() as usize), (w, h), "{name}: size");
    let differing =
        want.as_raw().chunks(4).zip(rgba.chunks(4)).filter(|(a, b)| a.iter().zip(b.iter()).any(|(x, y)| x.abs_diff(*y) > 16)).count();
    if differing * 200 > w * h {
        let got = path.with_extension("actual.png");
        let _ = image::save_buffer(&got, rgba, w as u32, h as u32, image::ExtendedColorType::Rgba8);
        panic!("{name}: {differing} of {} pixels differ from the snapshot (actual written to {})", w * h, got.display());
    }
}

#[test]
fn every_layout_matches_its_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let images = icons(dir.path(), 3);
    for (name, dvs, spike, readout, power) in [
        ("d", true, false, false, false),
        ("d_s", true, true, false, false),
        ("d_r", true, false, true, false),
        ("d_p", true, false, false, true),
        ("d_s_p", true, true, false, true),
        ("d_r_p", true, false, true, true),
        ("d_s_r", true, true, true, false),
        ("d_s_r_p", true, true, true, true),
    ] {
        let mut d = fed_dashboard(&images, [dvs, spike, readout, power]);
        let mut h = Headless::new(640, 360);
        let rgba = h.render(&mut d);
        compare(name, &rgba, 640, 360);
    }
}

#[test]
fn the_sinabs_gesture_icons_and_names_show() {
    let Some(icons) = dynapviz_testkit::shared("fixtures/sinabs-gesture/icons") else { return };
    let o = VizOptions { add_readout_plot: true, add_power_monitor_plot: true, readout_images: Some(vec![icons]), ..VizOptions::default() };
    let r = o.resolve(Some(11)).expect("options");
    assert_eq!(r.feature_names[..3], ["armroll", "handclap", "lefthandclockwise"]);
    assert_eq!(r.feature_names[10], "other");
    assert!(r.images[3].ends_with("04_lefthandcounterclockwise.png"));
    let mut d = Dashboard::new(r).expect("dashboard");
    d.on_analysis(&Analysis::Readout { t_us: 0, feature: 3, predicted: true });
    let mut h = Headless::new(960, 540);
    let rgba = h.render(&mut d);
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/sinabs-gesture-dashboard.png");
    let _ = image::save_buffer(&out, &rgba, 960, 540, image::ExtendedColorType::Rgba8);
    // The readout column shows the icon: compare its mean colour with the icon's own.
    let icon = image::open(&d.resolved().images[3]).expect("icon").to_rgba8();
    let mean = |px: &mut dyn Iterator<Item = [u8; 4]>| {
        let (mut s, mut n) = ([0f64; 3], 0f64);
        for p in px {
            for k in 0..3 {
                s[k] += f64::from(p[k]);
            }
            n += 1.0;
        }
        s.map(|v| v / n.max(1.0))
    };
    let icon_mean = mean(&mut icon.pixels().map(|p| p.0));
    let bright = mean(
        &mut rgba
            .chunks(4)
            .enumerate()
            .filter(|(i, _)| (i % 960) > 660 && (i / 960) > 60 && (i / 960) < 300)
            .map(|(_, p)| [p[0], p[1], p[2], p[3]]),
    );
    assert!(bright.iter().zip(icon_mean).all(|(a, b)| (a - b).abs() < 60.0), "readout area {bright:?} vs icon {icon_mean:?}");
}

/// The SVG of the whole dashboard is well-formed XML and holds the same frame as the PNG drawn
/// with it: the plots' lines with every point, the labels as text, the DVS and readout
/// pictures texel for texel, every clip it refers to.
#[test]
fn the_svg_holds_the_lines_text_and_pictures_of_the_frame() {
    let dir = tempfile::tempdir().expect("tempdir");
    let images = icons(dir.path(), 3);
    let mut d = fed_dashboard(&images, [true; 4]);
    let (rgba, svg) = Headless::new(640, 360).render_and_svg(&mut d);
    compare("d_s_r_p", &rgba, 640, 360);
    let doc = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{e}"));
    let root = doc.root_element();
    assert_eq!((root.tag_name().name(), root.attribute("width"), root.attribute("height")), ("svg", Some("640"), Some("360")));
    let all = |tag: &str| root.descendants().filter(|n| n.tag_name().name() == tag).collect::<Vec<_>>();
    // Labels: the plots' titles, the class names and rails in the legends, the status line.
    let texts: Vec<String> = all("text").iter().filter_map(|n| n.text().map(str::to_string)).collect();
    for want in ["DVS", "Spike count", "Readout", "Power (estimate)", "class0", "class2", "pixel-analog", "Time (s)"] {
        assert!(texts.iter().any(|t| t == want), "{want:?} not among {texts:?}");
    }
    assert!(texts.iter().any(|t| t.contains("skipped frames 3")), "{texts:?}");
    // Lines: 3 classes and 5 rails, each with its 20 values (as polylines of 20 points or more).
    let long_lines = all("polyline").iter().filter(|n| n.attribute("points").is_some_and(|p| p.split(' ').count() >= 20)).count();
    assert!(long_lines >= 8, "{long_lines} polylines of 20 points or more");
    // Pictures: the DVS frame (64x64, the diagonal lit) and the readout's icon of class 1.
    let pictures: Vec<image::RgbaImage> = all("image")
        .iter()
        .map(|n| {
            let data = n.attribute("href").and_then(|h| h.strip_prefix("data:image/png;base64,")).expect("an embedded PNG");
            image::load_from_memory(&base64(data)).expect("a PNG").to_rgba8()
        })
        .collect();
    assert_eq!(pictures.len(), 2);
    let dvs = pictures.iter().find(|p| p.dimensions() == (64, 64)).expect("the DVS picture");
    let on = dvs.get_pixel(0, 0);
    let lit = (0..64).filter(|&i| dvs.get_pixel(i, i) == on).count();
    assert!(lit >= 60 && on != dvs.get_pixel(63, 0), "{lit} of the diagonal lit as (0, 0): {on:?}, the corner {:?}", dvs.get_pixel(63, 0));
    let icon = image::open(&images[1]).expect("icon").to_rgba8();
    assert!(pictures.contains(&icon), "the readout shows class 1's icon, texel for texel");
    // Every clip referred to is defined.
    let clips: Vec<&str> = all("clipPath").iter().filter_map(|n| n.attribute("id")).collect();
    for g in all("g") {
        if let Some(url) = g.attribute("clip-path") {
            let id = url.trim_start_matches("url(#").trim_end_matches(')');
            assert!(clips.contains(&id), "{url} undefined");
        }
    }
}

/// Decodes standard base64.
fn base64(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let vals: Vec<u32> = s.bytes().filter(|&b| b != b'=').map(|b| ALPHABET.iter().position(|&a| a == b).expect("base64") as u32).collect();
    let mut out = Vec::new();
    for chunk in vals.chunks(4) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &v)| n | v << (18 - 6 * i));
        out.extend(&[(n >> 16) as u8, (n >> 8) as u8, n as u8][..chunk.len() - 1]);
    }
    out
}

/// A live stream that is down is said so over the DVS picture (in amber), not left to look
/// like a quiet scene.
#[test]
fn a_lost_live_stream_is_noted_over_the_dvs_picture() {
    let o = VizOptions { dvs_shape: [64, 64], ..VizOptions::default() };
    let mut d = Dashboard::new(o.resolve(Some(3)).expect("options")).expect("dashboard");
    feed(&mut d);
    d.stats.live = true;
    let amber = |d: &mut Dashboard| {
        let rgba = Headless::new(640, 360).render(d);
        rgba.chunks_exact(4).filter(|p| p[0] > 200 && (140..230).contains(&p[1]) && p[2] < 130).count()
    };
    let up = amber(&mut d);
    d.stats.link_down =
        Some(LinkDown { since: std::time::Instant::now(), tries: 2, why: "tcp://camera:7777: Connection refused".to_string() });
    let down = amber(&mut d);
    assert!(down > up + 200, "amber pixels: {up} while up, {down} while down");
}
