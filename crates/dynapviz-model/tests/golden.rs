//! The sinabs fixtures are the contract: conversion, discretization and mapping of the gesture
//! network must equal `expected.json` from both import paths (ONNX, and .pt + ARCH), and those
//! of the networks in `tests/sinabs-cases` (made by sinabs itself, see
//! `tools/sinabs_golden.py`) their own.

use std::path::PathBuf;

use dynapviz_model::network::Reset;
use dynapviz_model::{Network, Neurons, Pipeline, report};

fn shared() -> Option<PathBuf> {
    // The shared folder itself: the tests name paths below it.
    dynapviz_testkit::shared("fixtures/golden").map(|d| d.join("../.."))
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn check(net: &Network, expected: &serde_json::Value, what: &str) {
    let layers = report::layers(net);
    let want = expected["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), want.len(), "{what}: layer count");
    for (got, want) in layers.iter().zip(want) {
        let i = got.index;
        let n = |k: &str| want[k].as_f64().unwrap_or_else(|| panic!("{k}"));
        let pair = |k: &str| want[k].as_array().map(|a| a.iter().map(|v| v.as_u64().unwrap_or(0) as usize).collect::<Vec<_>>());
        assert_eq!(got.index as f64, n("index"), "{what}");
        assert_eq!(got.core.map(|c| c as f64), Some(n("core")), "{what} layer {i}: core");
        assert_eq!(got.in_channels as f64, n("in_channels"), "{what} layer {i}: in_channels");
        assert_eq!(got.out_channels as f64, n("out_channels"), "{what} layer {i}: out_channels");
        assert_eq!(Some(got.kernel.to_vec()), pair("kernel"), "{what} layer {i}: kernel");
        assert_eq!(Some(got.stride.to_vec()), pair("stride"), "{what} layer {i}: stride");
        assert_eq!(Some(got.padding.to_vec()), pair("padding"), "{what} layer {i}: padding");
        assert_eq!(Some(got.pool.to_vec()), pair("pool"), "{what} layer {i}: pool");
        assert_eq!(got.threshold, n("threshold"), "{what} layer {i}: threshold");
        assert_eq!(got.min_v_mem, n("min_v_mem"), "{what} layer {i}: min_v_mem");
        // The shared case predates the field: its layers subtract.
        assert_eq!(got.return_to_zero, want["return_to_zero"].as_bool().unwrap_or(false), "{what} layer {i}: return_to_zero");
        assert_eq!(got.weight_min, n("weight_min"), "{what} layer {i}: weight_min");
        assert_eq!(got.weight_max, n("weight_max"), "{what} layer {i}: weight_max");
        assert_eq!(got.weight_abs_sum, n("weight_abs_sum"), "{what} layer {i}: weight_abs_sum");
        assert_eq!(got.weight_sha256_i8_oihw.as_deref(), want["weight_sha256_i8_oihw"].as_str(), "{what} layer {i}: weights sha256");
    }
    assert_eq!(net.dvs.merge_polarities, expected["dvs"]["merge_polarities"].as_bool().expect("dvs"), "{what}: dvs merge");
}

/// sinabs' `from_model` options of a case besides `reset_fn` (see `tools/sinabs_golden.py`'s
/// `FROM_MODEL`), or its defaults.
fn from_model(expected: &serde_json::Value) -> Neurons {
    let option = |name: &str| expected["from_model"][name].as_f64().map(|v| v as f32);
    Neurons { spike_threshold: option("spike_threshold"), min_v_mem: option("min_v_mem"), bias_rescaling: option("bias_rescaling") }
}

/// sinabs' `reset_fn` of a case (the argument of `from_model`, see `tools/sinabs_golden.py`),
/// or `None` for its default.
fn reset_fn(expected: &serde_json::Value) -> Option<Reset> {
    match expected["reset_fn"].as_str() {
        Some("MembraneReset") => Some(Reset::Zero),
        None | Some("MembraneSubtract") => None,
        Some(other) => panic!("unknown reset_fn {other}"),
    }
}

/// Each case's network as both of torch's exporters write it: `model.onnx` (TorchScript) and,
/// but for networks with batch norm (see `tools/sinabs_golden.py`), `model.dynamo.onnx`
/// (torch's default since 2.9: other operators, weights in a `.data` file beside it); and, for
/// the chains sinabs can export, as sinabs' `to_nir` writes its spiking network, and for the
/// graphs, as `tools/nir_cases.py` writes their torch.fx trace (`model.nir`); and for the chains
/// without batch norm, as the state_dict of sinabs' spiking network with an architecture file
/// naming its IAF layers (`snn.pt`, `snn.toml`).
#[test]
fn other_networks_convert_discretize_and_map_as_sinabs_does() {
    let dir = repo().join("tests/sinabs-cases");
    let (mut cases, mut dynamo, mut nir, mut snn) = (0, 0, 0, 0);
    for entry in std::fs::read_dir(&dir).expect("tests/sinabs-cases") {
        let case = entry.expect("entry").path();
        let Ok(text) = std::fs::read_to_string(case.join("expected.json")) else { continue };
        let expected: serde_json::Value = serde_json::from_str(&text).expect("json");
        let shape: Vec<usize> =
            expected["input_shape"].as_array().expect("shape").iter().map(|v| v.as_u64().unwrap_or(0) as usize).collect();
        for file in ["model.onnx", "model.dynamo.onnx", "model.nir", "snn.pt"] {
            let model = case.join(file);
            if file != "model.onnx" && !model.exists() {
                continue;
            }
            let mut pipeline = Pipeline::new(&model).device(expected["device"].as_str().expect("device"));
            // A NIR graph and an architecture file name the input shape themselves, and the
            // latter its layers' reset; an ANN's is sinabs' `reset_fn` for the case.
            match file {
                "model.nir" => {}
                "snn.pt" => pipeline = pipeline.arch(Some(&case.join("snn.toml"))),
                _ => {
                    pipeline =
                        pipeline.input_shape([shape[0], shape[1], shape[2]]).reset(reset_fn(&expected)).neurons(from_model(&expected))
                }
            }
            let net = pipeline.build().unwrap_or_else(|e| panic!("{}: {e}", model.display()));
            check(&net, &expected, &model.display().to_string());
            let pool: Vec<usize> =
                expected["dvs"]["pooling"].as_array().expect("pooling").iter().map(|v| v.as_u64().unwrap_or(0) as usize).collect();
            assert_eq!(net.dvs.pool.to_vec(), pool, "{}: dvs pooling", model.display());
            match file {
                "model.onnx" => cases += 1,
                "model.dynamo.onnx" => dynamo += 1,
                "model.nir" => nir += 1,
                _ => snn += 1,
            }
        }
    }
    assert!(cases >= 21, "the repository's sinabs cases are missing from {}", dir.display());
    assert!(dynamo >= 17, "the dynamo exports of the sinabs cases are missing from {}", dir.display());
    assert!(nir >= 15, "the NIR exports of the sinabs cases (tools/nir-cases) are missing from {}", dir.display());
    assert!(snn >= 9, "the spiking state_dicts of the sinabs cases (sinabs_golden.py --snn-state) are missing from {}", dir.display());
}

/// A biased layer starts where sinabs' shape inference left it: one step of zeros charged every
/// neuron by its bias (layer 1 of `small_bias`: the discretized bias itself, since nothing fires).
#[test]
fn a_biased_layer_starts_charged_by_its_bias() {
    let case = repo().join("tests/sinabs-cases/small_bias");
    let net = Pipeline::new(&case.join("model.onnx")).input_shape([2, 32, 32]).build().unwrap_or_else(|e| panic!("{e}"));
    for layer in &net.layers {
        let q = layer.quant.as_ref().expect("discretized");
        let bias = q.bias.as_ref().expect("biased");
        let start = q.initial_v_mem.as_ref().expect("charged");
        let per_channel = layer.conv_out[0] * layer.conv_out[1];
        assert_eq!(start.len(), layer.out_channels * per_channel);
        // Below threshold, nothing fired in the step: every neuron holds its channel's bias.
        for (i, &v) in start.iter().enumerate() {
            assert_eq!(v, bias[i / per_channel], "layer {} neuron {i}", layer.index);
        }
    }
}

fn expected(shared: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(shared.join("fixtures/golden/gesture_r50/expected.json")).expect("expected.json");
    serde_json::from_str(&text).expect("json")
}

#[test]
fn onnx_import_matches_sinabs() {
    let Some(shared) = shared() else { return };
    let net = Pipeline::new(&shared.join("fixtures/golden/gesture_r50/model.onnx"))
        .input_shape([2, 128, 128])
        .device("speck2edevkit")
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    check(&net, &expected(&shared), "onnx");
    let thresholds: Vec<i32> = net.layers.iter().map(|l| l.quant.as_ref().map_or(0, |q| q.threshold)).collect();
    assert_eq!(thresholds, [99, 103, 332, 377, 209, 471, 485, 136, 110]);
    let cores: Vec<usize> = net.layers.iter().map(|l| l.core.unwrap_or(99)).collect();
    assert_eq!(cores, [0, 1, 2, 8, 4, 5, 6, 3, 7]);
}

/// The gesture network as sinabs' `to_nir` exports its spiking network (its average poolings
/// as sum poolings with the next weights divided, see `tools/nir_cases.py`), input shape from
/// the file: the shared case's layers exactly.
#[test]
fn nir_import_matches_sinabs() {
    let Some(shared) = shared() else { return };
    let net = Pipeline::new(&repo().join("tests/nir/gesture_r50.nir")).device("speck2edevkit").build().unwrap_or_else(|e| panic!("{e}"));
    check(&net, &expected(&shared), "nir");
    assert_eq!(net.dvs.input_shape, [2, 128, 128]);
}

#[test]
fn state_dict_import_matches_sinabs_and_onnx() {
    let Some(shared) = shared() else { return };
    let net = Pipeline::new(&shared.join("fixtures/sinabs-gesture/dvs_gesture_params.pt"))
        .arch(Some(&repo().join("models/sinabs-gesture.toml")))
        .device("speck2e")
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    check(&net, &expected(&shared), "pt+arch");
    let onnx = Pipeline::new(&shared.join("fixtures/golden/gesture_r50/model.onnx"))
        .input_shape([2, 128, 128])
        .device("speck2e")
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        report::layers(&net).iter().map(|l| (l.weight_sha256_i8_oihw.clone(), l.core)).collect::<Vec<_>>(),
        report::layers(&onnx).iter().map(|l| (l.weight_sha256_i8_oihw.clone(), l.core)).collect::<Vec<_>>()
    );
}
