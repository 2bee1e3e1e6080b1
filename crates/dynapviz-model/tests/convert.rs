//! Each conversion rule and chip constraint on small networks built here.

use dynapviz_model::convert::{DvsOptions, convert};
use dynapviz_model::discretize::{discretize, scale};
use dynapviz_model::{Ann, AnnLayer, BatchNorm, ChipProfile, ModelError, Ordering, Source, Tensor, chip, mapping};

fn conv(o: usize, i: usize, k: usize, stride: usize, pad: usize, fill: f32) -> AnnLayer {
    AnnLayer::Conv {
        weight: Tensor::new(vec![o, i, k, k], vec![fill; o * i * k * k]).expect("shape"),
        bias: None,
        stride: [stride; 2],
        padding: [pad; 2],
    }
}

fn ramp(n: usize) -> Vec<f32> {
    (0..n).map(|i| (i as f32 - n as f32 / 3.0) / n as f32).collect()
}

fn linear(o: usize, i: usize) -> AnnLayer {
    AnnLayer::Linear { weight: Tensor::new(vec![o, i], ramp(o * i)).expect("shape"), bias: None }
}

fn ann(layers: Vec<AnnLayer>) -> Ann {
    let mut a = Ann::default();
    for (i, l) in layers.into_iter().enumerate() {
        a.push(i.to_string(), l);
    }
    a
}

#[test]
fn relu_becomes_iaf_and_a_spiking_output_is_appended() {
    let net = convert(&ann(vec![conv(4, 2, 3, 1, 1, 0.1), AnnLayer::Relu, conv(3, 4, 3, 1, 0, 0.2)]), [2, 8, 8], &DvsOptions::default())
        .expect("convert");
    assert_eq!(net.layers.len(), 2);
    let (l1, l2) = (&net.layers[0], &net.layers[1]);
    assert_eq!((l1.float.threshold, l1.float.min_v_mem), (1.0, -1.0));
    assert_eq!(l1.destinations, vec![2]);
    assert!(l2.destinations.is_empty());
    assert_eq!(l2.out_shape, [3, 6, 6]);
    assert_eq!(l2.source, vec!["2"], "the last layer had no ReLU: a spiking output layer is appended");
}

#[test]
fn dropout_identity_flatten_vanish_and_linear_becomes_a_full_conv() {
    let net = convert(
        &ann(vec![
            conv(4, 2, 2, 2, 0, 0.1),
            AnnLayer::Relu,
            AnnLayer::Dropout,
            AnnLayer::Identity,
            AnnLayer::Flatten,
            linear(5, 4 * 4 * 4),
            AnnLayer::Relu,
            linear(3, 5),
        ]),
        [2, 8, 8],
        &DvsOptions::default(),
    )
    .expect("convert");
    assert_eq!(net.layers.len(), 3);
    let l2 = &net.layers[1];
    assert_eq!((l2.in_shape, l2.kernel, l2.conv_out, l2.out_shape), ([4, 4, 4], [4, 4], [1, 1], [5, 1, 1]));
    // The Linear's [out][in] weights are [out][C][H][W] as they are.
    assert_eq!(l2.float.weights, ramp(5 * 64));
    assert_eq!(net.layers[2].kernel, [1, 1]);
}

#[test]
fn avgpool_becomes_sumpool_with_the_factor_in_the_next_weights() {
    let net = convert(
        &ann(vec![
            conv(2, 2, 1, 1, 0, 1.0),
            AnnLayer::Relu,
            AnnLayer::AvgPool { kernel: [2, 2], stride: [2, 2] },
            AnnLayer::AvgPool { kernel: [2, 2], stride: [2, 2] },
            conv(2, 2, 1, 1, 0, 0.8),
        ]),
        [2, 8, 8],
        &DvsOptions::default(),
    )
    .expect("convert");
    assert_eq!(net.layers[0].pool, [4, 4]);
    assert_eq!(net.layers[0].out_shape, [2, 2, 2]);
    assert!(net.layers[1].float.weights.iter().all(|&w| w == 0.8 / 16.0), "chained poolings multiply: {:?}", net.layers[1].float.weights);
}

#[test]
fn pool_right_after_the_input_is_absorbed_into_the_dvs_layer() {
    let net = convert(
        &ann(vec![AnnLayer::AvgPool { kernel: [2, 2], stride: [2, 2] }, conv(2, 2, 3, 1, 1, 0.4), AnnLayer::Relu]),
        [2, 16, 16],
        &DvsOptions::default(),
    )
    .expect("convert");
    assert_eq!(net.dvs.pool, [2, 2]);
    assert_eq!(net.dvs.output_shape, [2, 8, 8]);
    assert_eq!(net.layers[0].in_shape, [2, 8, 8]);
    assert!(net.layers[0].float.weights.iter().all(|&w| w == 0.1));
}

#[test]
fn one_input_channel_means_merged_polarities() {
    let net = convert(&ann(vec![conv(2, 1, 3, 1, 0, 0.4), AnnLayer::Relu]), [1, 16, 16], &DvsOptions::default()).expect("convert");
    assert!(net.dvs.merge_polarities);
    let net = convert(&ann(vec![conv(2, 2, 3, 1, 0, 0.4), AnnLayer::Relu]), [2, 16, 16], &DvsOptions::default()).expect("convert");
    assert!(!net.dvs.merge_polarities);
}

#[test]
fn batchnorm_folds_into_the_preceding_weights_as_sinabs_does() {
    // gamma / sqrt(var): 2 and 0.5, exactly; sinabs' merge_bn leaves eps out, where the ANN's
    // own eval map keeps it.
    let bn =
        BatchNorm { gamma: vec![4.0, 1.0], beta: vec![0.25, -1.0], running_mean: vec![0.5, 2.0], running_var: vec![4.0, 4.0], eps: 0.1 };
    let (scale, _) = bn.eval_affine();
    assert_eq!(scale, vec![(1.0 / 4.1f32.sqrt()) * 4.0, 1.0 / 4.1f32.sqrt()]);
    let layers = vec![conv(2, 2, 1, 1, 0, 1.0), AnnLayer::BatchNorm(bn), AnnLayer::Relu];
    let net = convert(&ann(layers), [2, 4, 4], &DvsOptions::default()).expect("convert");
    let f = &net.layers[0].float;
    assert_eq!(f.weights, vec![2.0, 2.0, 0.5, 0.5]);
    // beta + (0 - mean) * factor.
    assert_eq!(f.bias, Some(vec![0.25 - 0.5 * 2.0, -1.0 - 2.0 * 0.5]));
}

#[test]
fn crop_and_swap_shape_the_dvs_output() {
    let opts =
        DvsOptions { crop: Some(dynapviz_model::network::Crop { y0: 2, y1: 10, x0: 0, x1: 4 }), swap_xy: true, ..DvsOptions::default() };
    let net = convert(&ann(vec![conv(2, 2, 1, 1, 0, 1.0), AnnLayer::Relu]), [2, 16, 16], &opts).expect("convert");
    assert_eq!(net.dvs.output_shape, [2, 4, 8]);
    let bad = DvsOptions { crop: Some(dynapviz_model::network::Crop { y0: 2, y1: 20, x0: 0, x1: 4 }), ..DvsOptions::default() };
    assert!(convert(&ann(vec![conv(2, 2, 1, 1, 0, 1.0), AnnLayer::Relu]), [2, 16, 16], &bad).is_err());
}

#[test]
fn discretization_scale_follows_sinabs() {
    // Positive side dominates: 127 / max.
    assert_eq!(scale(&[-0.5, 1.0], 8), 127.0);
    // Negative side dominates: 128 / |min|.
    assert_eq!(scale(&[-2.0, 1.0], 8), 64.0);
    // Exactly at the ratio boundary 128/127 the positive side is used.
    assert_eq!(scale(&[-128.0, 127.0], 8), 1.0);
    let mut net = convert(&ann(vec![conv(1, 2, 1, 1, 0, 0.5), AnnLayer::Relu]), [2, 4, 4], &DvsOptions::default()).expect("convert");
    discretize(&mut net);
    let q = net.layers[0].quant.as_ref().expect("quant");
    assert_eq!((q.weights.clone(), q.threshold, q.min_v_mem), (vec![127, 127], 254, -254));
    // Half to even: 2.5 -> 2, 3.5 -> 4.
    let mut net = convert(
        &ann(vec![
            AnnLayer::Conv {
                weight: Tensor::new(vec![1, 2, 1, 1], vec![127.0, 2.5]).expect("t"),
                bias: Some(vec![3.5]),
                stride: [1, 1],
                padding: [0, 0],
            },
            AnnLayer::Relu,
        ]),
        [2, 4, 4],
        &DvsOptions::default(),
    )
    .expect("convert");
    discretize(&mut net);
    let q = net.layers[0].quant.as_ref().expect("quant");
    assert_eq!((q.weights.clone(), q.bias.clone()), (vec![127, 2], Some(vec![4])));
}

#[test]
fn every_constraint_violation_names_layer_limit_and_value() {
    let net = convert(&ann(vec![conv(4, 2, 17, 3, 8, 0.1), AnnLayer::Relu]), [2, 128, 128], &DvsOptions::default()).expect("convert");
    let err = chip::validate(&net, &ChipProfile::by_name("speck2e").expect("profile")).expect_err("violations").to_string();
    for want in ["layer 1", "kernel 17x17: at most 16x16", "stride 3,3: allowed [1, 2, 4, 8]", "padding 8,8: at most 7"] {
        assert!(err.contains(want), "missing `{want}` in:\n{err}");
    }
    // Each rule once, with both axes: not once per axis.
    assert_eq!(err.matches("stride").count(), 1, "{err}");
    // 70k neurons: no core has that much neuron memory.
    let net = convert(&ann(vec![conv(18, 2, 1, 2, 0, 0.1), AnnLayer::Relu]), [2, 128, 128], &DvsOptions::default()).expect("convert");
    let err = chip::validate(&net, &ChipProfile::by_name("speck2e").expect("profile")).expect_err("too big").to_string();
    assert!(err.contains("neuron memory 73728 > 65536"), "{err}");
    let err = ChipProfile::by_name("speck9").expect_err("unknown").to_string();
    assert!(err.contains("speck2e"), "{err}");
}

#[test]
fn a_network_that_does_not_fit_explains_the_competition() {
    // Four layers that each need 64 Ki neurons: only cores 0, 1, 2 have that much.
    let layers: Vec<AnnLayer> = (0..4).flat_map(|i| [conv(16, if i == 0 { 2 } else { 16 }, 3, 1, 1, 0.1), AnnLayer::Relu]).collect();
    let mut net = convert(&ann(layers), [2, 64, 64], &DvsOptions::default()).expect("convert");
    let profile = ChipProfile::by_name("speck2e").expect("profile");
    let err = mapping::map_auto(&mut net, &profile).expect_err("no mapping");
    let ModelError::Mapping { explanation, .. } = &err else { panic!("{err}") };
    assert!(explanation.contains("layer 4 fits cores [0, 1, 2] <- left without a core"), "{explanation}");
    assert!(explanation.contains("core 3 is too small: neuron memory 65536 > 32768"), "{explanation}");
    assert!(explanation.contains("layers [1, 2, 3, 4] compete for cores [0, 1, 2]"), "{explanation}");
}

#[test]
fn manual_ordering_is_validated() {
    let mut net = convert(
        &ann(vec![conv(16, 2, 3, 1, 1, 0.1), AnnLayer::Relu, conv(4, 16, 3, 1, 1, 0.1), AnnLayer::Relu]),
        [2, 64, 64],
        &DvsOptions::default(),
    )
    .expect("convert");
    let profile = ChipProfile::by_name("speck2e").expect("profile");
    let err = mapping::map_manual(&mut net, &profile, &[5, 5]).expect_err("bad").to_string();
    assert!(err.contains("layer 1: core 5 is too small") && err.contains("core 5 is already used"), "{err}");
    mapping::map_manual(&mut net, &profile, &[0, 5]).expect("valid");
    assert_eq!(net.layers[1].core, Some(5));
    let _ = Ordering::Auto;
}

#[test]
fn five_core_chips_map_small_networks() {
    let mut net = convert(
        &ann(vec![conv(8, 2, 3, 2, 1, 0.1), AnnLayer::Relu, conv(8, 8, 3, 2, 1, 0.1), AnnLayer::Relu, linear(4, 8 * 16 * 16)]),
        [2, 64, 64],
        &DvsOptions::default(),
    )
    .expect("convert");
    let profile = ChipProfile::by_name("speck2dmini").expect("profile");
    assert_eq!(profile.cores.len(), 5);
    chip::validate(&net, &profile).expect("valid");
    let cores = mapping::map_auto(&mut net, &profile).expect("mapped");
    assert_eq!(cores.len(), 3);
}

#[test]
fn structural_errors_are_clear() {
    let e = |layers, shape| convert(&ann(layers), shape, &DvsOptions::default()).expect_err("error").to_string();
    assert!(e(vec![AnnLayer::Relu], [2, 8, 8]).contains("ReLU must follow"));
    assert!(e(vec![conv(2, 2, 1, 1, 0, 0.1), conv(2, 2, 1, 1, 0, 0.1)], [2, 8, 8]).contains("not followed by a ReLU"));
    assert!(e(vec![conv(2, 3, 1, 1, 0, 0.1), AnnLayer::Relu], [3, 8, 8]).contains("C = 2 polarities or 1"));
    assert!(e(vec![conv(2, 2, 1, 1, 0, 0.1), AnnLayer::Relu], [1, 8, 8]).contains("expects 2 input channels, receives 1"));
    assert!(e(vec![conv(2, 2, 1, 1, 0, 0.1), AnnLayer::Relu, linear(3, 7)], [2, 8, 8]).contains("expects 7 input features, receives 128"));
    assert!(e(vec![conv(2, 2, 1, 1, 0, f32::NAN), AnnLayer::Relu], [2, 8, 8]).contains("not finite"));
    assert!(
        e(vec![conv(2, 2, 1, 1, 0, 0.1), AnnLayer::Relu, AnnLayer::AvgPool { kernel: [2, 2], stride: [1, 1] }], [2, 8, 8])
            .contains("stride")
    );
}

#[test]
fn shapes_past_the_layer_limit_are_refused_not_allocated() {
    use dynapviz_model::convert::MAX_LAYER_NEURONS;
    let e = |layers, shape| convert(&ann(layers), shape, &DvsOptions::default()).expect_err("too large").to_string();
    let small = || vec![conv(2, 2, 1, 1, 0, 0.1), AnnLayer::Relu];
    // The input: an event's coordinates are 16-bit, and its values count as a layer's.
    for shape in [[2, 1 << 17, 8], [2, 8, 1 << 32], [2, 1 << 16, 1 << 16], [2, usize::MAX, usize::MAX]] {
        assert!(e(small(), shape).contains("at most 65536"), "{shape:?}");
    }
    // A layer's neurons: 64 channels of a 1024x1024 input is 2^26, one more channel too many.
    let wide = |o| vec![conv(o, 2, 1, 1, 0, 0.1), AnnLayer::Relu];
    assert!(convert(&ann(wide(64)), [2, 1024, 1024], &DvsOptions::default()).is_ok());
    assert!(e(wide(65), [2, 1024, 1024]).contains(&format!("65 channels of 1024x1024: more than {MAX_LAYER_NEURONS} neurons")));
    // Paddings that overflow, or that reach past the limit.
    assert!(e(vec![conv(2, 2, 1, 1, usize::MAX / 2, 0.1), AnnLayer::Relu], [2, 8, 8]).contains("padding"));
    assert!(e(vec![conv(2, 2, 1, 1, 1 << 20, 0.1), AnnLayer::Relu], [2, 8, 8]).contains("more than"));
    let pad = |pads| vec![conv(2, 2, 1, 1, 0, 0.1), AnnLayer::Relu, AnnLayer::PadEnd { pads }, conv(2, 2, 1, 1, 0, 0.1)];
    assert!(e(pad([0, usize::MAX, 0]), [2, 8, 8]).contains("padding"));
    assert!(e(pad([0, 1 << 30, 0]), [2, 8, 8]).contains("padding"));
}

/// A residual block: conv, ReLU and average pooling (layer 1), whose pooled spikes go to a
/// second conv and ReLU (layer 2) and, merged with its spikes, to a third conv (layer 3).
fn residual(first_pool: bool) -> Ann {
    let mut a = Ann::default();
    a.push("c1", conv(4, 2, 3, 1, 1, 0.1));
    a.push("r1", AnnLayer::Relu);
    if first_pool {
        a.push("p1", AnnLayer::AvgPool { kernel: [2, 2], stride: [2, 2] });
    }
    let skip = Source::Layer(a.layers.len() - 1);
    a.push("c2", conv(4, 4, 3, 1, 1, 0.1));
    a.push("r2", AnnLayer::Relu);
    a.push_from("m", AnnLayer::Merge, vec![skip, Source::Layer(a.layers.len() - 1)]);
    a.push("c3", conv(3, 4, 1, 1, 0, 1.0));
    a
}

#[test]
fn a_residual_graph_has_two_destinations_and_sinabs_rescale() {
    let net = convert(&residual(true), [2, 8, 8], &DvsOptions::default()).expect("convert");
    let dests: Vec<_> = net.layers.iter().map(|l| l.destinations.clone()).collect();
    assert_eq!(dests, [vec![2, 3], vec![3], vec![]]);
    assert_eq!((net.layers[0].pool, net.layers[2].in_shape), ([2, 2], [4, 4, 4]));
    // Layer 2 gets the pooled spikes alone: 1/4. Layer 3 gets them (1/4) and layer 2's (1):
    // sinabs' rescale_method_1 takes half their mean, rounded to 2 decimals: 0.31.
    assert_eq!(net.layers[1].float.weights[0], 0.1 / 4.0);
    assert!(net.layers[2].float.weights.iter().all(|&w| w == 0.31), "{:?}", &net.layers[2].float.weights[..4]);
    assert!(net.layers[0].source.contains(&"p1".to_string()));
    // Without the pooling, every path has the factor 1: no rescale.
    let net = convert(&residual(false), [2, 8, 8], &DvsOptions::default()).expect("convert");
    assert!(net.layers[2].float.weights.iter().all(|&w| w == 1.0));
}

#[test]
fn graphs_the_chip_cannot_take_are_refused_with_the_reason() {
    let e = |a: &Ann| convert(a, [2, 8, 8], &DvsOptions::default()).expect_err("error").to_string();
    // Layer 1's spikes pooled 3x3 on the way to layer 2, 2x2 on the way to the merge into 3.
    let a = two_poolings(3, 2);
    assert!(e(&a).contains("must be a multiple of the finer"), "{}", e(&a));
    // The input pooled on the way to one layer and not to the other: the DVS layer pools once.
    let a = input_to_two(Some(2));
    assert!(e(&a).contains("the DVS layer pools once"), "{}", e(&a));
    // The input reaching one layer by two ways.
    let mut a = input_to_two(None);
    a.layers.iter_mut().find(|l| l.name == "m").expect("merge").inputs[1] = Source::Input;
    assert!(e(&a).contains("layer m (Merge): is reached twice"), "{}", e(&a));
    // The input reaching the output.
    let mut a = residual(false);
    a.push_from("out2", AnnLayer::Flatten, vec![Source::Input]);
    assert!(e(&a).contains("never the output"), "{}", e(&a));
    // Layer 2's spikes leave the network pooled, and go to layer 3 unpooled.
    let mut a = residual(false);
    a.push_from("pout", AnnLayer::SumPool { kernel: [2, 2], stride: [2, 2] }, vec![Source::Layer(3)]);
    assert!(e(&a).contains("leave the network pooled [2, 2]"), "{}", e(&a));
    // Layer 2's spikes leave the network by two ways.
    let mut a = residual(false);
    a.push_from("out2", AnnLayer::Flatten, vec![Source::Layer(3)]);
    a.push_from("out3", AnnLayer::Flatten, vec![Source::Layer(3)]);
    assert!(e(&a).contains("output by two ways"), "{}", e(&a));
    // A layer that takes a later layer's output.
    let mut a = residual(false);
    a.layers[2].inputs[0] = Source::Layer(5);
    assert!(e(&a).contains("does not come before it"), "{}", e(&a));
}

/// The input sent to a conv (layer 1, whose spikes go to a second conv, layer 2) and, sum-pooled
/// `skip_pool` when given, merged with layer 2's spikes into a third (layer 3).
fn input_to_two(skip_pool: Option<usize>) -> Ann {
    let mut a = Ann::default();
    a.push("c1", conv(4, 2, 3, 1, 1, 0.1));
    a.push("r1", AnnLayer::Relu);
    a.push("c2", conv(4, 4, 3, 1, 1, 0.1));
    a.push("r2", AnnLayer::Relu);
    let skip = match skip_pool {
        Some(k) => {
            a.push_from("p", AnnLayer::SumPool { kernel: [k; 2], stride: [k; 2] }, vec![Source::Input]);
            Source::Layer(4)
        }
        None => Source::Input,
    };
    a.push_from("m", AnnLayer::Merge, vec![skip, Source::Layer(3)]);
    a.push("c3", conv(3, 4, 1, 1, 0, 1.0));
    a
}

#[test]
fn an_input_sent_to_two_layers_gives_the_dvs_layer_two_destinations() {
    let net = convert(&input_to_two(None), [2, 8, 8], &DvsOptions::default()).expect("convert");
    assert_eq!(net.dvs.destinations, [1, 3]);
    let dests: Vec<_> = net.layers.iter().map(|l| l.destinations.clone()).collect();
    assert_eq!(dests, [vec![2], vec![3], vec![]]);
    // The merge pads the input's 2 channels to layer 2's 4.
    assert_eq!(net.layers[2].in_shape, [4, 8, 8]);
    chip::validate(&net, &ChipProfile::by_name("speck2e").expect("profile")).expect("the chip takes it");
}

/// sinabs' `Merge` takes two inputs; a merge of a merge takes three: the input, layer 1's
/// spikes and layer 2's all reach layer 3.
#[test]
fn a_merge_of_a_merge_feeds_one_layer_from_three_sources() {
    let mut a = input_to_two(None);
    let inner = a.layers.iter().position(|l| l.name == "m").expect("merge");
    a.layers[inner].inputs = vec![Source::Input, Source::Layer(1)];
    a.layers.pop();
    a.push_from("m2", AnnLayer::Merge, vec![Source::Layer(inner), Source::Layer(3)]);
    a.push("c3", conv(3, 4, 1, 1, 0, 1.0));
    let net = convert(&a, [2, 8, 8], &DvsOptions::default()).expect("convert");
    assert_eq!(net.dvs.destinations, [1, 3]);
    let dests: Vec<_> = net.layers.iter().map(|l| l.destinations.clone()).collect();
    assert_eq!(dests, [vec![2, 3], vec![3], vec![]]);
    chip::validate(&net, &ChipProfile::by_name("speck2e").expect("profile")).expect("the chip takes it");
}

#[test]
fn a_layer_whose_spikes_leave_the_network_is_an_output_too() {
    // Layer 2's spikes go to layer 3 and leave the network.
    let mut a = residual(false);
    a.push_from("out2", AnnLayer::Flatten, vec![Source::Layer(3)]);
    let net = convert(&a, [2, 8, 8], &DvsOptions::default()).expect("convert");
    assert_eq!(net.outputs, [2, 3]);
    assert_eq!(net.layers[1].destinations, [3]);
    // A branch that ends in its own ReLU (layer 2) beside the way to the last layer (3).
    let mut a = Ann::default();
    a.push("c1", conv(4, 2, 3, 1, 1, 0.1));
    a.push("r1", AnnLayer::Relu);
    a.push("c2", conv(4, 4, 1, 1, 0, 0.1));
    a.push("r2", AnnLayer::Relu);
    a.push_from("c3", conv(3, 4, 3, 1, 1, 1.0), vec![Source::Layer(1)]);
    let net = convert(&a, [2, 8, 8], &DvsOptions::default()).expect("convert");
    assert_eq!((net.outputs.as_slice(), net.layers[0].destinations.as_slice()), (&[2, 3][..], &[2, 3][..]));
    assert!(net.layers[1].destinations.is_empty());
    let report = dynapviz_model::report::layers(&net);
    assert_eq!(report.iter().map(|l| l.output).collect::<Vec<_>>(), [false, true, true]);
}

/// Layer 1's spikes sum-pooled `to_2` to layer 2 and `to_3` to the merge of them with layer
/// 2's (pooled 2x2) into layer 3.
fn two_poolings(to_2: usize, to_3: usize) -> Ann {
    let mut a = Ann::default();
    a.push("c1", conv(4, 2, 3, 1, 1, 0.1));
    a.push("r1", AnnLayer::Relu);
    a.push("p1a", AnnLayer::SumPool { kernel: [to_2; 2], stride: [to_2; 2] });
    a.push("c2", conv(4, 4, 3, 1, 1, 0.1));
    a.push("r2", AnnLayer::Relu);
    a.push("p2", AnnLayer::SumPool { kernel: [2, 2], stride: [2, 2] });
    a.push_from("p1b", AnnLayer::SumPool { kernel: [to_3; 2], stride: [to_3; 2] }, vec![Source::Layer(1)]);
    a.push_from("m", AnnLayer::Merge, vec![Source::Layer(6), Source::Layer(5)]);
    a.push("c3", conv(3, 4, 1, 1, 0, 1.0));
    a
}

#[test]
fn a_layer_pools_per_destination_by_its_finest_and_each_destination_by_its_own() {
    let net = convert(&two_poolings(2, 4), [2, 16, 16], &DvsOptions::default()).expect("convert");
    let l1 = &net.layers[0];
    assert_eq!((l1.pool, l1.out_shape), ([2, 2], [4, 8, 8]));
    assert_eq!((&l1.destinations[..], &l1.destination_pools[..]), (&[2, 3][..], &[[2, 2], [4, 4]][..]));
    assert_eq!((l1.shape_to(0), l1.shape_to(1)), ([4, 8, 8], [4, 4, 4]));
    assert_eq!(net.layers[2].in_shape, [4, 4, 4]);
    chip::validate(&net, &ChipProfile::by_name("speck2e").expect("profile")).expect("the chip takes it");
}

#[test]
fn merges_of_one_layer_with_itself_do_not_explode_into_routes() {
    // A layer's spikes through 64 merges, each of the one before with itself: 2^64 routes, if
    // each were followed.
    let mut a = ann(vec![conv(2, 2, 1, 1, 0, 0.1), AnnLayer::Relu]);
    for i in 0..64 {
        let from = Source::Layer(i + 1);
        a.push_from(format!("m{i}"), AnnLayer::Merge, vec![from, from]);
    }
    a.push_from("last", conv(2, 2, 1, 1, 0, 0.1), vec![Source::Layer(65)]);
    let err = convert(&a, [2, 8, 8], &DvsOptions::default()).expect_err("two ways").to_string();
    assert!(err.contains("(Merge): is reached twice"), "{err}");
}
