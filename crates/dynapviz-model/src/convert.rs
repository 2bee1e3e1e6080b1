//! ANN -> spiking chip network, following sinabs' `from_model` + `DynapcnnNetwork`:
//! ReLU becomes IAF (threshold 1, min_v_mem -1, subtract reset; an IAF imported as one, from
//! NIR or a spiking state_dict, keeps its own), a spiking output layer is appended when the
//! network does not end in ReLU, Dropout/Identity vanish, Flatten is absorbed,
//! BatchNorm folds into the preceding weights, AvgPool becomes SumPool with 1/(kh*kw) moved into
//! the next layer's weights, Linear becomes a conv covering its whole input, and a leading pool
//! is absorbed into the DVS layer.
//!
//! A graph converts as sinabs' graph API does: a layer whose spikes reach two layers has two
//! destinations (and so has the DVS layer, for an input that reaches two), a layer whose spikes
//! leave the network is one of its outputs (the last layer always is: the classes are its), and
//! a `Merge` disappears: both its inputs send to the layer after it, which takes the larger of
//! their shapes. A layer fed through average poolings of different sizes
//! scales its weights by sinabs' default `rescale_method_1`.

use crate::ann::{Ann, AnnLayer, NamedLayer, Source};
use crate::error::{ModelError, Result};
use crate::network::{AnnForm, ChipLayer, Crop, DvsLayer, FloatParams, Network, Reset};

/// The most neurons one layer may have, and the most values the input may: 2^26 (67 M; a
/// 1280x720 sensor's two polarities at full resolution through 36 channels, a thousand times the
/// chip's largest core). The pipeline keeps arrays per neuron (the zero step's potentials, the
/// simulator's state); past this they would take gigabytes, and a shape that large is a wrong
/// `--input-shape` or a corrupt model, better refused at once than met as an allocation failure.
pub const MAX_LAYER_NEURONS: usize = 1 << 26;

/// The number of values of `shape`, if it is within [`MAX_LAYER_NEURONS`].
fn within_limit(shape: [usize; 3]) -> Option<usize> {
    crate::tensor::len_of(shape).filter(|&n| n <= MAX_LAYER_NEURONS)
}

/// Options of the DVS input layer.
#[derive(Clone, Debug, Default)]
pub struct DvsOptions {
    /// Keep only this region (pooled coordinates).
    pub crop: Option<Crop>,
    /// Mirror left-right.
    pub flip_x: bool,
    /// Mirror top-bottom.
    pub flip_y: bool,
    /// Swap x and y.
    pub swap_xy: bool,
}

fn unsupported(l: &NamedLayer, message: impl Into<String>) -> ModelError {
    ModelError::Unsupported { layer: format!("layer {} ({})", l.name, l.layer.kind()), message: message.into() }
}

/// Folds each BatchNorm into the Conv/Linear before it, and drops no-op layers: the layers that
/// remain, their inputs renumbered, and for each the layer as it was before its norms, if it had
/// any (see [`AnnForm`]; its input areas filled in later).
fn simplify(ann: &Ann) -> Result<(Vec<NamedLayer>, Vec<Option<AnnForm>>)> {
    // What each original layer's output is now: a kept layer, or what a dropped one passed on.
    let mut now: Vec<Source> = Vec::with_capacity(ann.layers.len());
    let mut out: Vec<NamedLayer> = Vec::new();
    let mut norms: Vec<Option<AnnForm>> = Vec::new();
    let mut consumers = vec![0usize; ann.layers.len()];
    for l in &ann.layers {
        for s in &l.inputs {
            if let Source::Layer(i) = *s
                && let Some(c) = consumers.get_mut(i)
            {
                *c += 1;
            }
        }
    }
    for (index, l) in ann.layers.iter().enumerate() {
        let inputs = l
            .inputs
            .iter()
            .map(|s| match *s {
                Source::Input => Ok(Source::Input),
                Source::Layer(i) if i < index => Ok(now[i]),
                Source::Layer(i) => Err(unsupported(l, format!("takes the output of layer #{i}, which does not come before it"))),
            })
            .collect::<Result<Vec<_>>>()?;
        let expected = if matches!(l.layer, AnnLayer::Merge) { 2 } else { 1 };
        if inputs.len() != expected {
            return Err(unsupported(l, format!("has {} inputs, expected {expected}", inputs.len())));
        }
        match &l.layer {
            AnnLayer::Dropout | AnnLayer::Identity => now.push(inputs[0]),
            AnnLayer::BatchNorm(bn) => {
                let (prev, norm) = match inputs[0] {
                    Source::Layer(p) => (&mut out[p], &mut norms[p]),
                    Source::Input => return Err(unsupported(l, "BatchNorm must follow a Conv2d or Linear, not the input")),
                };
                let prev_name = prev.name.clone();
                let (AnnLayer::Conv { weight, bias, .. } | AnnLayer::Linear { weight, bias }) = &mut prev.layer else {
                    return Err(unsupported(
                        l,
                        format!("BatchNorm must follow a Conv2d or Linear, not {} (layer {prev_name})", prev.layer.kind()),
                    ));
                };
                if let Source::Layer(i) = l.inputs[0]
                    && consumers[i] > 1
                {
                    return Err(unsupported(l, format!("layer {prev_name} feeds other layers too: its weights cannot take the norm")));
                }
                let out_ch = weight.shape[0];
                if let Some(n) = bn.arrays().iter().map(|a| a.len()).find(|&n| n != out_ch) {
                    return Err(unsupported(l, format!("BatchNorm has {n} features, layer {prev_name} has {out_ch} outputs")));
                }
                norm.get_or_insert_with(|| AnnForm {
                    weights: weight.data.clone(),
                    bias: bias.clone(),
                    norms: Vec::new(),
                    input_areas: Vec::new(),
                })
                .norms
                .push(bn.eval_affine());
                // sinabs' fold (no eps), not the ANN's eval map: its weights are the contract.
                let (factor, new_bias) = bn.sinabs_fold(bias.as_deref());
                let per = weight.len() / out_ch.max(1);
                for (o, chunk) in weight.data.chunks_mut(per.max(1)).enumerate() {
                    chunk.iter_mut().for_each(|w| *w *= factor[o]);
                }
                *bias = Some(new_bias);
                prev.name = format!("{prev_name}+{}", l.name);
                now.push(inputs[0]);
            }
            _ => {
                now.push(Source::Layer(out.len()));
                out.push(NamedLayer { name: l.name.clone(), layer: l.layer.clone(), inputs });
                norms.push(None);
            }
        }
    }
    Ok((out, norms))
}

/// Where the output of a layer (or of the input) goes: through poolings, flattens, merges and
/// paddings to a Conv2d/Linear, or to the network's output.
#[derive(Clone, Debug)]
struct Path {
    /// The Conv2d/Linear reached (its index among the simplified layers); `None`: the output.
    to: Option<usize>,
    /// The poolings' kernels multiplied.
    pool: [usize; 2],
    /// The area of the average poolings among them (1/rescale).
    avg_area: usize,
    /// The shape that arrives (C, H, W).
    shape: [usize; 3],
    /// Names of the poolings on the way.
    names: Vec<String>,
}

/// Every path from the output of `from` (of shape `shape`) to a weight layer or to the output.
fn paths(layers: &[NamedLayer], consumers: &[Vec<usize>], from: Option<usize>, shape: [usize; 3]) -> Result<Vec<Path>> {
    let start = Path { to: None, pool: [1, 1], avg_area: 1, shape, names: Vec::new() };
    let mut todo: Vec<(usize, Path)> = consumers[from.map_or(0, |i| i + 1)].iter().map(|&c| (c, start.clone())).collect();
    let mut found = Vec::new();
    if todo.is_empty() {
        found.push(start);
    }
    // A pooling, padding or merge met twice would lead to its ends twice, which the chip cannot
    // do (a layer sends to each destination once): refused here, before the routes multiply (a
    // chain of merges of a layer with itself doubles them at each).
    let mut met = vec![false; layers.len()];
    while let Some((i, mut p)) = todo.pop() {
        let l = &layers[i];
        match &l.layer {
            AnnLayer::Conv { .. } | AnnLayer::Linear { .. } => {
                found.push(Path { to: Some(i), ..p });
                continue;
            }
            _ if std::mem::replace(&mut met[i], true) => {
                return Err(unsupported(
                    l,
                    "is reached twice by the spikes of one layer (or by the input): the chip sends a layer's spikes to each layer once",
                ));
            }
            AnnLayer::AvgPool { kernel: k, stride } | AnnLayer::SumPool { kernel: k, stride } => {
                if k != stride {
                    return Err(unsupported(
                        l,
                        format!("pooling stride {stride:?} differs from its kernel {k:?}: the chip pools with stride = kernel"),
                    ));
                }
                if k[0] == 0 || k[1] == 0 {
                    return Err(unsupported(l, "pooling kernel of size 0"));
                }
                if p.shape[1] < k[0] || p.shape[2] < k[1] {
                    return Err(unsupported(l, format!("pooling {k:?} is larger than its input {}x{}", p.shape[1], p.shape[2])));
                }
                p.pool = [p.pool[0] * k[0], p.pool[1] * k[1]];
                p.shape = [p.shape[0], p.shape[1] / k[0], p.shape[2] / k[1]];
                if matches!(l.layer, AnnLayer::AvgPool { .. }) {
                    p.avg_area *= k[0] * k[1];
                }
                p.names.push(l.name.clone());
            }
            AnnLayer::PadEnd { pads } => {
                let padded = [0, 1, 2].map(|d| p.shape[d].saturating_add(pads[d]));
                if within_limit(padded).is_none() {
                    return Err(unsupported(l, format!("padding {pads:?} makes {padded:?}: more than {MAX_LAYER_NEURONS} values")));
                }
                p.shape = padded;
            }
            AnnLayer::Flatten | AnnLayer::Merge => {}
            AnnLayer::Relu | AnnLayer::Iaf { .. } => {
                return Err(unsupported(l, format!("{} must follow a Conv2d or Linear layer", l.layer.kind())));
            }
            AnnLayer::BatchNorm { .. } | AnnLayer::Dropout | AnnLayer::Identity => unreachable!("removed by simplify"),
        }
        let next = &consumers[i + 1];
        if next.is_empty() {
            found.push(p);
        } else {
            todo.extend(next.iter().map(|&c| (c, p.clone())));
        }
    }
    Ok(found)
}

/// sinabs' `rescale_method_1`, the default `weight_rescaling_fn` of `DynapcnnNetwork`: for a
/// layer fed through average poolings of different areas, half the mean of their factors
/// `1/area`, rounded to two decimals as numpy rounds (`rint(x * 100) / 100`, in f64).
fn rescale_method_1(factors: &[f64]) -> f64 {
    let mean = factors.iter().sum::<f64>() / factors.len() as f64;
    (mean * 0.5 * 100.0).round_ties_even() / 100.0
}

/// What reaches one weight layer from one source (0: the DVS layer, else a layer's number): the
/// shape, and the area of the average poolings on the way.
struct Arrival {
    from: usize,
    shape: [usize; 3],
    avg_area: usize,
}

/// Converts an ANN to a (float) chip network for an input of `input_shape` (C, H, W).
pub fn convert(ann: &Ann, input_shape: [usize; 3], dvs_options: &DvsOptions) -> Result<Network> {
    crate::import::check_finite(ann)?;
    let (layers, mut norms) = simplify(ann)?;
    let [c, h, w] = input_shape;
    if !(1..=2).contains(&c) || h == 0 || w == 0 {
        return Err(ModelError::Invalid(format!(
            "input shape {input_shape:?}: expected (C, H, W) with C = 2 polarities or 1 (merged) and H, W > 0"
        )));
    }
    // Event coordinates are 16-bit.
    if h > 1 << 16 || w > 1 << 16 || within_limit(input_shape).is_none() {
        return Err(ModelError::Invalid(format!(
            "input shape {input_shape:?}: expected H and W at most 65536 (an event's coordinates are 16-bit) and at most {MAX_LAYER_NEURONS} values in all"
        )));
    }
    // consumers[0]: of the input; consumers[i + 1]: of layer i.
    let mut consumers = vec![Vec::new(); layers.len() + 1];
    for (i, l) in layers.iter().enumerate() {
        for s in &l.inputs {
            let from = match *s {
                Source::Input => 0,
                Source::Layer(j) => j + 1,
            };
            consumers[from].push(i);
        }
    }
    // The chip layers: one per Conv2d/Linear, numbered in the order they run.
    let weighted: Vec<usize> =
        (0..layers.len()).filter(|&i| matches!(layers[i].layer, AnnLayer::Conv { .. } | AnnLayer::Linear { .. })).collect();
    let dvs_paths = paths(&layers, &consumers, None, input_shape)?;
    let Some(&entry) = weighted.first() else {
        return Err(ModelError::Invalid("the network has no Conv2d or Linear layer".into()));
    };
    let number = |i: usize| weighted.iter().position(|&w| w == i).map(|p| p + 1);
    // The DVS layer sends to the first layer, and maybe to one more, each once, pooled once.
    let mut entries: Vec<usize> = dvs_paths.iter().filter_map(|p| p.to).collect();
    entries.sort_unstable();
    entries.dedup();
    if entries.len() != dvs_paths.len() || !entries.contains(&entry) {
        return Err(ModelError::Invalid(format!(
            "the input must reach the first Conv2d/Linear ({}), and each layer it reaches once, never the output: it reaches {}",
            layers[entry].name,
            dvs_paths.iter().map(|p| p.to.map_or("the output".to_string(), |t| layers[t].name.clone())).collect::<Vec<_>>().join(", ")
        )));
    }
    let dvs_path = &dvs_paths[0];
    if let Some(other) = dvs_paths.iter().find(|p| p.pool != dvs_path.pool) {
        return Err(ModelError::Invalid(format!(
            "the input is pooled {:?} on the way to one layer and {:?} on the way to another: the DVS layer pools once, for all its destinations",
            dvs_path.pool, other.pool
        )));
    }
    let dvs_pool = dvs_path.pool;
    let pooled = [h / dvs_pool[0], w / dvs_pool[1]];
    if pooled[0] == 0 || pooled[1] == 0 {
        return Err(ModelError::Invalid(format!("input {h}x{w} is smaller than the DVS pooling {dvs_pool:?}")));
    }
    let mut spatial = pooled;
    if let Some(crop) = dvs_options.crop {
        if crop.y0 >= crop.y1 || crop.x0 >= crop.x1 || crop.y1 > pooled[0] || crop.x1 > pooled[1] {
            return Err(ModelError::Invalid(format!(
                "crop rows {}..{}, columns {}..{} does not lie inside the pooled input {}x{}",
                crop.y0, crop.y1, crop.x0, crop.x1, pooled[0], pooled[1]
            )));
        }
        spatial = [crop.y1 - crop.y0, crop.x1 - crop.x0];
    }
    if dvs_options.swap_xy {
        spatial = [spatial[1], spatial[0]];
    }
    let dvs = DvsLayer {
        input_shape,
        merge_polarities: c == 1,
        pool: dvs_pool,
        crop: dvs_options.crop,
        flip_x: dvs_options.flip_x,
        flip_y: dvs_options.flip_y,
        swap_xy: dvs_options.swap_xy,
        output_shape: [c, spatial[0], spatial[1]],
        destinations: entries.iter().filter_map(|&e| number(e)).collect(),
    };
    // What reaches each weight layer, filled in as the layers before it are converted.
    let mut arrivals: Vec<Vec<Arrival>> = (0..layers.len()).map(|_| Vec::new()).collect();
    for p in &dvs_paths {
        if let Some(t) = p.to {
            arrivals[t].push(Arrival { from: 0, shape: dvs.output_shape, avg_area: p.avg_area });
        }
    }
    let mut chip: Vec<ChipLayer> = Vec::new();
    let mut outputs: Vec<usize> = Vec::new();
    for &wi in &weighted {
        let l = &layers[wi];
        let index = chip.len() + 1;
        let arrived = std::mem::take(&mut arrivals[wi]);
        if arrived.is_empty() {
            return Err(unsupported(l, "receives nothing from the input or from a spiking layer"));
        }
        // A merge pads the smaller input with zeros at the end: the layer takes the larger.
        let shape = arrived.iter().fold([0; 3], |m, a| [0, 1, 2].map(|d| m[d].max(a.shape[d])));
        let (weights, bias, kernel, stride, padding) = match &l.layer {
            AnnLayer::Conv { weight, bias, stride, padding } => {
                let [_, ci, kh, kw] = weight.shape[..] else {
                    return Err(unsupported(l, "weight is not 4-D"));
                };
                if ci != shape[0] {
                    return Err(unsupported(l, format!("expects {ci} input channels, receives {} (input shape {shape:?})", shape[0])));
                }
                if kh == 0 || kw == 0 || stride[0] == 0 || stride[1] == 0 {
                    return Err(unsupported(l, "kernel and stride must be at least 1"));
                }
                (weight.data.clone(), bias.clone(), [kh, kw], *stride, *padding)
            }
            AnnLayer::Linear { weight, bias } => {
                let [_, fin] = weight.shape[..] else {
                    return Err(unsupported(l, "weight is not 2-D"));
                };
                // Within the limit: every shape that arrives is.
                let flat = shape.iter().product::<usize>();
                if fin != flat {
                    return Err(unsupported(l, format!("expects {fin} input features, receives {flat} ({shape:?} flattened)")));
                }
                // Flatten order is (C, H, W), so the [out][in] weight is already [out][C][H][W].
                (weight.data.clone(), bias.clone(), [shape[1], shape[2]], [1, 1], [0, 0])
            }
            _ => unreachable!("only weight layers are converted"),
        };
        let out_channels = weights.len() / (shape[0] * kernel[0] * kernel[1]).max(1);
        let mut source = vec![l.name.clone()];
        let padded = [0, 1].map(|d| padding[d].checked_mul(2).and_then(|p| p.checked_add(shape[d + 1])));
        let [Some(ph), Some(pw)] = padded else {
            return Err(unsupported(l, format!("padding {padding:?} is out of range")));
        };
        let [Some(fh), Some(fw)] = [0, 1].map(|d| [ph, pw][d].checked_sub(kernel[d]).map(|v| v / stride[d] + 1)) else {
            return Err(unsupported(l, format!("kernel {kernel:?} is larger than the padded input {ph}x{pw}")));
        };
        if within_limit([out_channels, fh, fw]).is_none() {
            return Err(unsupported(l, format!("{out_channels} channels of {fh}x{fw}: more than {MAX_LAYER_NEURONS} neurons")));
        }
        // The spiking layer: the ReLU that alone takes the weights' output, or the one sinabs
        // appends after a network's last layer.
        let spiking = match &consumers[wi + 1][..] {
            [] => None,
            &[r] if matches!(layers[r].layer, AnnLayer::Relu | AnnLayer::Iaf { .. }) => {
                source.push(layers[r].name.clone());
                Some(r)
            }
            _ => {
                return Err(unsupported(
                    l,
                    "is not followed by a ReLU (or IAF): every Conv2d/Linear but the last must feed one (the chip's spiking layer), and only it",
                ));
            }
        };
        // From the ReLU, or from the weights of the output layer, which nothing reads: one path,
        // to the output.
        let routes = paths(&layers, &consumers, Some(spiking.unwrap_or(wi)), [out_channels, fh, fw])?;
        // The layer pools by the finest of its paths' poolings; a coarser one pools further on
        // the way to its destination (the chip's per-destination pooling).
        let pool = routes.iter().fold(routes[0].pool, |m, p| [m[0].min(p.pool[0]), m[1].min(p.pool[1])]);
        if let Some(other) = routes.iter().find(|p| p.pool[0] % pool[0] != 0 || p.pool[1] % pool[1] != 0) {
            return Err(unsupported(
                l,
                format!(
                    "its spikes are pooled {pool:?} on the way to one layer and {:?} on the way to another: the coarser pooling must be a multiple of the finer",
                    other.pool
                ),
            ));
        }
        let mut destinations = Vec::new();
        for p in &routes {
            source.extend(p.names.iter().filter(|n| !source.contains(n)).cloned().collect::<Vec<_>>());
            match p.to {
                Some(t) => {
                    let d =
                        number(t).filter(|&d| d > index).ok_or_else(|| unsupported(l, "sends to a layer that does not come after it"))?;
                    if destinations.iter().any(|&(e, _)| e == d) {
                        return Err(unsupported(
                            l,
                            format!("reaches layer {} by two ways: the chip sends a layer's spikes to a layer once", layers[t].name),
                        ));
                    }
                    destinations.push((d, p.pool));
                    arrivals[t].push(Arrival { from: index, shape: p.shape, avg_area: p.avg_area });
                }
                // An output of the network: its spikes leave the chip as the layer pools them.
                None if outputs.last() == Some(&index) => {
                    return Err(unsupported(l, "reaches the network's output by two ways"));
                }
                None if p.pool != pool => {
                    return Err(unsupported(
                        l,
                        format!(
                            "its spikes leave the network pooled {:?} but go to another layer pooled {pool:?}: an output is read at the layer's finest pooling",
                            p.pool
                        ),
                    ));
                }
                None => outputs.push(index),
            }
        }
        destinations.sort_unstable();
        let (destinations, destination_pools): (Vec<usize>, Vec<[usize; 2]>) = destinations.into_iter().unzip();
        let mut weights = weights;
        let mut factors: Vec<usize> = arrived.iter().map(|a| a.avg_area).collect();
        factors.sort_unstable();
        factors.dedup();
        // The ANN's form, where the step of zeros needs it: with a batch norm, or where
        // `rescale_method_1` scales the weights by other than each input's own pooling.
        let ann_form = match (norms[wi].take(), factors.len() > 1) {
            (None, false) => None,
            (form, _) => Some(AnnForm {
                input_areas: arrived.iter().map(|a| (a.from, a.avg_area)).collect(),
                ..form.unwrap_or_else(|| AnnForm {
                    weights: weights.clone(),
                    bias: bias.clone(),
                    norms: Vec::new(),
                    input_areas: Vec::new(),
                })
            }),
        };
        match factors[..] {
            [1] => {}
            // sinabs divides (not multiplies) the weights by the pooled area, in f32.
            [area] => weights.iter_mut().for_each(|w| *w /= area as f32),
            _ => {
                let scale = rescale_method_1(&factors.iter().map(|&a| 1.0 / a as f64).collect::<Vec<_>>()) as f32;
                weights.iter_mut().for_each(|w| *w *= scale);
            }
        }
        let out_shape = [out_channels, fh / pool[0], fw / pool[1]];
        // sinabs' `from_model` makes every ReLU, and the spiking layer it appends, an IAF of
        // threshold 1, min_v_mem -1 and subtract reset (its defaults; `Pipeline::reset` is its
        // `reset_fn`); an IAF imported as one keeps its own.
        let (threshold, min_v_mem, reset) = match spiking.map(|r| &layers[r].layer) {
            Some(&AnnLayer::Iaf { threshold, min_v_mem, reset }) => (threshold, min_v_mem, reset),
            _ => (1.0, -1.0, Reset::Subtract),
        };
        chip.push(ChipLayer {
            index,
            core: None,
            in_shape: shape,
            out_channels,
            kernel,
            stride,
            padding,
            pool,
            conv_out: [fh, fw],
            out_shape,
            reset,
            float: FloatParams { weights, bias, threshold, min_v_mem, ann_form },
            quant: None,
            destinations,
            destination_pools,
            source,
        });
    }
    // The last layer runs last, so nothing reads it but the output: the classes are its.
    if outputs.last() != Some(&chip.len()) {
        return Err(ModelError::Invalid(match outputs.last() {
            Some(o) => {
                format!("layer {o} is the network's last output but layer {} comes after it: the last layer must be an output", chip.len())
            }
            None => "the network has no output layer".into(),
        }));
    }
    Ok(Network { dvs, layers: chip, outputs, device: None })
}
