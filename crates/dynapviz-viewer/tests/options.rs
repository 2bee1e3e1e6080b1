//! Options: the original's defaults and names, its bugs fixed, and clear messages for bad input.

use std::path::PathBuf;

use dynapviz_viewer::VizOptions;
use dynapviz_viewer::layout::{Plot, layout};
use dynapviz_viewer::options::name_from_image;

fn images(dir: &std::path::Path, names: &[&str]) -> Vec<PathBuf> {
    names
        .iter()
        .map(|n| {
            let p = dir.join(n);
            image::RgbaImage::from_pixel(4, 4, image::Rgba([1, 2, 3, 255])).save(&p).expect("write icon");
            p
        })
        .collect()
}

#[test]
fn names_keep_everything_after_the_index_and_sort_by_number() {
    assert_eq!(name_from_image("01_arm_roll.png".as_ref()), "arm_roll");
    assert_eq!(name_from_image("7_x.jpg".as_ref()), "x");
    assert_eq!(name_from_image("plain.png".as_ref()), "plain");
    let dir = tempfile::tempdir().expect("tempdir");
    images(dir.path(), &["10_ten.png", "2_two_words.png", "1_one.png"]);
    let o = VizOptions { add_readout_plot: true, readout_images: Some(vec![dir.path().to_path_buf()]), ..VizOptions::default() };
    let r = o.resolve(None).expect("resolve");
    assert_eq!(r.feature_names, ["one", "two_words", "ten"]);
    assert_eq!(r.default_feature, 2, "default return value: the last class");
}

#[test]
fn bad_options_have_clear_messages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let icons = images(dir.path(), &["0_a.png", "1_b.png"]);
    let check = |o: VizOptions, want: &str| {
        let e = o.resolve(Some(2)).expect_err(want).to_string();
        assert!(e.contains(want), "`{e}` lacks `{want}`");
    };
    check(
        VizOptions { readout_default_threshold_low: 5, readout_default_threshold_high: 2, ..VizOptions::default() },
        "is above readout_default_threshold_high",
    );
    check(VizOptions { power_monitor_number_of_items: 4, ..VizOptions::default() }, "3 (io, ram, logic) or 5");
    check(VizOptions { feature_names: Some(vec!["a".into()]), ..VizOptions::default() }, "1 feature names for 2 classes");
    check(
        VizOptions { add_readout_plot: true, readout_images: Some(vec![dir.path().join("missing.png")]), ..VizOptions::default() },
        "does not exist",
    );
    check(VizOptions { add_readout_plot: true, ..VizOptions::default() }, "needs readout_images");
    check(VizOptions { readout_images: Some(vec![icons[0].clone()]), ..VizOptions::default() }, "1 readout images for 2 classes");
    check(VizOptions { readout_default_return_value: Some(2), ..VizOptions::default() }, "is not a class");
    check(VizOptions { feature_count: Some(0), ..VizOptions::default() }, "feature_count 0: must be at least 1");
    let ok = VizOptions { add_readout_plot: true, readout_images: Some(icons), ..VizOptions::default() }.resolve(Some(2)).expect("valid");
    assert_eq!(ok.feature_names, ["a", "b"]);
}

#[test]
fn toml_uses_the_original_names_and_rejects_unknown_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("viz.toml");
    std::fs::write(&p, "add_power_monitor_plot = true\npower_monitor_number_of_items = 5\nspike_collection_interval = 250.0\n[spike_count]\nx_span = 12.0\n").expect("write");
    let o = VizOptions::from_toml(&p).expect("parse");
    assert!(o.add_power_monitor_plot && o.power_monitor_number_of_items == 5 && o.spike_collection_interval == 250.0);
    assert_eq!(o.spike_count.x_span, 12.0);
    assert_eq!(o.spike_count.y_label, "Spike Count", "unset fields keep the original's defaults");
    std::fs::write(&p, "add_power_plot = true\n").expect("write");
    let e = VizOptions::from_toml(&p).expect_err("unknown").to_string();
    assert!(e.contains("viz.toml") && e.contains("add_power_plot"), "{e}");
}

#[test]
fn every_layout_exists_and_tiles_the_window() {
    for mask in 1u8..16 {
        let (d, s, r, p) = (mask & 1 != 0, mask & 2 != 0, mask & 4 != 0, mask & 8 != 0);
        let l = layout(d, s, r, p);
        assert_eq!(l.len(), mask.count_ones() as usize, "{mask:04b}");
        let area: f32 = l.iter().map(|(_, f)| (f[2] - f[0]) * (f[3] - f[1])).sum();
        assert!((area - 1.0).abs() < 0.02, "{mask:04b}: plots cover {area} of the window");
        for (i, (_, a)) in l.iter().enumerate() {
            for (_, b) in &l[i + 1..] {
                let overlap = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0) * (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
                assert!(overlap < 1e-4, "{mask:04b}: plots overlap");
            }
        }
    }
    // The original's table where it exists.
    assert_eq!(layout(true, true, true, true)[3], (Plot::Power, [0.0, 0.66, 1.0, 1.0]));
    assert_eq!(layout(true, true, false, false)[0], (Plot::Dvs, [0.0, 0.0, 0.5, 1.0]));
}
