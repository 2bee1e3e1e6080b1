//! Binned mode against sinabs' own simulation: every layer's spike count after pooling, the
//! class counts and the per-bin class counts of `fixtures/golden/*/expected.json` (shared) and
//! of `tests/sinabs-cases/*/expected.json` (this repository's, made by sinabs with
//! `tools/sinabs_golden.py`: other shapes, biases, batch norm, merged polarities), with every
//! kernel this CPU has (a bin runs compiled for AVX2 or as plain Rust by the kernel allowed).

use std::path::{Path, PathBuf};

use dynapviz_chip::{Config, Kernel, Mode, Monitors, Simulator};
use dynapviz_model::network::Reset;
use dynapviz_model::{Neurons, Pipeline};

fn shared() -> Option<PathBuf> {
    // The shared folder itself: the tests name paths below it.
    dynapviz_testkit::shared("fixtures/golden").map(|d| d.join("../.."))
}

/// sinabs' `from_model` options of a case besides `reset_fn` (see `tools/sinabs_golden.py`'s
/// `FROM_MODEL`), or its defaults.
fn from_model(expected: &serde_json::Value) -> Neurons {
    let option = |name: &str| expected["from_model"][name].as_f64().map(|v| v as f32);
    Neurons { spike_threshold: option("spike_threshold"), min_v_mem: option("min_v_mem"), bias_rescaling: option("bias_rescaling") }
}

/// Runs `model` on `case`'s input (`case`'s own `model.onnx` when `None`) and compares.
fn run_case(case: &Path, model: Option<&Path>, kernel: Kernel, threads: usize) {
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(case.join("expected.json")).expect("expected.json")).expect("json");
    let shape: Vec<usize> = expected["input_shape"].as_array().expect("shape").iter().map(|v| v.as_u64().expect("dim") as usize).collect();
    let device = expected["device"].as_str().expect("device");
    let bin_us = expected["bin_us"].as_i64().expect("bin_us");
    // sinabs' `from_model(..., reset_fn=...)` of the case (absent: its default, subtract).
    let reset = match expected["reset_fn"].as_str() {
        Some("MembraneReset") => Some(Reset::Zero),
        None | Some("MembraneSubtract") => None,
        Some(other) => panic!("unknown reset_fn {other}"),
    };
    let net = Pipeline::new(model.unwrap_or(&case.join("model.onnx")))
        .input_shape([shape[0], shape[1], shape[2]])
        .device(device)
        .reset(reset)
        .neurons(from_model(&expected))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut reader = dynapviz_events::open(&case.join("input.csv")).expect("input");
    let events = dynapviz_events::read_all(reader.as_mut()).expect("events");
    assert_eq!(events.len() as u64, expected["input_events"].as_u64().expect("n"));
    let n = net.layers.len();
    // On two threads from the first event (see `Config::thread_gain`): cut after the first
    // layer, and in the second half where the layers' times measured in the first say.
    let config = Config {
        mode: Mode::Binned { bin_us },
        monitors: Monitors::of([n]),
        kernel,
        threads,
        thread_gain: 0.0,
        parallel_min_events: 0,
        ..Config::default()
    };
    let mut sim = Simulator::new(&net, config).expect("sim");
    assert_eq!(sim.kernel(), kernel);
    let mut out = Vec::new();
    let (early, late) = events.split_at(events.len() / 2);
    sim.process(early, &mut out);
    sim.process(late, &mut out);
    sim.finish(&mut out);
    let counters = sim.counters();
    for l in expected["layers"].as_array().expect("layers") {
        let i = l["index"].as_u64().expect("index") as usize;
        assert_eq!(
            counters[i].spikes_after_pool,
            l["spikes_after_pool"].as_u64().expect("spikes"),
            "layer {i} spikes_after_pool, {kernel:?}, {threads} thread(s)"
        );
    }
    // One count per output neuron, as sinabs' output has (see `Network::output_index`).
    let neurons = net.output_shape().iter().product();
    let bins = expected["bins"].as_u64().expect("bins") as usize;
    let mut per_bin = vec![vec![0u64; neurons]; bins];
    let mut total = vec![0u64; neurons];
    for s in &out {
        let i = net.output_index(usize::from(s.c), usize::from(s.y), usize::from(s.x));
        per_bin[(s.t / bin_us) as usize][i] += 1;
        total[i] += 1;
    }
    let want_total: Vec<u64> = expected["class_counts"].as_array().expect("cc").iter().map(|v| v.as_u64().expect("u")).collect();
    assert_eq!(total, want_total, "class_counts, {kernel:?}, {threads} thread(s)");
    let want_bins: Vec<Vec<u64>> = expected["class_counts_per_bin"]
        .as_array()
        .expect("per bin")
        .iter()
        .map(|b| b.as_array().expect("row").iter().map(|v| v.as_u64().expect("u")).collect())
        .collect();
    assert_eq!(per_bin, want_bins, "class_counts_per_bin, {kernel:?}, {threads} thread(s)");
}

/// Runs every case of `dir` with every kernel this CPU has, on one thread and on two; returns
/// how many cases there were.
fn run_cases(dir: &Path) -> usize {
    let mut cases = 0;
    for entry in std::fs::read_dir(dir).expect("cases dir") {
        let case = entry.expect("entry").path();
        if case.join("expected.json").exists() {
            for kernel in [Kernel::Portable, Kernel::Avx2, Kernel::Avx512] {
                if kernel.on_this_cpu() == kernel {
                    run_case(&case, None, kernel, 1);
                    run_case(&case, None, kernel, 2);
                } else {
                    dynapviz_testkit::note(&format!("this CPU has no {kernel:?} kernel: not tested"));
                }
            }
            cases += 1;
        }
    }
    cases
}

#[test]
fn binned_mode_reproduces_sinabs_bit_for_bit() {
    let Some(shared) = shared() else { return };
    assert!(run_cases(&shared.join("fixtures/golden")) > 0, "no golden cases found");
}

/// The gesture network imported from sinabs' NIR export of it (`tests/nir`, see
/// `tools/nir_cases.py`) runs as the shared case says, with the fastest kernel.
#[test]
fn binned_mode_reproduces_sinabs_from_a_nir_export() {
    let Some(shared) = shared() else { return };
    let nir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/nir/gesture_r50.nir");
    run_case(&shared.join("fixtures/golden/gesture_r50"), Some(&nir), Kernel::Avx512.on_this_cpu(), 1);
}

#[test]
fn binned_mode_reproduces_sinabs_on_other_networks() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/sinabs-cases");
    assert!(run_cases(&dir) >= 21, "the repository's sinabs cases are missing from {}", dir.display());
}
