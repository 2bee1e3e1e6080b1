//! NIR graphs (the Neuromorphic Intermediate Representation), as `nir.write` stores them: an
//! HDF5 file whose group `node` holds a `NIRGraph`, with a group per node (its `type` and its
//! parameters as datasets) and `edges`, pairs of node names. Read without libhdf5.
//!
//! The nodes are read as sinabs' `from_nir` reads them, so that a network exported by sinabs'
//! `to_nir` comes back as the network sinabs would put on the chip: `IF` is sinabs' IAF with
//! its threshold, `min_v_mem = -threshold` and subtract reset (whatever reset the file's NIR
//! version describes: sinabs' export writes `v_reset = 0` for its subtracting neurons; the
//! pipeline's `reset` makes them reset to zero), `Affine`
//! and `Linear` are linear layers, `SumPool2d`/`AvgPool2d` poolings, `Flatten`, `Input` and
//! `Output` what they say. A node fed by several edges sums them (a merge), a nested graph is
//! read as part of the whole. What the chip cannot run (leaky neurons, delays, dilation,
//! groups, per-neuron thresholds) is refused, naming the node.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use hdf5_reader::group::Group;
use hdf5_reader::{Dataset, Datatype, H5Type, Hdf5File};

use crate::Tensor;
use crate::ann::{Ann, AnnLayer, Source};
use crate::error::{ModelError, Result, file_error};
use crate::network::Reset;

/// Nested graphs deeper than this are refused (a cycle of links would never end).
const MAX_DEPTH: usize = 16;

/// Loads a NIR file: the ANN and the input shape its `Input` node names.
pub fn load(path: &Path) -> Result<(Ann, [usize; 3])> {
    let file = Hdf5File::open(path).map_err(|e| file_error(path, format!("not a readable NIR (HDF5) file: {e}")))?;
    let root = file.group("/node").map_err(|e| file_error(path, format!("no NIR graph (the group `node`): {e}")))?;
    let mut graph = Graph::default();
    graph.read(&root, "", 0).map_err(|e| e.in_file(path))?;
    graph.into_ann().map_err(|e| e.in_file(path))
}

/// An error inside the file, before the file's path is put in front of it.
#[derive(Debug)]
enum NirError {
    /// Where (a node, a dataset) and what.
    File(String),
    /// A node the chip cannot run.
    Unsupported { node: String, message: String },
}

impl NirError {
    fn in_file(self, path: &Path) -> ModelError {
        match self {
            NirError::File(message) => file_error(path, message),
            NirError::Unsupported { node, message } => {
                ModelError::Unsupported { layer: format!("{}: NIR node {node}", path.display()), message }
            }
        }
    }
}

type NirResult<T> = std::result::Result<T, NirError>;

fn unsupported(node: &str, message: impl Into<String>) -> NirError {
    NirError::Unsupported { node: node.to_string(), message: message.into() }
}

/// A dataset's values as numbers, whatever integer or float type the file stores them in,
/// with their shape.
struct Values {
    shape: Vec<usize>,
    data: Vec<f64>,
}

impl Values {
    fn read(ds: &Dataset, at: &str) -> NirResult<Self> {
        let shape = ds.shape();
        if super::elements(shape.iter().copied()).is_none() {
            return Err(NirError::File(format!("{at}: shape {shape:?}: more than {} values", super::MAX_TENSOR_ELEMENTS)));
        }
        /// The dataset's values as `T`, widened to f64.
        fn widened<T: H5Type>(ds: &Dataset, widen: fn(T) -> f64) -> hdf5_reader::error::Result<Vec<f64>> {
            Ok(ds.read_array::<T>()?.into_iter().map(widen).collect())
        }
        let data = match ds.dtype() {
            Datatype::FloatingPoint { size: 4, .. } => widened::<f32>(ds, f64::from),
            Datatype::FloatingPoint { size: 8, .. } => widened::<f64>(ds, |v| v),
            Datatype::FixedPoint { size, signed, .. } => match (size, signed) {
                (1, true) => widened::<i8>(ds, f64::from),
                (2, true) => widened::<i16>(ds, f64::from),
                (4, true) => widened::<i32>(ds, f64::from),
                (8, true) => widened::<i64>(ds, |v| v as f64),
                (1, false) => widened::<u8>(ds, f64::from),
                (2, false) => widened::<u16>(ds, f64::from),
                (4, false) => widened::<u32>(ds, f64::from),
                (8, false) => widened::<u64>(ds, |v| v as f64),
                _ => return Err(NirError::File(format!("{at}: {size}-byte integers are not a number type"))),
            },
            other => return Err(NirError::File(format!("{at}: expected numbers, found {other:?}"))),
        }
        .map_err(|e| NirError::File(format!("{at}: {e}")))?;
        Ok(Self { shape: shape.iter().map(|&d| d as usize).collect(), data })
    }

    /// The values as non-negative integers (sizes, strides, paddings).
    fn sizes(&self, at: &str) -> NirResult<Vec<usize>> {
        self.data
            .iter()
            .map(|&v| {
                (v >= 0.0 && v.fract() == 0.0 && v <= u32::MAX as f64)
                    .then_some(v as usize)
                    .ok_or_else(|| NirError::File(format!("{at}: expected sizes (whole numbers >= 0), found {v}")))
            })
            .collect()
    }

    /// One size, or a pair: two values (y, x), or one for both.
    fn pair(&self, at: &str) -> NirResult<[usize; 2]> {
        match self.sizes(at)?[..] {
            [v] => Ok([v, v]),
            [y, x] => Ok([y, x]),
            _ => Err(NirError::File(format!("{at}: expected one or two values, found {}", self.data.len()))),
        }
    }

    /// The single value every element holds (a per-neuron array of one value, or a scalar).
    fn uniform(&self, at: &str) -> NirResult<f64> {
        let first = *self.data.first().ok_or_else(|| NirError::File(format!("{at}: empty")))?;
        match self.data.iter().find(|&&v| v != first) {
            None => Ok(first),
            Some(v) => Err(NirError::File(format!(
                "{at}: the chip has one value per layer, the file has {first} and {v} (among {} values)",
                self.data.len()
            ))),
        }
    }

    fn floats(&self) -> Vec<f32> {
        self.data.iter().map(|&v| v as f32).collect()
    }
}

/// One node's datasets, read on demand, with the node's name for messages.
struct Node<'a> {
    name: String,
    group: &'a Group,
}

impl Node<'_> {
    /// Where a dataset of the node is, for messages.
    fn at(&self, key: &str) -> String {
        format!("node {} `{key}`", self.name)
    }

    /// The dataset's values, or `None` when the node has no such dataset.
    fn optional(&self, key: &str) -> NirResult<Option<Values>> {
        self.group.dataset(key).ok().map(|ds| Values::read(&ds, &self.at(key))).transpose()
    }

    fn values(&self, key: &str) -> NirResult<Values> {
        self.optional(key)?.ok_or_else(|| NirError::File(format!("{}: missing", self.at(key))))
    }

    /// A size pair, `default` when the node has none.
    fn pair_or(&self, key: &str, default: [usize; 2]) -> NirResult<[usize; 2]> {
        self.optional(key)?.map_or(Ok(default), |v| v.pair(&self.at(key)))
    }

    /// A padding: sizes, or (as a string) "valid" or "same".
    fn padding(&self, kernel: [usize; 2], stride: [usize; 2]) -> NirResult<[usize; 2]> {
        let Ok(ds) = self.group.dataset("padding") else { return Ok([0, 0]) };
        if let Ok(s) = ds.read_string() {
            return match s.as_str() {
                "valid" => Ok([0, 0]),
                "same" if stride == [1, 1] && kernel.iter().all(|k| k % 2 == 1) => Ok(kernel.map(|k| k / 2)),
                _ => Err(unsupported(&self.name, format!("padding {s:?}: the chip pads evenly on both sides (odd kernels, stride 1)"))),
            };
        }
        Values::read(&ds, &self.at("padding"))?.pair(&self.at("padding"))
    }

    /// A bias that is all zeros is none: sinabs' export writes one for every layer.
    fn bias(&self) -> NirResult<Option<Vec<f32>>> {
        let Some(b) = self.optional("bias")? else { return Ok(None) };
        let b = b.floats();
        Ok(b.iter().any(|&v| v != 0.0).then_some(b))
    }

    fn weight(&self, dims: usize) -> NirResult<Tensor> {
        let w = self.values("weight")?;
        if w.shape.len() != dims {
            return Err(NirError::File(format!("{}: expected {dims} dimensions, found shape {:?}", self.at("weight"), w.shape)));
        }
        Ok(Tensor { shape: w.shape.clone(), data: w.floats() })
    }
}

/// What a node is, once read.
enum Kind {
    Input([usize; 3]),
    Output,
    Layer(AnnLayer),
}

/// The nodes of the whole graph (nested graphs flattened, their nodes named `outer.inner`) and
/// its edges.
#[derive(Default)]
struct Graph {
    nodes: BTreeMap<String, Kind>,
    edges: Vec<(String, String)>,
    /// A nested graph's name, and its `Input` and `Output` nodes, which edges to and from it
    /// reach.
    nested: HashMap<String, (Vec<String>, Vec<String>)>,
}

impl Graph {
    /// Reads a `NIRGraph` group, its nodes named after `prefix`.
    fn read(&mut self, g: &Group, prefix: &str, depth: usize) -> NirResult<()> {
        if depth > MAX_DEPTH {
            return Err(NirError::File(format!("graphs nested more than {MAX_DEPTH} deep")));
        }
        let nodes = g.group("nodes").map_err(|e| NirError::File(format!("graph {prefix:?}: no `nodes` group: {e}")))?;
        let (names, _) = nodes.member_names().map_err(|e| NirError::File(format!("graph {prefix:?}: {e}")))?;
        for name in names {
            let full = format!("{prefix}{name}");
            let group = nodes.group(&name).map_err(|e| NirError::File(format!("node {full}: {e}")))?;
            let kind = group
                .dataset("type")
                .and_then(|d| d.read_string())
                .map_err(|e| NirError::File(format!("node {full}: no `type` string: {e}")))?;
            if kind == "NIRGraph" {
                let mut inner = Graph::default();
                inner.read(&group, &format!("{full}."), depth + 1)?;
                let ends = |want: fn(&Kind) -> bool| inner.nodes.iter().filter(|(_, k)| want(k)).map(|(n, _)| n.clone()).collect();
                let io = (ends(|k| matches!(k, Kind::Input(_))), ends(|k| matches!(k, Kind::Output)));
                self.nested.insert(full, io);
                // Its Input and Output nodes pass on what reaches them.
                self.nodes.extend(inner.nodes.into_iter().map(|(n, k)| match k {
                    Kind::Input(_) | Kind::Output => (n, Kind::Layer(AnnLayer::Identity)),
                    k => (n, k),
                }));
                self.edges.extend(inner.edges);
                self.nested.extend(inner.nested);
                continue;
            }
            let node = Node { name: full.clone(), group: &group };
            self.nodes.insert(full, read_node(&node, &kind)?);
        }
        let edges = g.dataset("edges").map_err(|e| NirError::File(format!("graph {prefix:?}: no `edges`: {e}")))?;
        let shape = edges.shape();
        let ends = match super::elements(shape.iter().copied()) {
            None => {
                return Err(NirError::File(format!(
                    "graph {prefix:?} `edges`: shape {shape:?}: more than {} names",
                    super::MAX_TENSOR_ELEMENTS
                )));
            }
            Some(0) => Vec::new(),
            Some(_) => edges.read_strings().map_err(|e| NirError::File(format!("graph {prefix:?} `edges`: {e}")))?,
        };
        if ends.len() % 2 != 0 {
            return Err(NirError::File(format!("graph {prefix:?} `edges`: {} names, expected pairs", ends.len())));
        }
        self.edges.extend(ends.chunks(2).map(|p| (format!("{prefix}{}", p[0]), format!("{prefix}{}", p[1]))));
        Ok(())
    }

    /// The edges between plain nodes: one to or from a nested graph goes to its inputs or
    /// leaves its outputs.
    fn plain_edges(&self) -> NirResult<Vec<(String, String)>> {
        let mut out = Vec::new();
        for (from, to) in &self.edges {
            let froms = self.nested.get(from).map_or_else(|| vec![from.clone()], |(_, outs)| outs.clone());
            let tos = self.nested.get(to).map_or_else(|| vec![to.clone()], |(ins, _)| ins.clone());
            for f in &froms {
                for t in &tos {
                    for n in [f, t] {
                        if !self.nodes.contains_key(n) {
                            return Err(NirError::File(format!("edge {from} -> {to}: no node {n}")));
                        }
                    }
                    out.push((f.clone(), t.clone()));
                }
            }
        }
        Ok(out)
    }

    /// The ANN: layers in an order where each comes after its inputs (ties in the order of the
    /// names, numbers by value, as sinabs' module indices run), and the input shape.
    fn into_ann(self) -> NirResult<(Ann, [usize; 3])> {
        let edges = self.plain_edges()?;
        let inputs: Vec<[usize; 3]> = self.nodes.values().filter_map(|k| if let Kind::Input(s) = k { Some(*s) } else { None }).collect();
        let shape = match inputs[..] {
            [shape] => shape,
            [] => return Err(NirError::File("the graph has no Input node".into())),
            _ => return Err(NirError::File(format!("the graph has {} Input nodes; the chip has one input, the DVS", inputs.len()))),
        };
        let mut feeds: HashMap<&str, Vec<&str>> = HashMap::new();
        let mut waiting: HashMap<&str, usize> = self.nodes.keys().map(|n| (n.as_str(), 0)).collect();
        let mut sources: HashMap<&str, Vec<&str>> = HashMap::new();
        for (f, t) in &edges {
            feeds.entry(f.as_str()).or_default().push(t.as_str());
            sources.entry(t.as_str()).or_default().push(f.as_str());
            *waiting.entry(t.as_str()).or_default() += 1;
        }
        // An output is read from a layer whose spikes go nowhere else (the chip's readout of a
        // layer that sends on is not what the converter makes of it).
        let is_output = |n: &str| matches!(self.nodes.get(n), Some(Kind::Output));
        for (f, t) in &edges {
            if is_output(t) && feeds[f.as_str()].iter().any(|n| !is_output(n)) {
                return Err(unsupported(f, "feeds an Output node and other nodes: an output must be a layer whose spikes go nowhere else"));
            }
        }
        // Kahn's order, the ready node of the lowest name first.
        let mut ready: Vec<&str> = waiting.iter().filter(|&(_, &w)| w == 0).map(|(&n, _)| n).collect();
        let mut ann = Ann::default();
        let mut made: HashMap<&str, Source> = HashMap::new();
        let mut visited = 0;
        while let Some(i) = ready.iter().enumerate().min_by(|a, b| natural(a.1, b.1)).map(|(i, _)| i) {
            let name = ready.swap_remove(i);
            visited += 1;
            for &next in feeds.get(name).map_or(&[][..], |v| &v[..]) {
                if let Some(w) = waiting.get_mut(next) {
                    *w -= 1;
                    if *w == 0 {
                        ready.push(next);
                    }
                }
            }
            let from: Vec<Source> = sources.get(name).map_or(&[][..], |v| &v[..]).iter().filter_map(|s| made.get(s).copied()).collect();
            match &self.nodes[name] {
                Kind::Input(_) => {
                    if !from.is_empty() {
                        return Err(unsupported(name, "the Input node has incoming edges"));
                    }
                    made.insert(name, Source::Input);
                }
                Kind::Output => {}
                Kind::Layer(layer) => {
                    let source = match from[..] {
                        [] => return Err(unsupported(name, "no edge reaches it from the Input node")),
                        [one] => one,
                        // Several edges into a node: their sum, merged pairwise.
                        [first, ref rest @ ..] => rest.iter().enumerate().fold(first, |acc, (k, &next)| {
                            ann.push_from(format!("{name}+{k}"), AnnLayer::Merge, vec![acc, next]);
                            Source::Layer(ann.layers.len() - 1)
                        }),
                    };
                    ann.push_from(name, layer.clone(), vec![source]);
                    made.insert(name, Source::Layer(ann.layers.len() - 1));
                }
            }
        }
        if visited != self.nodes.len() {
            return Err(NirError::File("the graph has a cycle: the chip's layers send only forward".into()));
        }
        Ok((ann, shape))
    }
}

/// Orders names as sinabs' module indices run: `2` before `10`, numbers before words.
fn natural(a: &&str, b: &&str) -> std::cmp::Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        _ => a.cmp(b),
    }
}

fn read_node(n: &Node, kind: &str) -> NirResult<Kind> {
    let name = n.name.as_str();
    Ok(Kind::Layer(match kind {
        "Input" => {
            let shape = n.values("shape")?.sizes(&n.at("shape"))?;
            return match shape[..] {
                // With a batch of one in front, as some exporters write it.
                [c, h, w] | [1, c, h, w] => Ok(Kind::Input([c, h, w])),
                _ => Err(unsupported(name, format!("input shape {shape:?}: the DVS input is (channels, height, width)"))),
            };
        }
        "Output" => return Ok(Kind::Output),
        "Conv2d" => {
            for (key, want) in [("dilation", 1), ("groups", 1)] {
                if let Some(v) = n.optional(key)?
                    && v.sizes(&n.at(key))?.iter().any(|&v| v != want)
                {
                    return Err(unsupported(name, format!("`{key}` other than {want}: the chip's convolutions have none")));
                }
            }
            let weight = n.weight(4)?;
            let kernel = [weight.shape[2], weight.shape[3]];
            let stride = n.pair_or("stride", [1, 1])?;
            AnnLayer::Conv { padding: n.padding(kernel, stride)?, stride, bias: n.bias()?, weight }
        }
        "Affine" => AnnLayer::Linear { weight: n.weight(2)?, bias: n.bias()? },
        "Linear" => AnnLayer::Linear { weight: n.weight(2)?, bias: None },
        "IF" => {
            let threshold = n.values("v_threshold")?.uniform(&n.at("v_threshold"))?;
            let r = n.optional("r")?.map_or(Ok(1.0), |r| r.uniform(&n.at("r")))?;
            if !(threshold > 0.0 && threshold.is_finite()) {
                return Err(unsupported(name, format!("threshold {threshold}: the chip's thresholds are positive")));
            }
            if !(r > 0.0 && r.is_finite()) {
                return Err(unsupported(name, format!("resistance r = {r}: it must be positive")));
            }
            // `v += r * I` crosses `threshold` when `v / r + I` crosses `threshold / r`.
            let threshold = (threshold / r) as f32;
            // sinabs' `from_nir` reads every `IF` as a subtracting neuron whatever its
            // `v_reset` (its own export writes 0 there): `--reset zero` overrides.
            AnnLayer::Iaf { threshold, min_v_mem: -threshold, reset: Reset::Subtract }
        }
        "SumPool2d" | "AvgPool2d" => {
            let kernel = n.values("kernel_size")?.pair(&n.at("kernel_size"))?;
            let stride = n.pair_or("stride", kernel)?;
            if n.pair_or("padding", [0, 0])? != [0, 0] {
                return Err(unsupported(name, "pooling with padding: the chip pools without"));
            }
            if kind == "SumPool2d" { AnnLayer::SumPool { kernel, stride } } else { AnnLayer::AvgPool { kernel, stride } }
        }
        "Flatten" => AnnLayer::Flatten,
        "LIF" | "LI" | "CubaLIF" | "CubaLI" | "I" => {
            return Err(unsupported(
                name,
                format!(
                    "a {kind} neuron: the chip's neurons integrate and fire without leak (NIR `IF`); a leaky network needs retraining with IF neurons"
                ),
            ));
        }
        other => return Err(unsupported(name, format!("NIR node type {other:?} has no counterpart on the chip"))),
    }))
}
