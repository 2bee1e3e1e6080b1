//! What one picture of the live view (`--serve`) costs: the dashboard with all four plots drawn
//! by the CPU rasterizer, then encoded as PNG the way the live view does (RGB) and the way
//! `--headless` writes files (RGBA), with the sizes; and what the same frame costs as SVG as
//! well (`--svg`, the page's "save SVG"). Prints numbers; run with
//! `cargo bench -p dynapviz-viewer --bench picture`.

use std::time::Instant;

use dynapviz_chip::PowerSample;
use dynapviz_events::Geometry;
use dynapviz_streams::session::{Analysis, DisplayFrame};
use dynapviz_viewer::{Dashboard, Headless, VizOptions};

const PICTURES: usize = 20;

/// A busy dashboard: a 128x128 DVS frame with a tenth of the pixels active, 60 collections of 11
/// classes, 5-rail power, a readout.
fn busy_dashboard(icons: &std::path::Path) -> Dashboard {
    let options = VizOptions {
        add_readout_plot: true,
        add_power_monitor_plot: true,
        power_monitor_number_of_items: 5,
        readout_images: Some(vec![icons.to_path_buf()]),
        ..VizOptions::default()
    };
    let mut d = Dashboard::new(options.resolve(Some(11)).expect("options")).expect("dashboard");
    let mut uniform = dynapviz_testkit::uniform(7);
    let n = 128 * 128;
    let mut plane = || (0..n).map(|_| if uniform() < 0.1 { 2.0 * uniform() as f32 } else { 0.0 }).collect::<Vec<f32>>();
    let (on, off) = (plane(), plane());
    d.on_frame(&DisplayFrame {
        t_us: 0,
        geometry: Geometry::DVS128,
        on,
        off,
        newest_input: Instant::now(),
        events_total: 1 << 20,
        heat: None,
    });
    for k in 0..60u64 {
        let t_us = (k as i64 + 1) * 250_000;
        d.on_analysis(&Analysis::Counts { t_us, counts: (0..11).map(|c| (k * (c + 3)) % 40).collect() });
        for channel in 0..5u8 {
            let value = 1e-4 * f64::from(channel + 1) + 1e-6 * k as f64;
            d.on_analysis(&Analysis::Power(PowerSample { channel, value, timestamp: t_us }));
        }
        d.on_analysis(&Analysis::Readout { t_us, feature: (k % 11) as usize, predicted: true });
    }
    d
}

fn icons(dir: &std::path::Path) {
    for i in 0..11 {
        image::RgbaImage::from_fn(64, 64, |x, y| image::Rgba([(x * 4) as u8, (y * 4) as u8, (i * 20) as u8, 255]))
            .save(dir.join(format!("{i}_class{i}.png")))
            .expect("icon");
    }
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    icons(dir.path());
    let mut dashboard = busy_dashboard(dir.path());
    for (w, h) in [(1280, 720), (640, 360)] {
        let mut renderer = Headless::new(w, h);
        renderer.render(&mut dashboard); // fonts and textures
        let (mut draw, mut served, mut written) = (0.0, 0.0, 0.0);
        let (mut served_bytes, mut written_bytes) = (0, 0);
        for _ in 0..PICTURES {
            let t = Instant::now();
            let rgba = renderer.render(&mut dashboard);
            draw += t.elapsed().as_secs_f64();
            let t = Instant::now();
            served_bytes += renderer.encode_png(&rgba).expect("PNG").len();
            served += t.elapsed().as_secs_f64();
            let t = Instant::now();
            let mut png = std::io::Cursor::new(Vec::new());
            image::RgbaImage::from_raw(w as u32, h as u32, rgba).expect("size").write_to(&mut png, image::ImageFormat::Png).expect("PNG");
            written += t.elapsed().as_secs_f64();
            written_bytes += png.into_inner().len();
        }
        let (mut both, mut svg_bytes) = (0.0, 0);
        for _ in 0..PICTURES {
            let t = Instant::now();
            svg_bytes += renderer.render_and_svg(&mut dashboard).1.len();
            both += t.elapsed().as_secs_f64();
        }
        let ms = |s: f64| s * 1e3 / PICTURES as f64;
        let kb = |b: usize| b as f64 / 1e3 / PICTURES as f64;
        println!(
            "{w}x{h}: draw {:.1} ms, PNG as served (RGB) {:.1} ms ({:.0} kB), as written by --headless (RGBA) {:.1} ms ({:.0} kB): {:.1} pictures/s on one core for the live view",
            ms(draw),
            ms(served),
            kb(served_bytes),
            ms(written),
            kb(written_bytes),
            1e3 / (ms(draw) + ms(served)),
        );
        println!(
            "{w}x{h}: drawn and written as SVG too {:.1} ms (SVG {:.0} kB): the SVG costs {:.1} ms",
            ms(both),
            kb(svg_bytes),
            ms(both) - ms(draw)
        );
    }
}
