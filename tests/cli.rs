//! The binary end to end: the README's commands work and bad input gives clear errors.

use std::process::Command;

fn dynapviz(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dynapviz")).args(args).output().expect("run dynapviz");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn demo_reads_the_gestures_it_performs() {
    let (ok, out, err) = dynapviz(&["demo", "--text", "--segment-seconds", "1.5"]);
    assert!(ok, "{err}");
    // "4. R of J readouts within one gesture were right; ..."
    let line = out.lines().find(|l| l.starts_with("4. ")).unwrap_or_else(|| panic!("no summary line:\n{out}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let (right, judged): (u32, u32) = (words[1].parse().expect("right"), words[3].parse().expect("judged"));
    // Readouts every 500 ms; those whose window lies within one 1.5 s gesture: 2 per gesture.
    assert!(judged >= 20, "{out}");
    // No reset between gestures: a readout may still carry spikes of the previous gesture.
    assert!(f64::from(right) >= 0.8 * f64::from(judged), "{out}");
}

#[test]
fn inspect_convert_round_trip_on_generated_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ok, _, err) = dynapviz(&["synth", "--samples", "1", "--segment-seconds", "0.05", "--out", dir.path().to_str().expect("path")]);
    assert!(ok, "{err}");
    let rec = dir.path().join("user01_synthetic00.aedat");
    let (ok, a, err) = dynapviz(&["inspect", "--json", rec.to_str().expect("path")]);
    assert!(ok, "{err}");
    let a: serde_json::Value = serde_json::from_str(&a).expect("json");
    for key in ["format", "width", "height", "events", "on", "off", "t_first_us", "t_last_us", "duration", "mean_rate"] {
        assert!(a.get(key).is_some(), "inspect --json lacks `{key}`");
    }
    for ext in ["es", "npy", "csv", "evt3", "evt21", "aedat4"] {
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

/// A conversion that fails halfway (the input goes bad after 5000 events) leaves no output
/// file, nor one that the format cannot hold; a file converted onto itself is read whole first.
#[test]
fn a_failed_conversion_leaves_no_file_and_one_may_convert_in_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.csv");
    let lines: String = (0..5000).map(|i| format!("{i},{},{},{}\n", i % 128, (i / 128) % 128, i % 2)).collect();
    std::fs::write(&bad, format!("t,x,y,p\n{lines}1,2,three,1\n")).expect("write");
    let out = dir.path().join("out.aedat4");
    let (ok, _, err) = dynapviz(&["convert", bad.to_str().expect("path"), out.to_str().expect("path")]);
    assert!(!ok && err.contains("line 5002"), "{err}");
    let late = dir.path().join("late.csv");
    std::fs::write(&late, "t,x,y,p\n5000000000,1,2,1\n").expect("write");
    let es = dir.path().join("late.es");
    let (ok, _, err) = dynapviz(&["convert", late.to_str().expect("path"), es.to_str().expect("path")]);
    assert!(!ok && err.contains("--rebase-time"), "{err}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").filter_map(|e| e.ok().map(|e| e.file_name())).collect();
    assert_eq!(left.len(), 2, "only the inputs are left: {left:?}");

    let good = dir.path().join("good.csv");
    std::fs::write(&good, format!("t,x,y,p\n{lines}")).expect("write");
    let (ok, _, err) = dynapviz(&["convert", "--to", "csv", "--rebase-time", good.to_str().expect("path"), good.to_str().expect("path")]);
    assert!(ok, "{err}");
    let (ok, info, err) = dynapviz(&["inspect", "--json", good.to_str().expect("path")]);
    assert!(ok, "{err}");
    let info: serde_json::Value = serde_json::from_str(&info).expect("json");
    assert_eq!(info["events"], 5000, "{info}");
}

/// The recordings of a headless run may go into its pictures' directory, which it creates.
#[test]
fn headless_recordings_may_go_beside_the_pictures() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rec = dir.path().join("rec.csv");
    let lines: String = (0..2000).map(|i| format!("{},{},{},{}\n", i * 100, i % 128, (i / 128) % 128, i % 2)).collect();
    std::fs::write(&rec, format!("t,x,y,p\n{lines}")).expect("write");
    let out = dir.path().join("new").join("pictures");
    let (events, analysis) = (out.join("in.aedat4"), out.join("analysis.jsonl"));
    let path = |p: &std::path::Path| p.to_str().expect("path").to_string();
    let args =
        ["run", "--input", &path(&rec), "--headless", &path(&out), "--record-input", &path(&events), "--record-analysis", &path(&analysis)];
    let (ok, _, err) = dynapviz(&args);
    assert!(ok, "{err}");
    let (ok, info, err) = dynapviz(&["inspect", "--json", &path(&events)]);
    assert!(ok, "{err}");
    let info: serde_json::Value = serde_json::from_str(&info).expect("json");
    assert_eq!(info["events"], 2000, "{info}");
    assert!(out.join("dashboard.png").exists() && analysis.exists());
}

/// Sizes that would run for days or fill the disk are refused at once.
#[test]
fn endless_requests_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().to_str().expect("path");
    for seconds in ["1e9", "NaN", "0"] {
        let (ok, _, err) = dynapviz(&["synth", "--out", out, "--samples", "1", "--segment-seconds", seconds]);
        assert!(!ok && err.contains("--segment-seconds must be"), "{seconds}: {err}");
        let (ok, _, err) = dynapviz(&["demo", "--text", "--segment-seconds", seconds]);
        assert!(!ok && err.contains("--segment-seconds must be"), "demo {seconds}: {err}");
    }
}

/// Headless pictures of a looped recording would never end: refused before anything is written.
#[test]
fn a_looped_recording_cannot_be_rendered_headless() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rec = dir.path().join("rec.csv");
    std::fs::write(&rec, "t,x,y,p\n0,1,2,1\n1000,3,4,0\n").expect("write");
    let out = dir.path().join("pictures");
    let (ok, _, err) = dynapviz(&["run", "--input", rec.to_str().expect("path"), "--loop", "--headless", out.to_str().expect("path")]);
    assert!(!ok && err.contains("--loop") && err.contains("--headless"), "{err}");
    assert!(!out.exists(), "nothing written");
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
    // A recording that goes bad after a while, read ahead of the simulator (one simulation
    // thread) and in turn with it (two).
    let bad = dir.path().join("bad.csv");
    let lines: String = (0..5000).map(|i| format!("{i},{},{},{}\n", i % 128, (i / 128) % 128, i % 2)).collect();
    std::fs::write(&bad, format!("t,x,y,p\n{lines}1,2,three,1\n")).expect("write");
    let models = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let (model, arch) = (models.join("gesture-synth.safetensors"), models.join("sinabs-gesture.toml"));
    let paths = [&model, &arch, &bad].map(|p| p.to_str().expect("path"));
    let args = ["simulate", "--model", paths[0], "--arch", paths[1], "--input-shape", "2,128,128", "--input", paths[2], "--threads"];
    for threads in ["1", "2"] {
        let (ok, _, err) = dynapviz(&[&args[..], &[threads]].concat());
        assert!(!ok && err.contains("bad.csv") && err.contains("line 5002") && !err.contains("panicked"), "{threads}: {err}");
    }
}

/// The demo's recording, written into `dir`: 11 gestures of 0.2 s with 10 pauses of 0.3 s
/// (5.2 s).
fn demo_recording(dir: &std::path::Path) -> std::path::PathBuf {
    let (ok, _, err) = dynapviz(&["demo", "--text", "--segment-seconds", "0.2", "--keep", dir.to_str().expect("path")]);
    assert!(ok, "{err}");
    dir.join("user01_synthetic00.aedat")
}

#[test]
fn headless_run_records_input_and_analysis() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rec = demo_recording(dir.path());
    let frames = dir.path().join("frames");
    let copy = dir.path().join("copy.es");
    let gif = dir.path().join("session.gif");
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
        "--gif",
        gif.to_str().expect("path"),
        "--svg",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("PNG and SVG frames"), "{out}");
    assert!(frames.join("dashboard.png").exists());
    // Every picture also as SVG, of the image's size.
    let files: Vec<String> =
        std::fs::read_dir(&frames).expect("frames").map(|e| e.expect("entry").file_name().to_string_lossy().into_owned()).collect();
    let pngs: Vec<&String> = files.iter().filter(|f| f.ends_with(".png")).collect();
    assert!(pngs.len() >= 26, "{files:?}");
    for png in pngs {
        let name = png.replace(".png", ".svg");
        let svg = std::fs::read_to_string(frames.join(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            svg.starts_with(r#"<svg xmlns="http://www.w3.org/2000/svg" width="320" height="180""#) && svg.ends_with("</svg>\n"),
            "{name}"
        );
    }
    // 5.2 s at one frame per 0.2 s, plus the final frame.
    let bytes = std::fs::read(&gif).expect("gif");
    assert!(bytes.starts_with(b"GIF89a"), "not a GIF");
    let gif_frames = out.lines().find_map(|l| l.strip_prefix("wrote ")?.strip_suffix(&format!(" GIF frames to {}", gif.display())));
    assert!(gif_frames.and_then(|n| n.parse::<usize>().ok()).is_some_and(|n| (26..=28).contains(&n)), "{out}");
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
    // 11 gestures of 0.2 s with 10 pauses of 0.3 s: 5.2 s in 100 ms collections.
    assert!((50..=54).contains(&counts), "5.2 s in 100 ms collections: {counts} lines\n{text}");
    assert!(text.lines().any(|l| l.contains("\"readout\"")) && text.lines().any(|l| l.contains("\"watts\"")));
}

/// The committed model still reaches the accuracy bar on held-out subjects (seed 900 was never
/// trained on): a regression in conversion, discretization or the simulator shows here.
#[test]
fn synth_then_eval_the_builtin_model_on_held_out_subjects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ds = dir.path().join("ds");
    let (ok, _, err) = dynapviz(&["synth", "--seed", "900", "--samples", "2", "--out", ds.to_str().expect("path")]);
    assert!(ok, "{err}");
    let (png, svg) = (dir.path().join("confusion.png"), dir.path().join("confusion.svg"));
    let (ok, out, err) = dynapviz(&[
        "eval",
        "--model",
        "demo",
        "--input",
        ds.to_str().expect("path"),
        "--json",
        "--confusion-png",
        png.to_str().expect("path"),
        "--confusion-svg",
        svg.to_str().expect("path"),
    ]);
    assert!(ok, "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).expect("json");
    for key in ["accuracy", "per_class_recall", "confusion", "samples", "ann_accuracy"] {
        assert!(r.get(key).is_some(), "eval --json lacks `{key}`");
    }
    assert_eq!(r["samples"], 22);
    assert!(r["accuracy"].as_f64().expect("accuracy") >= 0.9, "{out}");
    assert!(r["ann_accuracy"].as_f64().expect("ann accuracy") >= 0.9, "{out}");
    assert!(png.exists());
    // The SVG holds the matrix as text: every class's name, the accuracy line, and the counts
    // (the demo's 22 samples, two per class, spread over the cells).
    let svg = std::fs::read_to_string(&svg).expect("the SVG");
    let texts: Vec<&str> = svg.split("<text ").skip(1).filter_map(|t| t.split_once('>')?.1.split_once("</text>").map(|(s, _)| s)).collect();
    assert!(texts.iter().any(|t| t.starts_with("accuracy ") && t.contains("over 22 samples")), "{texts:?}");
    assert!(["hand_clapping", "air_guitar", "other_gestures", "none"].iter().all(|name| texts.contains(name)), "{texts:?}");
    let counts: u64 = texts.iter().filter_map(|t| t.parse::<u64>().ok()).sum();
    assert_eq!(counts, 22, "{texts:?}");
    // No name starts left of the picture (the longest row names once did).
    let width: f32 = svg.split("width=\"").nth(1).and_then(|w| w.split('"').next()?.parse().ok()).expect("the SVG's width");
    for text in svg.split("<text x=\"").skip(1) {
        let x: f32 = text.split('"').next().and_then(|x| x.parse().ok()).expect("x");
        assert!((0.0..width).contains(&x), "a name at x = {x}: {text}");
    }
}

#[test]
fn headless_demo_writes_pictures_and_a_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_dir = dir.path().join("report");
    let (ok, out, err) =
        dynapviz(&["demo", "--headless", out_dir.to_str().expect("path"), "--segment-seconds", "0.6", "--image-size", "320,180"]);
    assert!(ok, "{err}");
    assert!(out_dir.join("dashboard.png").exists() && out_dir.join("frame-00001.png").exists(), "{out}");
    let report = std::fs::read_to_string(out_dir.join("report.txt")).expect("report.txt");
    for section in ["1. synthetic subject", "2. built-in gesture network", "3. simulated chip", "4. "] {
        assert!(report.lines().any(|l| l.starts_with(section)), "report lacks `{section}`:\n{report}");
    }
}

#[test]
fn simulate_gives_the_same_results_on_any_threads_and_kernel() {
    let Some(case) = dynapviz_testkit::shared("fixtures/golden/gesture_r50") else { return };
    let run = |threads: &str, kernel: &[&str]| {
        let (model, input) = (case.join("model.onnx"), case.join("input.csv"));
        let args = ["simulate", "--model", model.to_str().expect("path"), "--input-shape", "2,128,128", "--input"];
        let (ok, out, err) = dynapviz(
            &[&args[..], &[input.to_str().expect("path"), "--monitor", "dvs,3,-1", "--threads", threads, "--json"], kernel].concat(),
        );
        assert!(ok, "{err}");
        let mut v: serde_json::Value = serde_json::from_str(&out).expect("json");
        for what_differs in ["wall_seconds", "events_per_second", "kernel"] {
            v.as_object_mut().expect("object").remove(what_differs);
        }
        v
    };
    let one = run("1", &[]);
    assert!(one["class_counts"].as_array().is_some_and(|c| c.iter().any(|n| n.as_u64() > Some(0))), "{one}");
    assert_eq!(one, run("2", &[]));
    assert_eq!(one, run("1", &["--kernel", "portable"]), "the portable kernel");
    assert_eq!(one, run("2", &["--kernel", "avx2"]), "AVX2 (or the portable kernel, on a CPU without it)");
    let (ok, _, err) = dynapviz(&["simulate", "--input", "x.csv", "--threads", "0"]);
    assert!(!ok && err.contains("--threads") && !err.contains("panicked"), "{err}");
}

#[test]
fn simulate_output_decimators_thin_what_leaves_a_core() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ok, _, err) = dynapviz(&["synth", "--samples", "1", "--segment-seconds", "0.3", "--out", dir.path().to_str().expect("path")]);
    assert!(ok, "{err}");
    let rec = dir.path().join("user01_synthetic00.aedat");
    let models = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let (model, arch) = (models.join("gesture-synth.safetensors"), models.join("sinabs-gesture.toml"));
    let paths = [&model, &arch, &rec].map(|p| p.to_str().expect("path"));
    let base = ["simulate", "--model", paths[0], "--arch", paths[1], "--input-shape", "2,128,128", "--input", paths[2]];
    let layers = |extra: &[&str]| {
        let (ok, out, err) = dynapviz(&[&base[..], &["--json"], extra].concat());
        assert!(ok, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).expect("json");
        v["layers"].as_array().expect("layers").clone()
    };
    let (plain, thinned) = (layers(&[]), layers(&["--output-decimator", "1=1,2=0"]));
    let field = |l: &serde_json::Value, f: &str| l[f].as_u64().unwrap_or_else(|| panic!("{f} in {l}"));
    // Layer 1's neurons do the same; of what leaves its core (after pooling), one of every 4.
    let (sent, passed) = (field(&plain[0], "spikes_after_pool"), field(&thinned[0], "spikes_after_pool"));
    assert!(sent > 1000, "layer 1 is active: {sent} spikes");
    assert_eq!(field(&thinned[0], "spikes"), field(&plain[0], "spikes"));
    assert_eq!((passed, field(&thinned[0], "decimated")), (sent / 4, sent - sent / 4));
    // Layer 2 gets only those; of its own, one of every 2 leaves.
    assert_eq!(field(&thinned[1], "input_events"), passed);
    let second = field(&thinned[1], "spikes_after_pool") + field(&thinned[1], "decimated");
    assert_eq!(field(&thinned[1], "spikes_after_pool"), second / 2);
    assert!(plain.iter().all(|l| field(l, "decimated") == 0));
    let (ok, out, err) = dynapviz(&[&base[..], &["--output-decimator", "2=1"]].concat());
    assert!(ok && out.contains("output decimator of layer 2: 1 spike of every 4: "), "{out}{err}");
    // `run` takes the same settings: the output layer's decimator halves what the readout sees.
    let output_spikes = |extra: &[&str]| {
        let pictures = dir.path().join(format!("pictures{}", extra.len()));
        let args = ["--speed", "0", "--frame-every", "10", "--headless", pictures.to_str().expect("path")];
        let (ok, out, err) = dynapviz(&[&["run"], &base[1..], &args, extra].concat());
        assert!(ok, "{err}");
        // "wrote N PNG frames to DIR (E input events, S output spikes)"
        let words: Vec<&str> = out.split_whitespace().collect();
        let at = words.iter().position(|w| w.starts_with("spikes")).unwrap_or_else(|| panic!("{out}"));
        words[at - 2].parse::<u64>().unwrap_or_else(|_| panic!("{out}"))
    };
    let all = output_spikes(&[]);
    assert!(all > 10, "the output layer is active: {all} spikes");
    assert_eq!(output_spikes(&["--output-decimator", "9=0"]), all / 2);
    for (bad, says) in [(&["--output-decimator", "1=8"][..], "0..=7"), (&["--output-decimator", "1=1", "--mode", "binned"], "binned mode")]
    {
        let (ok, _, err) = dynapviz(&[&base[..], bad].concat());
        assert!(!ok && err.contains(says) && !err.contains("panicked"), "{bad:?}: {err}");
    }
}

#[test]
fn simulate_stops_at_a_broken_line_deep_in_the_recording() {
    let Some(case) = dynapviz_testkit::shared("fixtures/golden/gesture_r50") else { return };
    // A line that is no event after 20 000 good ones: the decoder, ahead on its own thread,
    // meets it while the simulator's pipeline runs on the chunks before (`--no-rescale`: a CSV
    // states no sensor size, and the scan for its extent would meet it first).
    let text = std::fs::read_to_string(case.join("input.csv")).expect("input");
    let mut lines: Vec<&str> = text.lines().collect();
    let header = usize::from(lines.first().is_some_and(|l| l.starts_with('t')));
    let bad = header + 20_000;
    assert!(lines.len() > bad + 1000, "the golden input has more than 21 000 events");
    lines.insert(bad, "12,x,3,1");
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("broken.csv");
    std::fs::write(&input, lines.join("\n")).expect("write");
    let model = case.join("model.onnx");
    for threads in ["1", "2"] {
        let args = [
            "simulate",
            "--model",
            model.to_str().expect("path"),
            "--input-shape",
            "2,128,128",
            "--no-rescale",
            "--threads",
            threads,
            "--input",
        ];
        let (ok, out, err) = dynapviz(&[&args[..], &[input.to_str().expect("path")]].concat());
        assert!(!ok && out.is_empty(), "{threads} thread(s): no results from a broken recording: {out}");
        let line = format!("line {}", bad + 1);
        assert!(err.contains("broken.csv") && err.contains(&line) && !err.contains("panicked"), "{threads} thread(s): {err}");
    }
}

#[test]
fn simulate_fits_a_larger_sensor_onto_the_network_input() {
    let Some(case) = dynapviz_testkit::shared("fixtures/golden/gesture_r50") else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    // The golden input as a 256x256 sensor would see it: every coordinate doubled.
    let csv = std::fs::read_to_string(case.join("input.csv")).expect("input.csv");
    let doubled: String = csv
        .lines()
        .enumerate()
        .map(|(i, line)| {
            if i == 0 {
                return format!("{line}\n");
            }
            let f: Vec<u32> = line.split(',').map(|v| v.parse().expect("number")).collect();
            format!("{},{},{},{}\n", f[0], f[1] * 2, f[2] * 2, f[3])
        })
        .collect();
    let (csv_path, rec) = (dir.path().join("doubled.csv"), dir.path().join("doubled.aedat4"));
    std::fs::write(&csv_path, doubled).expect("write");
    let (ok, _, err) = dynapviz(&["convert", "--geometry", "256x256", csv_path.to_str().expect("path"), rec.to_str().expect("path")]);
    assert!(ok, "{err}");
    let simulate = |input: &std::path::Path, extra: &[&str]| {
        let model = case.join("model.onnx");
        let args = ["simulate", "--model", model.to_str().expect("path"), "--input-shape", "2,128,128", "--json", "--input"];
        let (ok, out, err) = dynapviz(&[&args[..], &[input.to_str().expect("path")], extra].concat());
        assert!(ok, "{err}");
        serde_json::from_str::<serde_json::Value>(&out).expect("json")
    };
    let (original, fitted) = (simulate(&case.join("input.csv"), &[]), simulate(&rec, &[]));
    assert_eq!(fitted["rescaled_from"], "256x256");
    assert_eq!(original["rescaled_from"], serde_json::Value::Null);
    // Halving doubled coordinates gives the golden input back: the same spikes everywhere.
    assert_eq!(fitted["layers"], original["layers"]);
    assert_eq!(fitted["class_counts"], original["class_counts"]);
    // Kept as they are, three quarters of the pixels lie outside the input: counted, not lost.
    let raw = simulate(&rec, &["--no-rescale"]);
    let outside = raw["rejected_input"]["out_of_range"].as_u64().expect("count");
    assert!(outside > 0 && outside < original["input_events"].as_u64().expect("count"), "{raw}");
}

#[test]
fn simulate_gets_through_a_gap_of_days_in_the_recording() {
    let Some(case) = dynapviz_testkit::shared("fixtures/golden/gesture_r50") else { return };
    // The golden input with its second half 12 days later: a paused recording, or a corrupt
    // timestamp. The gap is a whole number of bins and starts at a bin's first event, so that
    // binned mode sees the same bins.
    const GAP_US: u64 = 1_000_000_000_000;
    let csv = std::fs::read_to_string(case.join("input.csv")).expect("input.csv");
    let lines: Vec<&str> = csv.lines().collect();
    let time = |line: &str| line.split_once(',').and_then(|(t, _)| t.parse::<u64>().ok());
    let bin = |i: usize| time(lines[i]).map(|t| t / 1000);
    let half = (lines.len() / 2..lines.len()).find(|&i| bin(i) != bin(i - 1)).expect("a bin starts in the second half");
    let shifted: Vec<String> = lines
        .iter()
        .enumerate()
        .map(|(i, line)| match (line.split_once(','), time(line)) {
            (Some((_, rest)), Some(t)) if i >= half => format!("{},{rest}", t + GAP_US),
            _ => line.to_string(),
        })
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let gapped = dir.path().join("gapped.csv");
    std::fs::write(&gapped, shifted.join("\n")).expect("write");
    let model = case.join("model.onnx");
    for mode in ["event", "binned"] {
        let simulate = |input: &std::path::Path| {
            let args = ["simulate", "--model", model.to_str().expect("path"), "--input-shape", "2,128,128", "--no-rescale", "--json"];
            let (ok, out, err) = dynapviz(&[&args[..], &["--mode", mode, "--input", input.to_str().expect("path")]].concat());
            assert!(ok, "{mode}: {err}");
            serde_json::from_str::<serde_json::Value>(&out).expect("json")
        };
        let (original, gap) = (simulate(&case.join("input.csv")), simulate(&gapped));
        // Without a leak the spikes do not depend on the time between events.
        assert_eq!(gap["layers"], original["layers"], "{mode}");
        assert_eq!(gap["class_counts"], original["class_counts"], "{mode}");
        // A billion empty bins are not written out; the JSON says why.
        assert_eq!(gap["class_counts_per_bin"], serde_json::json!([]), "{mode}");
        assert!(gap["class_counts_per_bin_left_out"].as_str().is_some_and(|why| why.contains("--bin-us")), "{mode}: {gap}");
        assert!(original["class_counts_per_bin_left_out"].is_null(), "{mode}");
        // Twelve idle days: the mean power is the idle power (pixel-analog 0.611 mW).
        let analog = gap["power_mean_mw"][4][1].as_f64().expect("pixel-analog");
        assert!((analog - 0.6109).abs() < 1e-4, "{mode}: {analog}");
    }
}

/// Runs `simulate --json` in binned mode on a case of `tests/sinabs-cases` with its model file
/// `model` and `args`, checks it against the case's `expected.json`, and returns that.
fn simulate_equals_expected(case: &str, model: &str, args: &[&str]) -> serde_json::Value {
    let case = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sinabs-cases").join(case);
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(case.join("expected.json")).expect("expected.json")).expect("json");
    let (model, input) = (case.join(model), case.join("input.csv"));
    let files = ["simulate", "--model", model.to_str().expect("path"), "--input", input.to_str().expect("path")];
    let (ok, out, err) = dynapviz(&[&files[..], args, &["--mode", "binned", "--json"]].concat());
    assert!(ok, "{err}");
    let got: serde_json::Value = serde_json::from_str(&out).expect("json");
    for key in ["class_counts", "class_counts_per_bin", "bins"] {
        assert_eq!(got[key], expected[key], "{}: {key}", model.display());
    }
    for (g, e) in got["layers"].as_array().expect("layers").iter().zip(expected["layers"].as_array().expect("layers")) {
        let fields = ["index", "core", "spikes_after_pool", "return_to_zero"];
        assert_eq!(fields.map(|f| &g[f]), fields.map(|f| &e[f]), "{}", model.display());
    }
    expected
}

/// `simulate --json` in binned mode gives sinabs' `expected.json` numbers on a network that is
/// not the gesture one (this repository's sinabs cases): the table of class counts covers every
/// bin of the input, also the last ones without an output spike, as sinabs' does.
#[test]
fn simulate_json_equals_sinabs_on_a_network_of_its_own() {
    let expected = simulate_equals_expected("strided_batchnorm", "model.onnx", &["--input-shape", "2,64,64", "--device", "speck2edevkit"]);
    let table = expected["class_counts_per_bin"].as_array().expect("table");
    assert!(table.last().is_some_and(|bin| bin.as_array().is_some_and(|b| b.iter().all(|n| n == 0))), "the case ends in empty bins");
}

/// A network whose read-out is a map (4 x 8 x 8), not one neuron per class: `class_counts` has
/// one count per output neuron, flattened as sinabs' output (`tests/sinabs-cases/map_output`),
/// and `channel_counts` sums each channel's, as the dashboard counts them.
#[test]
fn simulate_json_counts_a_map_output_per_neuron_as_sinabs() {
    let args = ["--input-shape", "2,32,32", "--device", "speck2edevkit"];
    let expected = simulate_equals_expected("map_output", "model.onnx", &args);
    let case = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sinabs-cases/map_output");
    let (model, input) = (case.join("model.onnx"), case.join("input.csv"));
    let files = ["simulate", "--model", model.to_str().expect("path"), "--input", input.to_str().expect("path")];
    let (ok, out, err) = dynapviz(&[&files[..], &args, &["--mode", "binned", "--json"]].concat());
    assert!(ok, "{err}");
    let got: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(got["output_shape"], serde_json::json!([4, 8, 8]));
    let per_neuron: Vec<u64> = expected["class_counts"].as_array().expect("counts").iter().map(|v| v.as_u64().unwrap_or(0)).collect();
    let per_channel: Vec<u64> = per_neuron.chunks(64).map(|c| c.iter().sum()).collect();
    assert_eq!(got["channel_counts"], serde_json::json!(per_channel));
    let (ok, text, err) = dynapviz(&[&files[..], &args, &["--mode", "binned"]].concat());
    assert!(ok && text.contains(&format!("output counts per channel: {per_channel:?}")), "{err}{text}");
}

/// The same from a NIR graph, which names its input shape: a residual network.
#[test]
fn simulate_json_equals_sinabs_from_a_nir_graph() {
    simulate_equals_expected("residual", "model.nir", &["--device", "speck2edevkit"]);
}

/// `--reset zero` is sinabs' `from_model(..., reset_fn=MembraneReset())`: the case made that
/// way runs as sinabs ran it, and `model` says which layers reset to zero. Without the option
/// the same network subtracts, and fires otherwise.
#[test]
fn reset_zero_runs_as_sinabs_membrane_reset() {
    let args = ["--input-shape", "2,32,32", "--device", "speck2edevkit"];
    let expected = simulate_equals_expected("reset_zero", "model.onnx", &[&args[..], &["--reset", "zero"]].concat());
    let case = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sinabs-cases/reset_zero");
    let (model, input) = (case.join("model.onnx"), case.join("input.csv"));
    let (ok, out, err) = dynapviz(&[&["model", "--model", model.to_str().expect("path"), "--reset", "zero"], &args[..]].concat());
    assert!(ok, "{err}");
    assert!(out.contains("neurons reset to zero after a spike, in every layer"), "{out}");
    let files = ["simulate", "--model", model.to_str().expect("path"), "--input", input.to_str().expect("path")];
    let (ok, out, err) = dynapviz(&[&files[..], &args[..], &["--mode", "binned", "--json"]].concat());
    assert!(ok, "{err}");
    let subtracting: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_ne!(subtracting["class_counts_per_bin"], expected["class_counts_per_bin"], "the case must tell the resets apart");
}

/// `--spike-threshold`, `--min-v-mem` and `--bias-rescaling` are the options of sinabs'
/// `from_model`: the case converted with a threshold of 2.5, a bound of -4 and its biases
/// divided by 1.7 runs as sinabs ran it, and without them (or without the rescaling) otherwise.
/// Values no network can run with are refused, naming the option.
#[test]
fn from_model_options_run_as_sinabs_converted_with_them() {
    let args = ["--input-shape", "2,64,64", "--device", "speck2edevkit"];
    let options = ["--spike-threshold", "2.5", "--min-v-mem", "-4", "--bias-rescaling", "1.7"];
    let expected = simulate_equals_expected("neuron_options", "model.onnx", &[&args[..], &options[..]].concat());
    let case = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sinabs-cases/neuron_options");
    let (model, input) = (case.join("model.onnx"), case.join("input.csv"));
    let files =
        ["simulate", "--model", model.to_str().expect("path"), "--input", input.to_str().expect("path"), "--mode", "binned", "--json"];
    for fewer in [&options[..0], &options[..4]] {
        let (ok, out, err) = dynapviz(&[&files[..], &args[..], fewer].concat());
        assert!(ok, "{err}");
        let got: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert_ne!(got["class_counts_per_bin"], expected["class_counts_per_bin"], "{fewer:?}: the case must tell the options apart");
    }
    let (ok, out, err) = dynapviz(&[&["model", "--model", model.to_str().expect("path")], &args[..], &options[..], &["--json"]].concat());
    assert!(ok, "{err}");
    let got: serde_json::Value = serde_json::from_str(&out).expect("json");
    let thresholds = |v: &serde_json::Value| -> Vec<f64> {
        v["layers"].as_array().expect("layers").iter().map(|l| l["threshold"].as_f64().expect("threshold")).collect()
    };
    assert_eq!(thresholds(&got), thresholds(&expected));
    for (option, value, says) in [
        ("--spike-threshold", "0", "spike threshold 0"),
        ("--min-v-mem", "1", "min_v_mem 1"),
        ("--bias-rescaling", "0", "bias rescaling 0"),
    ] {
        let (ok, _, err) = dynapviz(&[&["model", "--model", model.to_str().expect("path"), option, value], &args[..]].concat());
        assert!(!ok && err.contains(says), "{option} {value}: {err}");
    }
}

/// A `dynapviz` process serving the live view, killed when dropped (a failed test too).
struct Served {
    child: std::process::Child,
    addr: String,
    /// The token printed with the address, if any.
    token: Option<String>,
    /// Its temporary directory (`TMPDIR`): what it leaves there goes with the test.
    tmp: tempfile::TempDir,
}

impl Served {
    fn start(args: &[&str]) -> Self {
        use std::io::BufRead;
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new(env!("CARGO_BIN_EXE_dynapviz"))
            .env("TMPDIR", tmp.path())
            .args(args)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("run dynapviz");
        let stdout = child.stdout.take().expect("piped");
        let mut lines = std::io::BufReader::new(stdout).lines();
        for line in lines.by_ref() {
            let line = line.expect("stdout");
            if let Some(rest) = line.strip_prefix("serving the dashboard at http://") {
                let addr = rest.split('/').next().expect("an address").to_string();
                let token = rest.split_once("?token=").map(|(_, t)| t.split([' ', ';']).next().unwrap_or("").to_string());
                // The rest of its output is read, so that its pipe never closes under it.
                std::thread::spawn(move || lines.for_each(drop));
                return Served { child, addr, token, tmp };
            }
        }
        let _ = child.kill();
        let status = child.wait();
        panic!("dynapviz ended without serving: {status:?}");
    }

    /// Sends one request; returns the status, the head and the body.
    fn ask(&self, method: &str, path: &str) -> (u16, String, Vec<u8>) {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&self.addr).expect("the server listens");
        s.set_read_timeout(Some(std::time::Duration::from_secs(30))).expect("a timeout");
        // As the page asks: its Host, and the header of its controls.
        let head = format!("Host: {}\r\nX-Dynapviz-Control: 1\r\nContent-Length: 0\r\nConnection: close", self.addr);
        write!(s, "{method} {path} HTTP/1.1\r\n{head}\r\n\r\n").expect("sent");
        let mut all = Vec::new();
        s.read_to_end(&mut all).expect("the answer");
        let split = all.windows(4).position(|w| w == b"\r\n\r\n").expect("a head");
        let head = String::from_utf8_lossy(&all[..split]).into_owned();
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status");
        (status, head, all[split + 4..].to_vec())
    }

    fn status(&self) -> serde_json::Value {
        let (code, _, body) = self.ask("GET", "/status.json");
        assert_eq!(code, 200);
        serde_json::from_slice(&body).expect("JSON")
    }

    /// Waits up to a minute for the session's status to satisfy `ok` (the status is renewed
    /// every picture period).
    fn wait_for(&self, what: &str, ok: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let status = self.status();
            if ok(&status["session"]) {
                return status;
            }
            assert!(std::time::Instant::now() < deadline, "{what}: {status}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Ctrl-C ends the demo's pictures (`--headless`) where they are: the dashboard picture of the
/// moment is written, the process exits with success, and the scratch directory goes.
#[cfg(unix)]
#[test]
fn ctrl_c_ends_headless_pictures_and_leaves_nothing_behind() {
    let (tmp, out) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let pictures = out.path().join("pictures");
    let mut child = Command::new(env!("CARGO_BIN_EXE_dynapviz"))
        .env("TMPDIR", tmp.path())
        .args(["demo", "--headless", pictures.to_str().expect("path"), "--segment-seconds", "2", "--image-size", "320,180"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run dynapviz");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !pictures.join("frame-00002.png").exists() {
        assert!(std::time::Instant::now() < deadline && child.try_wait().expect("wait").is_none(), "no pictures");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let status = interrupt(&mut child);
    let mut said = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().expect("piped"), &mut said).expect("stdout");
    assert!(status.success() && said.contains("stopped by Ctrl-C"), "{status}: {said}");
    assert!(pictures.join("dashboard.png").exists(), "the picture of the moment");
    assert_eq!(left_in(tmp.path()), Vec::<std::path::PathBuf>::new(), "left behind");
}

/// Sends Ctrl-C (SIGINT) to `child` and waits up to 30 s for it to end.
#[cfg(unix)]
fn interrupt(child: &mut std::process::Child) -> std::process::ExitStatus {
    // SAFETY: `kill` with a live child's pid and a signal number has no memory effects.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) }, 0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(std::time::Instant::now() < deadline, "still running 30 s after Ctrl-C");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// What a process left in `dir`, its temporary directory.
fn left_in(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir).expect("tmp").map(|e| e.expect("entry").path()).collect()
}

/// Ctrl-C ends a served session as it should end: the session stops, the process exits with
/// success, and the demo's scratch directory (its recording and pictures) goes with it.
#[cfg(unix)]
#[test]
fn ctrl_c_ends_a_served_demo_and_leaves_nothing_behind() {
    let mut served = Served::start(&["demo", "--serve", "127.0.0.1:0", "--segment-seconds", "0.3", "--image-size", "320,180"]);
    served.wait_for("playing", |s| s["events"].as_u64().is_some_and(|n| n > 0));
    let status = interrupt(&mut served.child);
    assert!(status.success(), "{status}");
    assert_eq!(left_in(served.tmp.path()), Vec::<std::path::PathBuf>::new(), "left behind");
}

/// Served to every machine, the live view needs the random token printed with its address;
/// on a loopback address it needs none, and a token too short to be secret is refused.
#[test]
fn serve_on_every_address_needs_the_printed_token() {
    let served = Served::start(&["demo", "--serve", "0.0.0.0:0", "--segment-seconds", "0.3", "--image-size", "320,180"]);
    let token = served.token.clone().expect("a token printed with the address");
    assert!(token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
    let (code, _, body) = served.ask("GET", "/");
    assert_eq!(code, 401, "{}", String::from_utf8_lossy(&body));
    let (code, head, _) = served.ask("GET", &format!("/?token={token}"));
    assert_eq!(code, 200);
    assert!(head.contains(&format!("Set-Cookie: dynapviz_token={token};")), "{head}");
    assert_eq!(served.ask("GET", &format!("/status.json?token={token}")).0, 200);
    let other = Served::start(&["demo", "--serve", "0.0.0.0:0", "--serve-token", "our-lab-display-2026", "--segment-seconds", "0.3"]);
    assert_eq!(other.token.as_deref(), Some("our-lab-display-2026"));
    assert_eq!(Served::start(&["demo", "--serve", "127.0.0.1:0", "--segment-seconds", "0.3"]).token, None);
    let (ok, _, err) = dynapviz(&["demo", "--serve", "0.0.0.0:0", "--serve-token", "short"]);
    assert!(!ok && err.contains("--serve-token: expected 16 to 128 letters"), "{err}");
}

#[test]
fn serve_shows_the_demo_in_a_browser_and_takes_its_controls() {
    let served = Served::start(&["demo", "--serve", "127.0.0.1:0", "--segment-seconds", "0.3", "--image-size", "320,180"]);
    let (code, _, page) = served.ask("GET", "/");
    assert_eq!(code, 200);
    assert!(String::from_utf8_lossy(&page).contains("/frame?after="), "the page polls for pictures");
    let (code, head, png) = served.ask("GET", "/frame?after=0");
    assert_eq!(code, 200, "{head}");
    assert!(head.contains("Content-Type: image/png"), "{head}");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    let size = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().expect("4 bytes"));
    assert_eq!((size(16), size(20)), (320, 180), "--image-size");
    assert_eq!(served.ask("POST", "/control/pause").0, 204);
    served.wait_for("paused", |s| s["paused"] == true);
    assert_eq!(served.ask("POST", "/control/faster").0, 204);
    assert_eq!(served.ask("POST", "/control/pause").0, 204);
    served.wait_for("playing at 2x", |s| s["paused"] == false && s["speed"] == 2.0);
    assert_eq!(served.ask("GET", "/nowhere").0, 404);
    // "save SVG": the picture of the moment as an SVG document of the picture's size, to keep.
    let (code, head, svg) = served.ask("GET", "/vector");
    assert_eq!(code, 200, "{head}");
    assert!(
        head.contains("Content-Type: image/svg+xml") && head.contains("Content-Disposition: attachment; filename=\"dynapviz-1.svg\""),
        "{head}"
    );
    let svg = String::from_utf8(svg).expect("text");
    assert!(svg.starts_with(r#"<svg xmlns="http://www.w3.org/2000/svg" width="320" height="180""#) && svg.contains(">DVS</text>"), "{svg}");
}

#[test]
fn serve_keeps_the_last_picture_when_the_recording_ends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rec = demo_recording(dir.path());
    let served = Served::start(&[
        "run",
        "--input",
        rec.to_str().expect("path"),
        "--speed",
        "0",
        "--serve",
        "127.0.0.1:0",
        "--image-size",
        "320,180",
    ]);
    served.wait_for("the recording of 5.2 s, unpaced, ended", |s| s["ended"] == true);
    let (code, _, png) = served.ask("GET", "/frame?after=0");
    assert_eq!(code, 200);
    assert!(png.starts_with(b"\x89PNG"), "the last picture");
    let (code, _, why) = served.ask("POST", "/control/pause");
    assert_eq!(code, 409, "no playback after the end");
    assert!(String::from_utf8_lossy(&why).contains("recording ended"));
    let events = served.status()["session"]["events"].as_u64().expect("a count");
    assert!(events > 10_000, "the whole recording was played: {events} events");
}

/// Serves the bytes dv-processing's `NetworkWriter` sent a client for 1 500 events of a real
/// DVXplorer recording (see `crates/dynapviz-events/tests/network.rs`) to the first client,
/// then closes; returns the stream's address.
fn dv_camera() -> String {
    dv_camera_with(|_| {})
}

/// [`dv_camera`] with the bytes changed by `edit` first.
fn dv_camera_with(edit: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut bytes = dynapviz_testkit::dv_capture("lz4");
    edit(&mut bytes);
    dv_camera_serving(bytes, 1)
}

/// Serves `bytes` to each of the first `clients` clients, then stops listening; returns the
/// address.
fn dv_camera_serving(bytes: Vec<u8>, clients: usize) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    std::thread::spawn(move || {
        for _ in 0..clients {
            if let Ok((mut client, _)) = listener.accept() {
                let _ = std::io::Write::write_all(&mut client, &bytes);
            }
        }
    });
    format!("tcp://{addr}")
}

/// A live camera gives what the same events give from a file: `simulate` on the stream and on
/// the events dv-processing read (as CSV) print the same JSON.
#[test]
fn simulate_on_a_live_camera_equals_simulate_on_its_events() {
    let root = env!("CARGO_MANIFEST_DIR");
    let live = simulate_demo_json(&dv_camera());
    let file = simulate_demo_json(&format!("{root}/crates/dynapviz-events/tests/data/dv-network.csv"));
    assert_eq!(live["input_events"], 1500, "{live}");
    assert_eq!(live, file);
}

/// `dynapviz replay ARGS --serve tcp://127.0.0.1:0`, started; returns it and the address it
/// printed.
fn replay(args: &[&str]) -> (std::process::Child, String) {
    replay_in(args, &std::env::temp_dir())
}

/// `replay` with `tmp` as its temporary directory (`TMPDIR`).
fn replay_in(args: &[&str], tmp: &std::path::Path) -> (std::process::Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dynapviz"))
        .env("TMPDIR", tmp)
        .arg("replay")
        .args(args)
        .args(["--serve", "tcp://127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run dynapviz replay");
    let line = first_line(child.stdout.as_mut().expect("stdout"));
    let address = line.split(" at ").nth(1).and_then(|rest| rest.split(';').next()).expect("an address").to_string();
    (child, address)
}

/// Starts dynapviz with the arguments `args` makes of a camera's address, where nothing
/// listens yet; returns it, once it said it waits for the camera, and the camera's port.
fn waiting_for_a_camera(args: impl FnOnce(&str) -> Vec<String>) -> (std::process::Child, u16) {
    // A free port, then nothing listening at it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port();
    let camera = format!("tcp://127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_dynapviz"))
        .args(args(&camera))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run dynapviz");
    let said = first_line(child.stderr.as_mut().expect("stderr"));
    assert!(said.contains(&camera) && said.contains("Connection refused"), "{said}");
    (child, port)
}

/// The first line a child writes to `out` (its stdout or stderr, piped).
fn first_line(out: &mut impl std::io::Read) -> String {
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line).expect("a line");
    line
}

/// A recording served by `replay` is a camera to `simulate`: the same results as the file.
#[test]
fn a_replayed_recording_simulates_as_the_recording() {
    let root = env!("CARGO_MANIFEST_DIR");
    let csv = format!("{root}/crates/dynapviz-events/tests/data/dv-network.csv");
    let simulate = simulate_demo_json;
    for speed in ["0", "1"] {
        let (mut server, address) = replay(&[&csv, "--geometry", "320x240", "--speed", speed]);
        assert!(address.starts_with("tcp://127.0.0.1:"), "{address}");
        let live = simulate(&address);
        assert!(server.wait().expect("replay ends").success());
        assert_eq!(live["input_events"], 1500, "{live}");
        assert_eq!(live, simulate(&csv), "speed {speed}");
    }
}

#[cfg(unix)]
#[test]
fn replay_waiting_for_its_first_client_stops_at_ctrl_c() {
    let root = env!("CARGO_MANIFEST_DIR");
    let (mut server, _) = replay(&[&format!("{root}/crates/dynapviz-events/tests/data/dv-network.csv"), "--geometry", "320x240"]);
    // SAFETY: a signal to the child this test started.
    assert_eq!(unsafe { libc::kill(server.id() as libc::pid_t, libc::SIGINT) }, 0);
    let started = std::time::Instant::now();
    while server.try_wait().expect("wait").is_none() {
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "still waiting");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(server.wait().expect("status").success());
}

/// `replay demo` serves the demo's synthetic subject as a 128x128 camera, and leaves nothing
/// behind.
#[test]
fn replay_demo_serves_the_demos_subject() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut server, address) = replay_in(&["demo", "--speed", "0"], tmp.path());
    let (ok, json, err) = dynapviz(&["inspect", &address, "--json"]);
    assert!(ok, "{err}");
    assert!(server.wait().expect("replay ends").success());
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!((v["width"].as_u64(), v["height"].as_u64()), (Some(128), Some(128)), "{v}");
    assert!(v["events"].as_u64().is_some_and(|n| n > 100_000) && v["duration"].as_f64().is_some_and(|d| d > 20.0), "{v}");
    assert_eq!(left_in(tmp.path()), Vec::<std::path::PathBuf>::new(), "left behind");
}

/// Events outside the sensor size the stream states are left out, and counted.
#[test]
fn replay_leaves_out_events_outside_the_sensor_it_states() {
    let root = env!("CARGO_MANIFEST_DIR");
    let csv = format!("{root}/crates/dynapviz-events/tests/data/dv-network.csv");
    let (mut server, address) = replay(&[&csv, "--geometry", "160x120", "--speed", "0"]);
    let (ok, json, err) = dynapviz(&["inspect", &address, "--json"]);
    assert!(ok, "{err}");
    let mut said = String::new();
    std::io::Read::read_to_string(server.stdout.as_mut().expect("stdout"), &mut said).expect("its output");
    assert!(server.wait().expect("replay ends").success());
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    let kept = v["events"].as_u64().expect("events");
    assert!(kept > 0 && kept < 1500, "{v}");
    assert!(v["x_range"][1].as_u64().is_some_and(|x| x < 160) && v["y_range"][1].as_u64().is_some_and(|y| y < 120), "{v}");
    assert!(said.contains(&format!("; {} events outside the 160x120 sensor left out", 1500 - kept)), "{said}");
}

#[test]
fn replay_says_what_is_wrong_with_its_address() {
    let (ok, _, err) = dynapviz(&["replay", "x.csv", "--serve", "127.0.0.1:7777"]);
    assert!(!ok && err.contains("--serve 127.0.0.1:7777: expected tcp://HOST:PORT or unix://PATH"), "{err}");
}

#[test]
fn run_shows_a_live_camera_until_its_stream_ends() {
    let camera = dv_camera();
    let served = Served::start(&["run", "--input", &camera, "--no-reconnect", "--serve", "127.0.0.1:0", "--image-size", "320,180"]);
    served.wait_for("the stream ended", |s| s["ended"] == true);
    let s = served.status()["session"].clone();
    assert_eq!((s["live"].as_bool(), s["events"].as_u64(), s["dropped_events"].as_u64()), (Some(true), Some(1500), Some(0)), "{s}");
    let (code, _, png) = served.ask("GET", "/frame?after=0");
    assert_eq!(code, 200);
    assert!(png.starts_with(b"\x89PNG"), "the last picture");
}

/// A camera whose stream ends (DV restarted) is connected again and the session goes on;
/// while it cannot be, the status says so and why.
#[test]
fn run_connects_again_to_a_camera_whose_stream_ended() {
    let camera = dv_camera_serving(dynapviz_testkit::dv_capture("lz4"), 2);
    let served = Served::start(&["run", "--input", &camera, "--serve", "127.0.0.1:0", "--image-size", "320,180"]);
    served.wait_for("both connections' events", |s| s["events"] == 3000);
    // The camera stopped listening: the stream stays down, and the status says why.
    served.wait_for("the stream down", |s| s["link_down"]["tries"].as_u64().is_some_and(|t| t >= 1));
    let s = served.status()["session"].clone();
    assert_eq!((s["reconnects"].as_u64(), s["ended"].as_bool(), s["dropped_events"].as_u64()), (Some(1), Some(false), Some(0)), "{s}");
    let why = s["link_down"]["why"].as_str().unwrap_or_default();
    assert!(why.contains(&camera) && why.contains("expected a DV network output"), "{s}");
}

#[test]
fn a_live_camera_cannot_be_paced_looped_or_rendered_headless() {
    for (flags, says) in [
        (&["--speed", "2"][..], "a live stream plays as it comes"),
        (&["--max-gap", "1"], "a live stream plays as it comes"),
        (&["--loop"], "--loop: a live stream has no end"),
        (&["--headless", "/tmp/never"], "--headless: pictures of a live stream"),
    ] {
        // Refused before connecting: nothing listens at port 9.
        let (ok, _, err) = dynapviz(&[&["run", "--input", "tcp://127.0.0.1:9"][..], flags].concat());
        assert!(!ok && err.contains(says), "{flags:?}: {err}");
    }
    let (ok, _, err) = dynapviz(&["run", "--input", "tcp://127.0.0.1:9", "--no-reconnect"]);
    assert!(!ok && err.contains("tcp://127.0.0.1:9: ") && err.contains("expected a DV network output"), "{err}");
}

/// `run` started before the camera waits for it, saying why; it shows the stream once it
/// comes. With `--no-reconnect` it does not wait (above).
#[test]
fn run_waits_for_a_camera_that_is_not_up_yet() {
    let (mut child, port) = waiting_for_a_camera(|camera| {
        ["run", "--input", camera, "--serve", "127.0.0.1:0", "--image-size", "320,180"].map(String::from).to_vec()
    });
    // The camera comes up.
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("the port again");
    let bytes = dynapviz_testkit::dv_capture("lz4");
    std::thread::spawn(move || {
        if let Ok((mut client, _)) = listener.accept() {
            let _ = std::io::Write::write_all(&mut client, &bytes);
        }
    });
    let line = first_line(child.stdout.as_mut().expect("stdout"));
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.starts_with("serving the dashboard at http://127.0.0.1:"), "{line}");
}

/// A stream whose header does not state the sensor size cannot be fitted to the network's
/// input without reading it to its end, which a camera has not: refused at once.
#[test]
fn a_live_stream_without_its_sensor_size_is_refused() {
    let (model, arch) = demo_model();
    let camera = dv_camera_with(|bytes| {
        // The header's XML names the width `sizeX`: another name of the same length.
        let at = bytes.windows(11).position(|w| w == b"key=\"sizeX\"").expect("sizeX in the header");
        bytes[at + 9] = b'Q';
    });
    let (ok, _, err) = dynapviz(&["simulate", "--model", &model, "--arch", &arch, "--input", &camera]);
    assert!(!ok && err.contains("the stream states no sensor size"), "{err}");
    let camera = dv_camera_with(|bytes| {
        let at = bytes.windows(11).position(|w| w == b"key=\"sizeY\"").expect("sizeY in the header");
        bytes[at + 9] = b'Q';
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("never.aedat4");
    let (ok, _, err) = dynapviz(&["convert", &camera, out.to_str().expect("path")]);
    assert!(!ok && err.contains("the stream states no sensor size: give it with --geometry WxH"), "{err}");
}

/// What `simulate --json` prints for the demo's model on `input` (its pixels as they are),
/// less what differs between runs and inputs of the same events.
fn simulate_demo_json(input: &str) -> serde_json::Value {
    let (model, arch) = demo_model();
    let args = ["simulate", "--model", &model, "--arch", &arch, "--input", input, "--no-rescale", "--monitor", "dvs,-1", "--json"];
    let (ok, out, err) = dynapviz(&args);
    assert!(ok, "{input}: {err}");
    let mut v: serde_json::Value = serde_json::from_str(&out).expect("json");
    for what_differs in ["input", "wall_seconds", "events_per_second"] {
        v.as_object_mut().expect("object").remove(what_differs);
    }
    v
}

/// The demo's model and architecture files.
fn demo_model() -> (String, String) {
    let root = env!("CARGO_MANIFEST_DIR");
    (format!("{root}/models/gesture-synth.safetensors"), format!("{root}/models/sinabs-gesture.toml"))
}

/// Runs dynapviz with the arguments `args` makes of a camera's address (see
/// [`dv_camera_stepped`]); presses Ctrl-C once it has the first packet and waits for more, then
/// lets the camera send the next, which wakes it. Returns what it did.
#[cfg(unix)]
fn ctrl_c_while_waiting_for_the_second_packet(args: impl FnOnce(&str) -> Vec<String>) -> std::process::Output {
    let (camera, next) = dv_camera_stepped();
    let child = Command::new(env!("CARGO_BIN_EXE_dynapviz"))
        .args(args(&camera))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run dynapviz");
    std::thread::sleep(std::time::Duration::from_millis(2500));
    // SAFETY: a signal to the child this test started.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) }, 0);
    std::thread::sleep(std::time::Duration::from_millis(300));
    next.send(()).expect("the camera");
    let done = child.wait_with_output().expect("the child ends");
    drop(next);
    done
}

/// A camera that sends the stream's header and first packet, then one packet each time it is
/// told to, and closes when the sender is dropped; returns its address.
fn dv_camera_stepped() -> (String, std::sync::mpsc::Sender<()>) {
    let bytes = dynapviz_testkit::dv_capture("lz4");
    let parts: Vec<Vec<u8>> = dynapviz_testkit::dv_stream_parts(&bytes).into_iter().map(<[u8]>::to_vec).collect();
    let (next, told) = std::sync::mpsc::channel::<()>();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    std::thread::spawn(move || {
        let Ok((mut client, _)) = listener.accept() else { return };
        let mut parts = parts.into_iter();
        for part in parts.by_ref().take(2) {
            let _ = std::io::Write::write_all(&mut client, &part);
        }
        while told.recv().is_ok() {
            if let Some(part) = parts.next() {
                let _ = std::io::Write::write_all(&mut client, &part);
            }
        }
    });
    (format!("tcp://{addr}"), next)
}

/// Recording a live camera: `--seconds` stops it at that much of its time; Ctrl-C stops it
/// too, and either way the file is complete and readable.
#[cfg(unix)]
#[test]
fn convert_records_a_live_camera_until_seconds_or_ctrl_c() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("cut.aedat4");
    let (ok, said, err) = dynapviz(&["convert", &dv_camera(), out.to_str().expect("path"), "--seconds", "0.01"]);
    assert!(ok && said.contains("stopped by --seconds"), "{said}{err}");
    let (ok, json, err) = dynapviz(&["inspect", out.to_str().expect("path"), "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    let (first, last) = (v["t_first_us"].as_i64().expect("t"), v["t_last_us"].as_i64().expect("t"));
    assert!(last - first < 10_000 && v["events"].as_u64().is_some_and(|n| n > 0 && n < 1500), "{v}");
    let (ok, _, err) = dynapviz(&["convert", &dv_camera(), out.to_str().expect("path"), "--seconds", "0"]);
    assert!(!ok && err.contains("--seconds 0: expected seconds above 0"), "{err}");

    let recorded = dir.path().join("live.aedat4");
    let done = ctrl_c_while_waiting_for_the_second_packet(|camera| {
        ["convert", camera, recorded.to_str().expect("path")].map(String::from).to_vec()
    });
    let said = String::from_utf8_lossy(&done.stdout);
    assert!(done.status.success() && said.contains("wrote 1000 events") && said.contains("stopped by Ctrl-C"), "{said}");
    let (ok, json, err) = dynapviz(&["inspect", recorded.to_str().expect("path"), "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["events"], 1000, "{v}");
}

/// `convert --reconnect` records a camera across the end of its stream: the second
/// connection's events follow the first's (the camera's clock started again: they are shifted
/// to go on), and Ctrl-C while it is down and tried again stops it with the file complete.
#[cfg(unix)]
#[test]
fn convert_reconnect_records_on_after_the_stream_ends_until_ctrl_c() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("both.aedat4");
    let out_arg = out.to_str().expect("path").to_string();
    let done = ctrl_c_after_two_connections(|camera| vec!["convert".into(), camera.into(), out_arg, "--reconnect".into()]);
    let (said, err) = (String::from_utf8_lossy(&done.stdout), String::from_utf8_lossy(&done.stderr));
    assert!(done.status.success() && said.contains("wrote 3000 events") && said.contains("stopped by Ctrl-C"), "{said}{err}");
    assert!(err.contains("the stream ended: connecting again every 1 s"), "{err}");
    let (ok, json, err) = dynapviz(&["inspect", out.to_str().expect("path"), "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!((v["events"].as_u64(), v["non_monotonic"].as_u64()), (Some(3000), Some(0)), "{v}");
    let span = v["t_last_us"].as_i64().expect("t") - v["t_first_us"].as_i64().expect("t");
    assert!(span > 1_000_000, "the outage between the connections is kept: {span} µs");
    let (ok, _, err) = dynapviz(&["convert", out.to_str().expect("path"), "x.csv", "--reconnect"]);
    assert!(!ok && err.contains("--reconnect: ") && err.contains("is a file, not a live stream"), "{err}");
}

/// Runs the command `args` makes of a camera's address, the camera serving its stream (1 500
/// events) to two connections, one after the other; Ctrl-C after the second, while the command
/// tries to connect again.
#[cfg(unix)]
fn ctrl_c_after_two_connections(args: impl FnOnce(&str) -> Vec<String>) -> std::process::Output {
    let camera = dv_camera_serving(dynapviz_testkit::dv_capture("lz4"), 2);
    let child = Command::new(env!("CARGO_BIN_EXE_dynapviz"))
        .args(args(&camera))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run dynapviz");
    // The second connection after a second; then tries that fail.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    // SAFETY: a signal to the child this test started.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) }, 0);
    child.wait_with_output().expect("the child ends")
}

/// `inspect --reconnect` counts a camera's events across the end of its stream, until Ctrl-C.
#[cfg(unix)]
#[test]
fn inspect_reconnect_counts_on_after_the_stream_ends() {
    let done = ctrl_c_after_two_connections(|camera| ["inspect", camera, "--json", "--reconnect"].map(String::from).to_vec());
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    let v: serde_json::Value = serde_json::from_slice(&done.stdout).expect("json");
    assert_eq!((v["events"].as_u64(), v["non_monotonic"].as_u64(), v["width"].as_u64()), (Some(3000), Some(0), Some(320)), "{v}");
}

/// `simulate --reconnect` started before the camera waits for it, simulates its stream, and
/// prints the results at Ctrl-C (the stream down again by then).
#[cfg(unix)]
#[test]
fn simulate_reconnect_waits_for_a_camera_that_is_not_up_yet() {
    let (model, arch) = demo_model();
    let (child, port) = waiting_for_a_camera(|camera| {
        ["simulate", "--model", &model, "--arch", &arch, "--input", camera, "--reconnect", "--no-rescale", "--json"]
            .map(String::from)
            .to_vec()
    });
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("the port again");
    let (mut client, _) = listener.accept().expect("dynapviz connects");
    std::io::Write::write_all(&mut client, &dynapviz_testkit::dv_capture("lz4")).expect("the stream");
    drop((client, listener));
    std::thread::sleep(std::time::Duration::from_millis(1500));
    // SAFETY: a signal to the child this test started.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) }, 0);
    let done = child.wait_with_output().expect("the child ends");
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    let v: serde_json::Value = serde_json::from_slice(&done.stdout).expect("json");
    assert_eq!(v["input_events"], 1500, "{v}");
}

/// `simulate` and `inspect` on a live camera: Ctrl-C ends the stream, and the results of what
/// came are printed as for a recording.
#[cfg(unix)]
#[test]
fn simulate_on_a_live_camera_stops_at_ctrl_c_with_its_results() {
    let (model, arch) = demo_model();
    let done = ctrl_c_while_waiting_for_the_second_packet(|camera| {
        ["simulate", "--model", &model, "--arch", &arch, "--input", camera, "--json"].map(String::from).to_vec()
    });
    assert!(done.status.success(), "{done:?}");
    let v: serde_json::Value = serde_json::from_slice(&done.stdout).expect("json");
    // The packet it was waiting for when Ctrl-C came is the last it takes.
    assert_eq!(v["input_events"], 1000, "{v}");
    let done = ctrl_c_while_waiting_for_the_second_packet(|camera| ["inspect", camera, "--json"].map(String::from).to_vec());
    assert!(done.status.success(), "{done:?}");
    let v: serde_json::Value = serde_json::from_slice(&done.stdout).expect("json");
    assert_eq!((v["events"].as_u64(), v["width"].as_u64()), (Some(1000), Some(320)), "{v}");
}
