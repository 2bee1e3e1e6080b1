//! The binary end to end: the README's commands work and bad input gives clear errors.

use std::process::Command;

fn dynapviz(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dynapviz")).args(args).output().expect("run dynapviz");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn demo_reads_each_orientation_in_turn() {
    let (ok, out, err) = dynapviz(&["demo", "--seconds", "2"]);
    assert!(ok, "{err}");
    // Table rows: indented, a time in seconds first, the readout last.
    let readouts: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("   ") && l.split_whitespace().next().is_some_and(|t| t.parse::<f64>().is_ok()))
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    let mut order: Vec<&str> = readouts.clone();
    order.dedup();
    assert_eq!(order, ["horizontal", "vertical", "diagonal", "anti-diagonal"], "{out}");
}

#[test]
fn inspect_convert_round_trip_on_generated_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rec = dir.path().join("scene.aedat4");
    let (ok, _, err) = dynapviz(&["demo", "--seconds", "0.4", "--keep", rec.to_str().expect("path")]);
    assert!(ok, "{err}");
    let (ok, a, err) = dynapviz(&["inspect", "--json", rec.to_str().expect("path")]);
    assert!(ok, "{err}");
    let a: serde_json::Value = serde_json::from_str(&a).expect("json");
    for key in ["format", "width", "height", "events", "on", "off", "t_first_us", "t_last_us", "duration", "mean_rate"] {
        assert!(a.get(key).is_some(), "inspect --json lacks `{key}`");
    }
    for ext in ["es", "npy", "csv", "evt3", "aedat3"] {
        let out = dir.path().join(format!("copy.{ext}"));
        let (ok, _, err) = dynapviz(&["convert", rec.to_str().expect("path"), out.to_str().expect("path")]);
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
    assert!(!ok && err.contains("junk.aedat4") && err.contains("at byte") && !err.contains("panicked"), "{err}");
    let (ok, _, err) = dynapviz(&["model", "--model", junk.to_str().expect("path"), "--input-shape", "2,128,128"]);
    assert!(!ok && err.contains("--arch") && !err.contains("panicked"), "{err}");
}

#[test]
fn headless_run_records_input_and_analysis() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rec = dir.path().join("scene.aedat4");
    let (ok, _, err) = dynapviz(&["demo", "--text", "--seconds", "0.5", "--keep", rec.to_str().expect("path")]);
    assert!(ok, "{err}");
    let frames = dir.path().join("frames");
    let copy = dir.path().join("copy.es");
    let (ok, out, err) = dynapviz(&[
        "run",
        "--input",
        rec.to_str().expect("path"),
        "--headless",
        frames.to_str().expect("path"),
        "--frame-every",
        "0.2",
        "--image-size",
        "320,180",
        "--record-input",
        copy.to_str().expect("path"),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("PNG frames"), "{out}");
    assert!(frames.join("dashboard.png").exists());
    let count = |p: &std::path::Path| -> serde_json::Value {
        let (ok, j, err) = dynapviz(&["inspect", "--json", p.to_str().expect("path")]);
        assert!(ok, "{err}");
        serde_json::from_str::<serde_json::Value>(&j).expect("json")["events"].clone()
    };
    assert_eq!(count(&rec), count(&copy), "the recording holds every input event");

    let Some(model) = dynapviz_testkit::shared("fixtures/golden/gesture_r50/model.onnx") else { return };
    let analysis = dir.path().join("analysis.jsonl");
    let (ok, _, err) = dynapviz(&[
        "run",
        "--model",
        model.to_str().expect("path"),
        "--input-shape",
        "2,128,128",
        "--input",
        rec.to_str().expect("path"),
        "--headless",
        frames.to_str().expect("path"),
        "--image-size",
        "320,180",
        "--spike-collection-interval",
        "100",
        "--record-analysis",
        analysis.to_str().expect("path"),
    ]);
    assert!(ok, "{err}");
    let text = std::fs::read_to_string(&analysis).expect("analysis file");
    let counts = text.lines().filter(|l| l.contains("\"counts\"")).count();
    assert!((5..=7).contains(&counts), "0.5 s in 100 ms collections: {counts} lines\n{text}");
    assert!(text.lines().any(|l| l.contains("\"readout\"")) && text.lines().any(|l| l.contains("\"watts\"")));
}

#[test]
fn synth_then_eval_the_builtin_model_on_held_out_seeds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ds = dir.path().join("ds");
    let (ok, _, err) =
        dynapviz(&["synth", "--seed", "1234", "--samples", "2", "--segment-seconds", "0.6", "--out", ds.to_str().expect("path")]);
    assert!(ok, "{err}");
    let png = dir.path().join("confusion.png");
    let (ok, out, err) = dynapviz(&[
        "eval",
        "--model",
        "demo",
        "--input",
        ds.to_str().expect("path"),
        "--json",
        "--confusion-png",
        png.to_str().expect("path"),
    ]);
    assert!(ok, "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).expect("json");
    for key in ["accuracy", "per_class_recall", "confusion", "samples"] {
        assert!(r.get(key).is_some(), "eval --json lacks `{key}`");
    }
    assert_eq!(r["samples"], 8);
    assert!(r["accuracy"].as_f64().expect("accuracy") >= 0.9, "{out}");
    assert!(png.exists());
}
