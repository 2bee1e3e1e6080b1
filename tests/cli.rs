//! The binary end to end: the README's commands work and bad input gives clear errors.

use std::process::Command;

fn dynapviz(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dynapviz"))
        .args(args)
        .output()
        .expect("run dynapviz");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn demo_reads_each_orientation_in_turn() {
    let (ok, out, err) = dynapviz(&["demo", "--seconds", "2"]);
    assert!(ok, "{err}");
    // Table rows: indented, a time in seconds first, the readout last.
    let readouts: Vec<&str> = out
        .lines()
        .filter(|l| {
            l.starts_with("   ")
                && l.split_whitespace()
                    .next()
                    .is_some_and(|t| t.parse::<f64>().is_ok())
        })
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    let mut order: Vec<&str> = readouts.clone();
    order.dedup();
    assert_eq!(
        order,
        ["horizontal", "vertical", "diagonal", "anti-diagonal"],
        "{out}"
    );
}

#[test]
fn inspect_convert_round_trip_on_generated_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rec = dir.path().join("scene.aedat4");
    let (ok, _, err) = dynapviz(&[
        "demo",
        "--seconds",
        "0.4",
        "--keep",
        rec.to_str().expect("path"),
    ]);
    assert!(ok, "{err}");
    let (ok, a, err) = dynapviz(&["inspect", "--json", rec.to_str().expect("path")]);
    assert!(ok, "{err}");
    let a: serde_json::Value = serde_json::from_str(&a).expect("json");
    for key in [
        "format",
        "width",
        "height",
        "events",
        "on",
        "off",
        "t_first_us",
        "t_last_us",
        "duration",
        "mean_rate",
    ] {
        assert!(a.get(key).is_some(), "inspect --json lacks `{key}`");
    }
    for ext in ["es", "npy", "csv", "evt3", "aedat3"] {
        let out = dir.path().join(format!("copy.{ext}"));
        let (ok, _, err) = dynapviz(&[
            "convert",
            rec.to_str().expect("path"),
            out.to_str().expect("path"),
        ]);
        assert!(ok, "{ext}: {err}");
        let (ok, b, err) = dynapviz(&["inspect", "--json", out.to_str().expect("path")]);
        assert!(ok, "{err}");
        let b: serde_json::Value = serde_json::from_str(&b).expect("json");
        for key in ["events", "on", "off", "t_first_us", "t_last_us"] {
            assert_eq!(a[key], b[key], "{ext}: {key}");
        }
    }
}

#[test]
fn bad_input_is_a_clear_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let junk = dir.path().join("junk.aedat4");
    std::fs::write(&junk, b"#!AER-DAT4.0\r\n\x05\x00").expect("write");
    let (ok, _, err) = dynapviz(&["inspect", junk.to_str().expect("path")]);
    assert!(
        !ok && err.contains("junk.aedat4") && err.contains("at byte") && !err.contains("panicked"),
        "{err}"
    );
    let (ok, _, err) = dynapviz(&[
        "model",
        "--model",
        junk.to_str().expect("path"),
        "--input-shape",
        "2,128,128",
    ]);
    assert!(
        !ok && err.contains("--arch") && !err.contains("panicked"),
        "{err}"
    );
}
