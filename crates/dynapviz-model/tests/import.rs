//! Importers on files the tests write themselves (ONNX encoded by hand, safetensors, TOML) and on
//! damaged copies of the shared fixtures.

use std::path::{Path, PathBuf};

use dynapviz_model::network::Reset;
use dynapviz_model::{AnnLayer, Pipeline, import};

// ---- a minimal protobuf encoder for ONNX test graphs ----

fn varint(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let b = (v & 0x7F) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn bytes_field(tag: u64, data: &[u8], out: &mut Vec<u8>) {
    varint(tag << 3 | 2, out);
    varint(data.len() as u64, out);
    out.extend_from_slice(data);
}

fn int_field(tag: u64, v: u64, out: &mut Vec<u8>) {
    varint(tag << 3, out);
    varint(v, out);
}

fn tensor(name: &str, dims: &[u64], values: &[f32]) -> Vec<u8> {
    let mut t = Vec::new();
    for &d in dims {
        int_field(1, d, &mut t);
    }
    int_field(2, 1, &mut t);
    bytes_field(8, name.as_bytes(), &mut t);
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    bytes_field(9, &raw, &mut t);
    t
}

/// `tensor` in half precision: float16 (ONNX data type 10) or bfloat16 (16), as raw bytes or
/// one value per `int32_data` entry.
fn half_tensor(name: &str, dims: &[u64], bits: &[u16], data_type: u64, raw: bool) -> Vec<u8> {
    let mut t = Vec::new();
    for &d in dims {
        int_field(1, d, &mut t);
    }
    int_field(2, data_type, &mut t);
    if !raw {
        bits.iter().for_each(|&b| int_field(5, u64::from(b), &mut t));
    }
    bytes_field(8, name.as_bytes(), &mut t);
    if raw {
        bytes_field(9, &bits.iter().flat_map(|b| b.to_le_bytes()).collect::<Vec<u8>>(), &mut t);
    }
    t
}

fn node(op: &str, inputs: &[&str], output: &str, ints: &[(&str, &[u64])]) -> Vec<u8> {
    let mut n = Vec::new();
    for i in inputs {
        bytes_field(1, i.as_bytes(), &mut n);
    }
    bytes_field(2, output.as_bytes(), &mut n);
    bytes_field(3, format!("/{op}_{output}").as_bytes(), &mut n);
    bytes_field(4, op.as_bytes(), &mut n);
    for (name, vals) in ints {
        let mut a = Vec::new();
        bytes_field(1, name.as_bytes(), &mut a);
        for &v in *vals {
            // `group` is a scalar attribute (field i), the others are lists (field ints).
            int_field(if *name == "group" { 3 } else { 8 }, v, &mut a);
        }
        bytes_field(5, &a, &mut n);
    }
    n
}

fn model(nodes: &[Vec<u8>], inits: &[Vec<u8>]) -> Vec<u8> {
    let mut g = Vec::new();
    for n in nodes {
        bytes_field(1, n, &mut g);
    }
    for t in inits {
        bytes_field(5, t, &mut g);
    }
    let mut input = Vec::new();
    bytes_field(1, b"x", &mut input);
    bytes_field(11, &input, &mut g);
    let mut m = Vec::new();
    int_field(1, 8, &mut m);
    bytes_field(7, &g, &mut m);
    m
}

fn conv_graph(extra: Vec<Vec<u8>>) -> Vec<u8> {
    let w = tensor("w", &[4, 2, 3, 3], &conv_weights());
    let mut nodes = vec![
        node("Conv", &["x", "w"], "c", &[("kernel_shape", &[3, 3]), ("strides", &[1, 1]), ("pads", &[1, 1, 1, 1])]),
        node("Relu", &["c"], "r", &[]),
    ];
    nodes.extend(extra);
    model(&nodes, &[w])
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write");
    p
}

/// The weights of `conv_graph`, as `tensor` writes them into the model.
fn conv_weights() -> Vec<f32> {
    (0..72).map(|i| (i as f32 - 30.0) / 100.0).collect()
}

/// `conv_graph`'s weight tensor with its bytes in another file (ONNX external data, as torch's
/// dynamo exporter writes every weight): `entries` are its (key, value) pairs.
fn conv_graph_external(entries: &[(&str, &str)]) -> Vec<u8> {
    let mut t = Vec::new();
    for d in [4, 2, 3, 3] {
        int_field(1, d, &mut t);
    }
    int_field(2, 1, &mut t);
    bytes_field(8, b"w", &mut t);
    for (key, value) in entries {
        let mut e = Vec::new();
        bytes_field(1, key.as_bytes(), &mut e);
        bytes_field(2, value.as_bytes(), &mut e);
        bytes_field(13, &e, &mut t);
    }
    int_field(14, 1, &mut t);
    let nodes = [
        node("Conv", &["x", "w"], "c", &[("kernel_shape", &[3, 3]), ("strides", &[1, 1]), ("pads", &[1, 1, 1, 1])]),
        node("Relu", &["c"], "r", &[]),
    ];
    model(&nodes, &[t])
}

#[test]
fn weights_in_an_external_data_file_are_read_from_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 16 bytes of something else first, as when several tensors share the file.
    let mut data = vec![0xAB; 16];
    data.extend(conv_weights().iter().flat_map(|v| v.to_le_bytes()));
    std::fs::create_dir(dir.path().join("weights")).expect("mkdir");
    write(&dir.path().join("weights"), "m.data", &data);
    let length = (72 * 4).to_string();
    let entries = [("location", "weights/m.data"), ("offset", "16"), ("length", length.as_str())];
    let p = write(dir.path(), "ext.onnx", &conv_graph_external(&entries));
    let net = Pipeline::new(&p).input_shape([2, 16, 16]).device("speck2e").build().unwrap_or_else(|e| panic!("{e}"));
    let inline = write(dir.path(), "inline.onnx", &conv_graph(vec![]));
    let want = Pipeline::new(&inline).input_shape([2, 16, 16]).device("speck2e").build().expect("inline");
    assert_eq!(net.layers[0].float.weights, conv_weights());
    assert_eq!(net.layers[0].quant, want.layers[0].quant);
    // Without a length the tensor runs to the end of the file.
    let p = write(dir.path(), "rest.onnx", &conv_graph_external(&[("location", "weights/m.data"), ("offset", "16")]));
    let net = Pipeline::new(&p).input_shape([2, 16, 16]).build().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(net.layers[0].float.weights, conv_weights());
}

/// A bad reference to external data is an error naming the model, the tensor and what was
/// expected; it never reads outside the model's folder or allocates what the file does not hold.
#[test]
fn bad_external_data_is_an_error_naming_the_tensor() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "m.data", &[0u8; 100]);
    let all = (72 * 4).to_string();
    let cases: [(&[(&str, &str)], &str); 7] = [
        (&[], "names no file"),
        (&[("location", "missing.data")], "missing.data"),
        (&[("location", "../m.data")], "inside it"),
        (&[("location", "/etc/passwd")], "inside it"),
        (&[("location", "m.data"), ("length", all.as_str())], "which has 100"),
        (&[("location", "m.data"), ("offset", "18446744073709551615"), ("length", "2")], "which has 100"),
        (&[("location", "m.data"), ("offset", "ten")], "not a byte count"),
    ];
    for (entries, want) in cases {
        let p = write(dir.path(), "bad.onnx", &conv_graph_external(entries));
        let err = Pipeline::new(&p).input_shape([2, 16, 16]).build().expect_err("bad external data").to_string();
        assert!(err.contains("bad.onnx") && err.contains("tensor `w`") && err.contains(want), "{entries:?}: {err}");
    }
    // The file holds fewer bytes than the dims ask: not silently cut.
    let p = write(dir.path(), "short.onnx", &conv_graph_external(&[("location", "m.data")]));
    let err = Pipeline::new(&p).input_shape([2, 16, 16]).build().expect_err("short").to_string();
    assert!(err.contains("does not match its dims"), "{err}");
    write(dir.path(), "odd.data", &[0u8; 7]);
    let p = write(dir.path(), "odd.onnx", &conv_graph_external(&[("location", "odd.data")]));
    let err = Pipeline::new(&p).input_shape([2, 16, 16]).build().expect_err("odd").to_string();
    assert!(err.contains("7 bytes") && err.contains("4-byte"), "{err}");
}

#[test]
fn hand_encoded_onnx_imports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(dir.path(), "ok.onnx", &conv_graph(vec![]));
    let net = Pipeline::new(&p).input_shape([2, 16, 16]).device("speck2e").build().expect("build");
    assert_eq!(net.layers.len(), 1);
    assert_eq!(net.layers[0].padding, [1, 1]);
}

/// A network exported in half precision imports as the same network in single precision: its
/// weights widened exactly, whichever way the file stores them.
#[test]
fn half_precision_weights_import_as_their_exact_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Multiples of 1/64 below 1: exact in float16 and bfloat16.
    let values: Vec<f32> = (0..72).map(|i| (i as f32 - 30.0) / 64.0).collect();
    let conv = || node("Conv", &["x", "w"], "c", &[("kernel_shape", &[3, 3]), ("strides", &[1, 1]), ("pads", &[1, 1, 1, 1])]);
    let build = |name: &str, w: Vec<u8>| {
        let p = write(dir.path(), name, &model(&[conv(), node("Relu", &["c"], "r", &[])], &[w]));
        Pipeline::new(&p).input_shape([2, 16, 16]).device("speck2e").build().expect(name)
    };
    let single = build("f32.onnx", tensor("w", &[4, 2, 3, 3], &values));
    // float16: sign, exponent biased by 15, 10 bits of mantissa; bfloat16: a float's top half.
    let f16 = |v: f32| {
        let (sign, a) = (u16::from(v < 0.0) << 15, v.abs());
        if a == 0.0 {
            sign
        } else {
            sign | (((a.log2().floor() as i32 + 15) as u16) << 10) | ((a / 2f32.powf(a.log2().floor()) - 1.0) * 1024.0) as u16
        }
    };
    let bf16 = |v: f32| (v.to_bits() >> 16) as u16;
    for (name, bits, data_type) in
        [("f16", values.iter().map(|&v| f16(v)).collect::<Vec<_>>(), 10), ("bf16", values.iter().map(|&v| bf16(v)).collect(), 16)]
    {
        for raw in [true, false] {
            let half = build(&format!("{name}-{raw}.onnx"), half_tensor("w", &[4, 2, 3, 3], &bits, data_type, raw));
            assert_eq!(half.layers[0].float.weights, single.layers[0].float.weights, "{name}, raw {raw}");
            assert_eq!(half.layers[0].quant, single.layers[0].quant, "{name}, raw {raw}");
        }
    }
}

/// torch's exporter writes an initializer equal to another (an untrained batch norm's weight and
/// running variance) as an Identity node of it: a constant, not a layer or a branch.
#[test]
fn an_identity_of_a_constant_is_that_constant() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ones, zeros) = (tensor("g", &[4], &[1.0; 4]), tensor("b", &[4], &[0.0; 4]));
    let w = tensor("w", &[4, 2, 3, 3], &conv_weights());
    let nodes = [
        node("Identity", &["g"], "var", &[]),
        node("Identity", &["b"], "mean", &[]),
        node("Conv", &["x", "w"], "c", &[("kernel_shape", &[3, 3]), ("strides", &[1, 1]), ("pads", &[1, 1, 1, 1])]),
        node("BatchNormalization", &["c", "g", "b", "mean", "var"], "n", &[]),
        node("Relu", &["n"], "r", &[]),
    ];
    let p = write(dir.path(), "bn.onnx", &model(&nodes, &[w, ones, zeros]));
    let net = Pipeline::new(&p).input_shape([2, 16, 16]).device("speck2e").build().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(net.layers.len(), 1);
    // A batch norm of ones and zeros, folded as sinabs folds it (no eps), changes nothing.
    assert_eq!(net.layers[0].float.weights[0], -0.3);
    assert_eq!(net.layers[0].float.bias, Some(vec![0.0; 4]));
}

/// `Relu -> sinabs SumPool2d(2)` as torch exports `lp_pool2d`'s formula, with these constants:
/// the norm, the pooling area the sum multiplies by, and the root taken at the end.
fn sum_pool_graph(norm: f32, area: f32, root: f32) -> Vec<u8> {
    let w = tensor("w", &[4, 2, 3, 3], &conv_weights());
    let pair: &[(&str, &[u64])] = &[("kernel_shape", &[2, 2]), ("strides", &[2, 2])];
    let nodes = [
        node("Conv", &["x", "w"], "c", &[("kernel_shape", &[3, 3]), ("strides", &[1, 1]), ("pads", &[1, 1, 1, 1])]),
        node("Relu", &["c"], "r", &[]),
        node("Pow", &["r", "norm"], "a", &[]),
        node("AveragePool", &["a"], "avg", pair),
        node("Sign", &["avg"], "sg", &[]),
        node("Abs", &["avg"], "ab", &[]),
        node("Relu", &["ab"], "rl", &[]),
        node("Mul", &["sg", "rl"], "m", &[]),
        node("Mul", &["m", "area"], "m2", &[]),
        node("Pow", &["m2", "root"], "out", &[]),
    ];
    model(&nodes, &[w, tensor("norm", &[], &[norm]), tensor("area", &[], &[area]), tensor("root", &[], &[root])])
}

/// sinabs' `SumPool2d` in an ANN reaches the ONNX file as `lp_pool2d`'s formula; it imports as
/// a sum pooling (no 1/4 in the next layer's weights, unlike AvgPool2d). Anything else of that
/// shape is refused with the node that does not fit.
#[test]
fn a_sinabs_sum_pool_exported_as_its_formula_is_a_sum_pooling() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(dir.path(), "sum.onnx", &sum_pool_graph(1.0, 4.0, 1.0));
    let (ann, _) = import::load(&p, None).unwrap_or_else(|e| panic!("{e}"));
    let kinds: Vec<_> = ann.layers.iter().map(|l| l.layer.clone()).collect();
    assert!(
        matches!(kinds[..], [AnnLayer::Conv { .. }, AnnLayer::Relu, AnnLayer::SumPool { kernel: [2, 2], stride: [2, 2] }]),
        "{kinds:?}"
    );
    let net = Pipeline::new(&p).input_shape([2, 16, 16]).build().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(net.layers[0].pool, [2, 2]);
    for (norm, area, root, want) in [(2.0, 4.0, 0.5, "norm 2"), (1.0, 2.0, 1.0, "pooling area 4"), (1.0, 4.0, 2.0, "1/p = 1")] {
        let p = write(dir.path(), "bad.onnx", &sum_pool_graph(norm, area, root));
        let err = Pipeline::new(&p).input_shape([2, 16, 16]).build().expect_err("not a sum pooling").to_string();
        assert!(err.contains("bad.onnx") && err.contains(want), "{want}: {err}");
    }
    // Cut short after the pooling's Relu: the graph ends inside it.
    let nodes = [
        node("Conv", &["x", "w"], "c", &[("kernel_shape", &[3, 3]), ("strides", &[1, 1]), ("pads", &[1, 1, 1, 1])]),
        node("Relu", &["c"], "r", &[]),
        node("Pow", &["r", "norm"], "a", &[]),
        node("AveragePool", &["a"], "avg", &[("kernel_shape", &[2, 2]), ("strides", &[2, 2])]),
        node("Sign", &["avg"], "sg", &[]),
        node("Abs", &["avg"], "ab", &[]),
        node("Relu", &["ab"], "rl", &[]),
    ];
    let g = model(&nodes, &[tensor("w", &[4, 2, 3, 3], &conv_weights()), tensor("norm", &[], &[1.0])]);
    let p = write(dir.path(), "short.onnx", &g);
    let err = Pipeline::new(&p).input_shape([2, 16, 16]).build().expect_err("cut").to_string();
    assert!(err.contains("ends inside a sum pooling"), "{err}");
}

/// torch's exporter at opsets 9 and 10 writes a `Pad` of nothing (its pads an attribute)
/// between lp_pool2d's `Pow` and its `AveragePool`: still a sum pooling.
#[test]
fn a_sum_pool_with_the_empty_pad_of_old_opsets_is_a_sum_pooling() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nodes = [
        node("Conv", &["x", "w"], "c", &[("kernel_shape", &[3, 3]), ("strides", &[1, 1]), ("pads", &[1, 1, 1, 1])]),
        node("Relu", &["c"], "r", &[]),
        node("Pow", &["r", "norm"], "a", &[]),
        node("Pad", &["a"], "padded", &[("pads", &[0; 8])]),
        node("AveragePool", &["padded"], "avg", &[("kernel_shape", &[2, 2]), ("strides", &[2, 2])]),
        node("Sign", &["avg"], "sg", &[]),
        node("Abs", &["avg"], "ab", &[]),
        node("Relu", &["ab"], "rl", &[]),
        node("Mul", &["sg", "rl"], "m", &[]),
        node("Mul", &["m", "area"], "m2", &[]),
        node("Pow", &["m2", "norm"], "out", &[]),
    ];
    let tensors = [tensor("w", &[4, 2, 3, 3], &conv_weights()), tensor("norm", &[], &[1.0]), tensor("area", &[], &[4.0])];
    let p = write(dir.path(), "opset9.onnx", &model(&nodes, &tensors));
    let (ann, _) = import::load(&p, None).unwrap_or_else(|e| panic!("{e}"));
    let kinds: Vec<_> = ann.layers.iter().map(|l| l.layer.clone()).collect();
    assert!(
        matches!(kinds[..], [AnnLayer::Conv { .. }, AnnLayer::Relu, AnnLayer::SumPool { kernel: [2, 2], stride: [2, 2] }]),
        "{kinds:?}"
    );
}

/// Two sum poolings of one layer's spikes (2x2 to one layer, 4x4 to another), as torch's
/// TorchScript exporter writes them: it keeps one `Pow(x, 1)` for both, so the second pooling's
/// `AveragePool` reads the first's `Pow`, written nodes before it. Both are sum poolings of the
/// layer, whatever the order of their nodes.
#[test]
fn sum_poolings_that_share_their_first_node_are_each_a_sum_pooling() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conv = |x: &str, w: &str, out: &str| {
        node("Conv", &[x, w], out, &[("kernel_shape", &[1, 1]), ("strides", &[1, 1]), ("pads", &[0, 0, 0, 0])])
    };
    let rest = |k: u64, out: &str, area: &str| {
        let tag = |s: &str| format!("{s}{k}");
        vec![
            node("AveragePool", &["a"], &tag("avg"), &[("kernel_shape", &[k, k]), ("strides", &[k, k])]),
            node("Sign", &[&tag("avg")], &tag("sg"), &[]),
            node("Abs", &[&tag("avg")], &tag("ab"), &[]),
            node("Relu", &[&tag("ab")], &tag("rl"), &[]),
            node("Mul", &[&tag("sg"), &tag("rl")], &tag("m"), &[]),
            node("Mul", &[&tag("m"), area], &tag("m2"), &[]),
            node("Pow", &[&tag("m2"), "norm"], out, &[]),
        ]
    };
    let mut nodes = vec![
        node("Conv", &["x", "w"], "c", &[("kernel_shape", &[3, 3]), ("strides", &[1, 1]), ("pads", &[1, 1, 1, 1])]),
        node("Relu", &["c"], "r", &[]),
        node("Pow", &["r", "norm"], "a", &[]),
    ];
    nodes.extend(rest(2, "p2", "area4"));
    nodes.extend([conv("p2", "w2", "c2"), node("Relu", &["c2"], "r2", &[])]);
    // The second pooling reads the first's Pow; the layer after it reads both poolings.
    nodes.extend(rest(4, "p4", "area16"));
    nodes.extend([conv("r2", "w3", "c3"), node("Relu", &["c3"], "r3", &[])]);
    nodes.extend([node("AveragePool", &["r3"], "q", &[("kernel_shape", &[2, 2]), ("strides", &[2, 2])])]);
    nodes.extend([node("Add", &["q", "p4"], "m", &[]), conv("m", "w4", "c4"), node("Relu", &["c4"], "r4", &[])]);
    let tensors = [
        tensor("w", &[4, 2, 3, 3], &conv_weights()),
        tensor("w2", &[4, 4, 1, 1], &[0.25; 16]),
        tensor("w3", &[4, 4, 1, 1], &[0.5; 16]),
        tensor("w4", &[3, 4, 1, 1], &[0.125; 12]),
        tensor("norm", &[], &[1.0]),
        tensor("area4", &[], &[4.0]),
        tensor("area16", &[], &[16.0]),
    ];
    let p = write(dir.path(), "shared.onnx", &model(&nodes, &tensors));
    let (ann, _) = import::load(&p, None).unwrap_or_else(|e| panic!("{e}"));
    let pools: Vec<_> = ann
        .layers
        .iter()
        .filter_map(|l| match l.layer {
            AnnLayer::SumPool { kernel, .. } => Some(kernel),
            _ => None,
        })
        .collect();
    assert_eq!(pools, [[2, 2], [4, 4]]);
    let net = Pipeline::new(&p).input_shape([2, 16, 16]).device("speck2e").build().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(net.layers.len(), 4);
    // The first layer sends its spikes to the second (pooled 2x2) and to the last (4x4).
    let mut pools = net.layers[0].destination_pools.clone();
    pools.sort();
    assert_eq!(pools, [[2, 2], [4, 4]]);
}

#[test]
fn unknown_operator_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(dir.path(), "sig.onnx", &conv_graph(vec![node("Sigmoid", &["r"], "s", &[])]));
    let err = Pipeline::new(&p).input_shape([2, 16, 16]).build().expect_err("unknown op").to_string();
    assert!(err.contains("node `/Sigmoid_s` (Sigmoid)") && err.contains("unknown operator Sigmoid"), "{err}");
}

/// `conv_graph`'s layer, a second conv on its spikes, and an `Add` of the two layers' spikes
/// into a third conv (sinabs' `Merge`), with `between` after the second layer's ReLU.
fn residual_graph(between: Vec<Vec<u8>>, merged: &str) -> Vec<u8> {
    let conv = |x: &str, w: &str, out: &str| {
        node("Conv", &[x, w], out, &[("kernel_shape", &[3, 3]), ("strides", &[1, 1]), ("pads", &[1, 1, 1, 1])])
    };
    let w1 = tensor("w", &[4, 2, 3, 3], &conv_weights());
    let w2 = tensor("w2", &[4, 4, 3, 3], &[0.05; 144]);
    let w3 = tensor("w3", &[3, 4, 3, 3], &[0.1; 108]);
    let mut nodes = vec![conv("x", "w", "c"), node("Relu", &["c"], "r", &[]), conv("r", "w2", "c2"), node("Relu", &["c2"], "r2", &[])];
    nodes.extend(between);
    nodes.extend([node("Add", &["r", merged], "m", &[]), conv("m", "w3", "c3")]);
    model(&nodes, &[w1, w2, w3])
}

#[test]
fn an_add_of_two_layers_spikes_is_a_merge_into_the_next_layer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(dir.path(), "res.onnx", &residual_graph(Vec::new(), "r2"));
    let net = Pipeline::new(&p).input_shape([2, 16, 16]).build().unwrap_or_else(|e| panic!("{e}"));
    let dests: Vec<_> = net.layers.iter().map(|l| l.destinations.clone()).collect();
    assert_eq!(dests, [vec![2, 3], vec![3], vec![]]);
    assert_eq!(net.layers[2].in_shape, [4, 16, 16]);
    // Padded by torch to the larger shape before the Add: the merged layer takes it.
    let pad = node("Pad", &["p2"], "pp", &[("pads", &[0, 0, 0, 0, 0, 0, 8, 8])]);
    let pool = node("AveragePool", &["r2"], "p2", &[("kernel_shape", &[2, 2]), ("strides", &[2, 2])]);
    let p = write(dir.path(), "padded.onnx", &residual_graph(vec![pool.clone(), pad], "pp"));
    let net = Pipeline::new(&p).input_shape([2, 16, 16]).build().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((net.layers[1].pool, net.layers[1].out_shape, net.layers[2].in_shape), ([2, 2], [4, 8, 8], [4, 16, 16]));
    // Zeros before the rows are not a merge's padding.
    let front = node("Pad", &["p2"], "pp", &[("pads", &[0, 0, 8, 0, 0, 0, 0, 8])]);
    let p = write(dir.path(), "front.onnx", &residual_graph(vec![pool, front], "pp"));
    let err = Pipeline::new(&p).input_shape([2, 16, 16]).build().expect_err("front padding").to_string();
    assert!(err.contains("front.onnx") && err.contains("(Pad)") && err.contains("only zeros after"), "{err}");
}

#[test]
fn a_layer_feeding_another_and_a_merge_past_its_relu_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The Add takes the conv's output before its ReLU: no chip layer sends that.
    let p = write(dir.path(), "res.onnx", &conv_graph(vec![node("Add", &["r", "c"], "a", &[])]));
    let err = Pipeline::new(&p).input_shape([2, 16, 16]).build().expect_err("pre-ReLU branch").to_string();
    assert!(err.contains("not followed by a ReLU") && err.contains("and only it"), "{err}");
}

#[test]
fn grouped_and_asymmetric_convolutions_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let w = tensor("w", &[2, 1, 3, 3], &[0.1; 18]);
    let g = model(&[node("Conv", &["x", "w"], "c", &[("kernel_shape", &[3, 3]), ("group", &[2])])], std::slice::from_ref(&w));
    let p = write(dir.path(), "g.onnx", &g);
    let err = Pipeline::new(&p).input_shape([2, 16, 16]).build().expect_err("grouped").to_string();
    assert!(err.contains("grouped"), "{err}");
    let a = model(&[node("Conv", &["x", "w"], "c", &[("pads", &[0, 0, 1, 1])])], &[w]);
    let p = write(dir.path(), "a.onnx", &a);
    let err = Pipeline::new(&p).input_shape([2, 16, 16]).build().expect_err("asymmetric").to_string();
    assert!(err.contains("symmetric"), "{err}");
}

#[test]
fn truncated_and_garbage_files_are_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let full = conv_graph(vec![]);
    for cut in [1, 10, full.len() / 2, full.len() - 3] {
        let p = write(dir.path(), "cut.onnx", &full[..cut]);
        let err = Pipeline::new(&p).input_shape([2, 16, 16]).build().expect_err("truncated").to_string();
        assert!(err.contains("cut.onnx"), "{err}");
    }
    let p = write(dir.path(), "junk.pt", b"not a zip at all");
    let arch = write(dir.path(), "a.toml", b"[[layers]]\nindex = 0\ntype = \"ReLU\"\n");
    let err = Pipeline::new(&p).arch(Some(&arch)).input_shape([2, 16, 16]).build().expect_err("junk").to_string();
    assert!(err.contains("junk.pt") && err.contains("zip"), "{err}");
    let err = Pipeline::new(&p).input_shape([2, 16, 16]).build().expect_err("no arch").to_string();
    assert!(err.contains("--arch"), "{err}");
}

#[test]
fn safetensors_with_arch_builds_and_reports_every_key_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let w: Vec<u8> = (0..72).flat_map(|i| (i as f32 / 100.0).to_le_bytes()).collect();
    let b: Vec<u8> = [0.5f32; 4].iter().flat_map(|v| v.to_le_bytes()).collect();
    let header = format!(
        r#"{{"0.weight":{{"dtype":"F32","shape":[4,2,3,3],"data_offsets":[0,{}]}},"0.bias":{{"dtype":"F32","shape":[4],"data_offsets":[{},{}]}},"__metadata__":{{"format":"pt"}}}}"#,
        w.len(),
        w.len(),
        w.len() + b.len()
    );
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header.as_bytes());
    file.extend(&w);
    file.extend(&b);
    let st = write(dir.path(), "m.safetensors", &file);
    let arch = write(dir.path(), "m.toml", b"input_shape = [2, 8, 8]\n[[layers]]\nindex = 0\ntype = \"Conv2d\"\nin_channels = 2\nout_channels = 4\nkernel_size = 3\n[[layers]]\nindex = 1\ntype = \"ReLU\"\n");
    let net = Pipeline::new(&st).arch(Some(&arch)).build().expect("build");
    assert_eq!(net.layers[0].float.bias, Some(vec![0.5; 4]));
    let bad = write(dir.path(), "bad.toml", b"[[layers]]\nindex = 0\ntype = \"Conv2d\"\nin_channels = 3\nout_channels = 4\nkernel_size = 3\n[[layers]]\nindex = 2\ntype = \"Linear\"\nin_features = 4\nout_features = 2\nbias = false\n");
    let err = Pipeline::new(&st).arch(Some(&bad)).input_shape([2, 8, 8]).build().expect_err("mismatch").to_string();
    for want in ["key `0.weight` has shape [4, 2, 3, 3], the architecture needs [4, 3, 3, 3]", "missing key `2.weight`"] {
        assert!(err.contains(want), "missing `{want}` in:\n{err}");
    }
}

#[test]
fn the_sinabs_state_dict_with_a_wrong_arch_lists_all_mismatches() {
    let Some(shared) = dynapviz_testkit::shared("fixtures/sinabs-gesture/dvs_gesture_params.pt") else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let arch = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/sinabs-gesture.toml")).expect("arch");
    let arch =
        arch.replace("index = 22", "index = 21").replace("in_features = 128\nout_features = 11", "in_features = 64\nout_features = 11");
    let p = write(dir.path(), "wrong.toml", arch.as_bytes());
    let err = Pipeline::new(&shared).arch(Some(&p)).build().expect_err("wrong").to_string();
    for want in
        ["missing key `21.weight`", "key `24.weight` has shape [11, 128], the architecture needs [11, 64]", "unexpected key `22.weight`"]
    {
        assert!(err.contains(want), "missing `{want}` in:\n{err}");
    }
    let (ann, shape) =
        import::load(&shared, Some(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/sinabs-gesture.toml"))).expect("load");
    assert_eq!(shape, Some([2, 128, 128]));
    assert_eq!(ann.layers.iter().filter(|l| matches!(l.layer, AnnLayer::Conv { .. })).count(), 7);
}

/// A sinabs spiking network's state_dict: an IAF layer takes its threshold and lower bound from
/// it (the layer keeps them), its membrane state is left out, and a missing one is reported.
#[test]
fn iaf_layers_take_their_threshold_from_the_state_dict() {
    let toml = "[[layers]]\nindex = 0\ntype = \"Conv2d\"\nin_channels = 2\nout_channels = 4\nkernel_size = 3\nbias = false\n\
                [[layers]]\nindex = \"spike\"\ntype = \"IAF\"\n";
    let arch = import::arch::Arch::parse(toml, Path::new("a.toml")).expect("arch");
    let t = |shape: Vec<usize>, data: Vec<f32>| dynapviz_model::Tensor { shape, data };
    let state = vec![
        ("0.weight".to_string(), t(vec![4, 2, 3, 3], vec![0.1; 72])),
        ("spike.spike_threshold".to_string(), t(vec![], vec![2.5])),
        ("spike.min_v_mem".to_string(), t(vec![], vec![-3.0])),
        ("spike.v_mem".to_string(), t(vec![1, 4, 6, 6], vec![0.0; 144])),
    ];
    let ann = arch.build(Path::new("a.toml"), Path::new("s.pt"), state.clone()).expect("build");
    assert_eq!(ann.layers[1].layer, AnnLayer::Iaf { threshold: 2.5, min_v_mem: -3.0, reset: Reset::Subtract });
    let net = Pipeline::new(Path::new("s.pt")).input_shape([2, 8, 8]).build_from(&ann, None).expect("convert");
    assert_eq!((net.layers[0].float.threshold, net.layers[0].float.min_v_mem), (2.5, -3.0));
    let without: Vec<_> = state.into_iter().filter(|(k, _)| k != "spike.min_v_mem").collect();
    let err = arch.build(Path::new("a.toml"), Path::new("s.pt"), without).expect_err("missing").to_string();
    assert!(err.contains("missing key `spike.min_v_mem`"), "{err}");
}

/// sinabs' `reset_fn` is not in a state_dict: an IAF layer of the architecture file names it
/// (`reset = "zero"` for `MembraneReset`), which the chip layer keeps; a misspelt one, or one on
/// a layer that is not an IAF, is reported. The pipeline's reset overrides every layer's.
#[test]
fn an_iaf_layer_resets_as_its_architecture_file_says() {
    let arch_with = |conv: &str, iaf: &str| {
        let toml = format!(
            "[[layers]]\nindex = 0\ntype = \"Conv2d\"\nin_channels = 2\nout_channels = 4\nkernel_size = 3\nbias = false\n{conv}\n\
             [[layers]]\nindex = 1\ntype = \"IAF\"\n{iaf}\n"
        );
        import::arch::Arch::parse(&toml, Path::new("a.toml")).expect("arch")
    };
    let t = |shape: Vec<usize>, data: Vec<f32>| dynapviz_model::Tensor { shape, data };
    let state = vec![
        ("0.weight".to_string(), t(vec![4, 2, 3, 3], vec![0.1; 72])),
        ("1.spike_threshold".to_string(), t(vec![], vec![1.0])),
        ("1.min_v_mem".to_string(), t(vec![], vec![-1.0])),
    ];
    let build = |arch: import::arch::Arch| arch.build(Path::new("a.toml"), Path::new("s.pt"), state.clone());
    let ann = build(arch_with("", "reset = \"zero\"")).expect("build");
    assert_eq!(ann.layers[1].layer, AnnLayer::Iaf { threshold: 1.0, min_v_mem: -1.0, reset: Reset::Zero });
    let net = Pipeline::new(Path::new("s.pt")).input_shape([2, 8, 8]).build_from(&ann, None).expect("convert");
    assert_eq!(net.layers[0].reset, Reset::Zero);
    let overridden =
        Pipeline::new(Path::new("s.pt")).input_shape([2, 8, 8]).reset(Some(Reset::Subtract)).build_from(&ann, None).expect("convert");
    assert_eq!(overridden.layers[0].reset, Reset::Subtract);
    let err = build(arch_with("", "reset = \"half\"")).expect_err("misspelt").to_string();
    assert!(err.contains("layer 1 (IAF): reset `half` (expected \"subtract\" or \"zero\")"), "{err}");
    let err = build(arch_with("reset = \"zero\"", "")).expect_err("not an IAF").to_string();
    assert!(err.contains("layer 0 (Conv2d): only IAF layers take a `reset`"), "{err}");
}

/// A real ONNX file and a real state_dict with one byte changed, in their first and last 8 KB
/// (the headers, the zip's directory, the protobuf's structure), give a network or an error
/// naming the file: never a panic. (Tried once, outside the suite, on every byte of their first
/// and last 3 000 and every 230th byte of the whole, each changed three ways: no panic; before
/// errors about the network named the file, one in the ONNX file's header did not.)
#[test]
fn a_corrupted_onnx_or_state_dict_never_panics() {
    let (Some(onnx), Some(pt)) = (
        dynapviz_testkit::shared("fixtures/golden/gesture_r50/model.onnx"),
        dynapviz_testkit::shared("fixtures/sinabs-gesture/dvs_gesture_params.pt"),
    ) else {
        return;
    };
    let arch = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/sinabs-gesture.toml");
    let dir = tempfile::tempdir().expect("tempdir");
    for (source, name, arch) in [(onnx, "m.onnx", None), (pt, "m.pt", Some(arch.as_path()))] {
        let whole = std::fs::read(&source).expect("read");
        let ends = (0..8192.min(whole.len())).chain(whole.len().saturating_sub(8192)..whole.len());
        for at in ends.step_by(97) {
            let mut changed = whole.clone();
            changed[at] ^= 0x5a;
            let path = write(dir.path(), name, &changed);
            if let Err(e) = Pipeline::new(&path).arch(arch).input_shape([2, 128, 128]).device("speck2e").build() {
                assert!(e.to_string().contains(name), "byte {at}: the error does not name the file: {e}");
            }
        }
    }
}

/// The same for an export of sinabs' `SumPool2d` that shares nodes between two poolings
/// (`tests/sinabs-cases/sum_pools_of_one_layer`), whose formula the importer follows node to
/// node: every third byte of the file changed (names, operators, inputs, attributes) gives a
/// network or an error naming the file.
#[test]
fn a_corrupted_export_of_shared_sum_poolings_never_panics() {
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/sinabs-cases/sum_pools_of_one_layer/model.onnx");
    let whole = std::fs::read(&source).expect("read");
    let dir = tempfile::tempdir().expect("tempdir");
    for at in (0..whole.len()).step_by(3) {
        let mut changed = whole.clone();
        changed[at] ^= 0x5a;
        let path = write(dir.path(), "s.onnx", &changed);
        if let Err(e) = Pipeline::new(&path).input_shape([2, 32, 32]).device("speck2fdevkit").build() {
            assert!(e.to_string().contains("s.onnx"), "byte {at}: the error does not name the file: {e}");
        }
    }
}
