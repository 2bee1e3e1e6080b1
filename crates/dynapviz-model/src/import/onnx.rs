//! ONNX models as `torch.onnx.export` writes them, by either of its exporters (TorchScript, and
//! dynamo, torch's default since 2.9, which keeps the weights in a `.onnx.data` file beside the
//! model: see `ExternalData`). The protobuf messages are declared here with
//! `prost` derives (the few fields we read), so no `protoc` runs at build time. The graph is made
//! of Conv, Relu, AveragePool, sum pooling (LpPool of norm 1, or sinabs' SumPool2d as torch
//! writes it, see `sum_pool`), Flatten/Reshape, Gemm/MatMul(+Add), BatchNormalization,
//! Dropout/Identity, and Add of two activations (sinabs' `Merge`, with the Pad to the larger
//! shape it adds). Anything else is reported with the file, the node's name and operator.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use prost::Message;

use crate::Tensor;
use crate::ann::{Ann, AnnLayer, Source};
use crate::error::{ModelError, Result, file_error};

mod sum_pool;

#[derive(Clone, PartialEq, Message)]
struct ModelProto {
    #[prost(int64, tag = "1")]
    ir_version: i64,
    #[prost(message, optional, tag = "7")]
    graph: Option<GraphProto>,
}

#[derive(Clone, PartialEq, Message)]
struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    node: Vec<NodeProto>,
    #[prost(message, repeated, tag = "5")]
    initializer: Vec<TensorProto>,
    #[prost(message, repeated, tag = "11")]
    input: Vec<ValueInfoProto>,
    #[prost(message, repeated, tag = "12")]
    output: Vec<ValueInfoProto>,
}

#[derive(Clone, PartialEq, Message)]
struct NodeProto {
    #[prost(string, repeated, tag = "1")]
    input: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    output: Vec<String>,
    #[prost(string, tag = "3")]
    name: String,
    #[prost(string, tag = "4")]
    op_type: String,
    #[prost(message, repeated, tag = "5")]
    attribute: Vec<AttributeProto>,
}

#[derive(Clone, PartialEq, Message)]
struct AttributeProto {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(float, tag = "2")]
    f: f32,
    #[prost(int64, tag = "3")]
    i: i64,
    #[prost(bytes = "vec", tag = "4")]
    s: Vec<u8>,
    #[prost(message, optional, tag = "5")]
    t: Option<TensorProto>,
    #[prost(int64, repeated, tag = "8")]
    ints: Vec<i64>,
}

#[derive(Clone, PartialEq, Message)]
struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    dims: Vec<i64>,
    #[prost(int32, tag = "2")]
    data_type: i32,
    #[prost(float, repeated, tag = "4")]
    float_data: Vec<f32>,
    /// Half-precision values, one per int32, when not in `raw_data`.
    #[prost(int32, repeated, tag = "5")]
    int32_data: Vec<i32>,
    #[prost(int64, repeated, tag = "7")]
    int64_data: Vec<i64>,
    #[prost(string, tag = "8")]
    name: String,
    #[prost(bytes = "vec", tag = "9")]
    raw_data: Vec<u8>,
    #[prost(double, repeated, tag = "10")]
    double_data: Vec<f64>,
    #[prost(message, repeated, tag = "13")]
    external_data: Vec<StringStringEntryProto>,
    #[prost(int32, tag = "14")]
    data_location: i32,
}

#[derive(Clone, PartialEq, Message)]
struct StringStringEntryProto {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(string, tag = "2")]
    value: String,
}

#[derive(Clone, PartialEq, Message)]
struct ValueInfoProto {
    #[prost(string, tag = "1")]
    name: String,
}

/// `TensorProto.data_location` of a tensor whose bytes are in another file.
const EXTERNAL: i32 = 1;
const FLOAT: i32 = 1;
const INT64: i32 = 7;
const FLOAT16: i32 = 10;
const DOUBLE: i32 = 11;
const BFLOAT16: i32 = 16;

/// An IEEE 754 half-precision value as the single-precision value it is (every half is one).
fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let (exponent, mantissa) = (u32::from((h >> 10) & 0x1f), u32::from(h & 0x3ff));
    match exponent {
        // Zero and the subnormals: mantissa x 2^-24, exact in f32.
        0 => f32::from_bits(sign) + if sign == 0 { 1.0 } else { -1.0 } * mantissa as f32 * 2f32.powi(-24),
        0x1f => f32::from_bits(sign | 0x7f80_0000 | (mantissa << 13)),
        // Rebias the exponent from 15 to 127.
        e => f32::from_bits(sign | ((e + 112) << 23) | (mantissa << 13)),
    }
}

/// A bfloat16 value: the top half of a single.
fn bf16_to_f32(b: u16) -> f32 {
    f32::from_bits(u32::from(b) << 16)
}

/// A constant: float values (weights) or integers (shapes).
#[derive(Clone)]
enum Const {
    Float(Tensor),
    Ints(Vec<i64>),
}

/// The files beside a model that hold its tensors' bytes (ONNX "external data": the dynamo
/// exporter writes every weight to `<model>.data` unless told otherwise). Each tensor names a
/// file relative to the model's folder, an offset and a length; only the asked range is read,
/// after checking it against the file's size, so a corrupt length cannot allocate more than
/// the file holds. Files are opened once.
struct ExternalData<'a> {
    model: &'a Path,
    files: HashMap<String, (File, u64)>,
}

impl<'a> ExternalData<'a> {
    fn new(model: &'a Path) -> Self {
        Self { model, files: HashMap::new() }
    }

    /// The bytes of tensor `t`, whose data location is external.
    fn bytes(&mut self, t: &TensorProto) -> Result<Vec<u8>> {
        let bad = |what: String| file_error(self.model, format!("tensor `{}`: {what}", t.name));
        let entry = |key: &str| t.external_data.iter().find(|e| e.key == key).map(|e| e.value.as_str());
        let number = |key: &str| -> Result<Option<u64>> {
            entry(key).map(|v| v.parse::<u64>().map_err(|_| bad(format!("external data {key} `{v}` is not a byte count")))).transpose()
        };
        let location = entry("location").ok_or_else(|| bad("its data is external but names no file (no `location`)".into()))?;
        let relative = Path::new(location);
        // As onnx itself: a file in the model's folder or below it, never elsewhere.
        if location.is_empty() || !relative.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir)) {
            return Err(bad(format!("external data file `{location}`: expected a path relative to the model's folder, inside it")));
        }
        let (offset, length) = (number("offset")?.unwrap_or(0), number("length")?);
        let (file, size) = match self.files.entry(location.to_string()) {
            Entry::Occupied(open) => open.into_mut(),
            Entry::Vacant(slot) => {
                let path: PathBuf = self.model.parent().unwrap_or(Path::new(".")).join(relative);
                let open = File::open(&path).and_then(|f| Ok((f.metadata()?.len(), f)));
                let (size, file) = open.map_err(|e| bad(format!("external data file {}: {e}", path.display())))?;
                slot.insert((file, size))
            }
        };
        let size = *size;
        let length = length.unwrap_or(size.saturating_sub(offset));
        if offset.checked_add(length).is_none_or(|end| end > size) {
            return Err(bad(format!("external data asks bytes {offset}..+{length} of `{location}`, which has {size}")));
        }
        // Eight bytes for the widest element type.
        if length > (super::MAX_TENSOR_ELEMENTS as u64) * 8 {
            return Err(bad(format!("external data of {length} bytes: more than {} elements", super::MAX_TENSOR_ELEMENTS)));
        }
        let mut bytes = vec![0; length as usize];
        file.seek(SeekFrom::Start(offset))
            .and_then(|_| file.read_exact(&mut bytes))
            .map_err(|e| bad(format!("reading external data file `{location}`: {e}")))?;
        Ok(bytes)
    }
}

fn decode_tensor(t: &TensorProto, path: &Path, external: &mut ExternalData) -> Result<Const> {
    let bad = |what: &str| file_error(path, format!("tensor `{}`: {what}", t.name));
    let fetched;
    let raw: &[u8] = if t.data_location == EXTERNAL {
        fetched = external.bytes(t)?;
        &fetched
    } else {
        &t.raw_data
    };
    let shape: Vec<usize> = t.dims.iter().map(|&d| usize::try_from(d).map_err(|_| bad("negative dimension"))).collect::<Result<_>>()?;
    let width = match t.data_type {
        FLOAT16 | BFLOAT16 => 2,
        FLOAT => 4,
        DOUBLE | INT64 => 8,
        other => {
            return Err(bad(&format!("data type {other} is not supported (expected float16, bfloat16, float32, float64 or int64)")));
        }
    };
    if !raw.len().is_multiple_of(width) {
        return Err(bad(&format!("{} bytes of data: not a whole number of {width}-byte values", raw.len())));
    }
    let words = || raw.chunks_exact(width);
    match t.data_type {
        FLOAT16 | BFLOAT16 => {
            let widen = if t.data_type == FLOAT16 { f16_to_f32 } else { bf16_to_f32 };
            let data: Vec<f32> = if raw.is_empty() {
                t.int32_data.iter().map(|&v| widen(v as u16)).collect()
            } else {
                words().map(|c| widen(u16::from_le_bytes([c[0], c[1]]))).collect()
            };
            Tensor::new(shape, data).map(Const::Float).ok_or_else(|| bad("data length does not match its dims"))
        }
        FLOAT | DOUBLE => {
            let data: Vec<f32> = if !raw.is_empty() {
                if t.data_type == FLOAT {
                    words().map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
                } else {
                    words().map(|c| f64::from_le_bytes(c.try_into().unwrap_or_default()) as f32).collect()
                }
            } else if t.data_type == FLOAT {
                t.float_data.clone()
            } else {
                t.double_data.iter().map(|&d| d as f32).collect()
            };
            Tensor::new(shape, data).map(Const::Float).ok_or_else(|| bad("data length does not match its dims"))
        }
        _ => Ok(Const::Ints(if raw.is_empty() {
            t.int64_data.clone()
        } else {
            words().map(|c| i64::from_le_bytes(c.try_into().unwrap_or_default())).collect()
        })),
    }
}

struct Node<'a> {
    proto: &'a NodeProto,
}

impl Node<'_> {
    fn label(&self) -> String {
        if self.proto.name.is_empty() {
            format!("{} node", self.proto.op_type)
        } else {
            format!("node `{}` ({})", self.proto.name, self.proto.op_type)
        }
    }

    fn attr(&self, name: &str) -> Option<&AttributeProto> {
        self.proto.attribute.iter().find(|a| a.name == name)
    }

    fn ints(&self, name: &str) -> Option<&[i64]> {
        self.attr(name).map(|a| a.ints.as_slice())
    }

    fn int(&self, name: &str, default: i64) -> i64 {
        self.attr(name).map_or(default, |a| a.i)
    }

    fn unsupported(&self, message: impl Into<String>) -> ModelError {
        ModelError::Unsupported { layer: self.label(), message: message.into() }
    }

    fn pair(&self, name: &str, default: usize) -> Result<[usize; 2]> {
        match self.ints(name) {
            None => Ok([default, default]),
            Some([a, b]) if *a >= 0 && *b >= 0 => Ok([*a as usize, *b as usize]),
            Some(v) => Err(self.unsupported(format!("attribute {name} = {v:?}: expected two non-negative values (2-D)"))),
        }
    }

    /// The kernel and stride of an average (or sum) pooling node, refusing what the chip's
    /// sum pooling cannot do.
    fn pooling(&self) -> Result<([usize; 2], [usize; 2])> {
        if self.int("ceil_mode", 0) != 0 {
            return Err(self.unsupported("ceil_mode pooling does not map to sum pooling"));
        }
        if self.symmetric_pads()? != [0, 0] {
            return Err(self.unsupported("padded pooling does not map to the chip"));
        }
        Ok((self.pair("kernel_shape", 1)?, self.pair("strides", 1)?))
    }

    fn symmetric_pads(&self) -> Result<[usize; 2]> {
        match self.ints("pads") {
            None => Ok([0, 0]),
            Some([t, l, b, r]) if t == b && l == r && *t >= 0 && *l >= 0 => Ok([*t as usize, *l as usize]),
            Some(v) => Err(self.unsupported(format!("pads {v:?}: only symmetric padding maps to the chip"))),
        }
    }
}

/// Takes `node` into `consts` if it is a constant: a `Constant`, an `Identity` of a constant
/// (torch's exporter gives an initializer equal to another one, an untrained batch norm's weight
/// and running variance, both ones, that way), or a `Transpose` of a constant (a linear layer's
/// weight before its MatMul, when the model is exported without constant folding: the export
/// that keeps batch norm a node, see `BatchNormalization`).
fn constant(node: &Node, consts: &mut HashMap<String, Const>, path: &Path, external: &mut ExternalData) -> Result<bool> {
    let p = node.proto;
    let output = p.output.first().cloned().unwrap_or_default();
    if p.op_type == "Constant" {
        let t = node.attr("value").and_then(|a| a.t.as_ref()).ok_or_else(|| node.unsupported("Constant without a tensor value"))?;
        consts.insert(output, decode_tensor(t, path, external)?);
        return Ok(true);
    }
    if p.op_type == "Identity"
        && let Some(c) = p.input.first().and_then(|i| consts.get(i))
    {
        consts.insert(output, c.clone());
        return Ok(true);
    }
    if p.op_type == "Transpose"
        && let Some(Const::Float(t)) = p.input.first().and_then(|i| consts.get(i))
    {
        let transposed = transpose(t, node.ints("perm")).map_err(|why| node.unsupported(why))?;
        consts.insert(output, Const::Float(transposed));
        return Ok(true);
    }
    Ok(false)
}

/// `t` with its axes in the order `perm` gives (reversed without one, as ONNX says).
fn transpose(t: &Tensor, perm: Option<&[i64]>) -> std::result::Result<Tensor, String> {
    let rank = t.shape.len();
    let perm: Vec<usize> = match perm {
        None => (0..rank).rev().collect(),
        Some(p) => p.iter().map(|&a| usize::try_from(a).unwrap_or(usize::MAX)).collect(),
    };
    let mut seen = vec![false; rank];
    if perm.len() != rank || !perm.iter().all(|&a| a < rank && !std::mem::replace(&mut seen[a], true)) {
        return Err(format!("perm {perm:?} is not an order of the {rank} axes of its constant"));
    }
    let shape: Vec<usize> = perm.iter().map(|&a| t.shape[a]).collect();
    // Where a step along each input axis moves in the input's data.
    let mut strides = vec![1usize; rank];
    for a in (0..rank.saturating_sub(1)).rev() {
        strides[a] = strides[a + 1] * t.shape[a + 1];
    }
    let mut data = Vec::with_capacity(t.data.len());
    let mut index = vec![0usize; rank];
    for _ in 0..t.data.len() {
        data.push(t.data[index.iter().zip(&perm).map(|(&i, &a)| i * strides[a]).sum::<usize>()]);
        // The next output index, last axis fastest.
        for d in (0..rank).rev() {
            index[d] += 1;
            if index[d] < shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    Tensor::new(shape, data).ok_or_else(|| "a transposed constant of the wrong size".to_string())
}

/// The single value of a constant input of `node`, if it has one.
fn scalar(node: &Node, consts: &HashMap<String, Const>) -> Option<f32> {
    node.proto.input.iter().find_map(|i| match consts.get(i) {
        Some(Const::Float(t)) if t.data.len() == 1 => Some(t.data[0]),
        Some(Const::Ints(v)) if v.len() == 1 => Some(v[0] as f32),
        _ => None,
    })
}

/// A `Pad` of zeros after the end of the channels, rows and columns, as torch writes the padding
/// in sinabs' `Merge` of two inputs of different shapes. Pads that are constants are read
/// (zeros before anything, and no batch padding, or an error); pads that torch computes from
/// constants through shape arithmetic (the TorchScript exporter) are taken on trust when the
/// Pad feeds an Add alone, as the `Merge`'s padding to the larger shape, which the converter
/// gives the merged layer anyway.
fn pad(node: &Node, consts: &HashMap<String, Const>, derived: &HashSet<String>, readers: &[&str]) -> Result<AnnLayer> {
    let p = node.proto;
    let mode = node.attr("mode").map(|a| String::from_utf8_lossy(&a.s).into_owned()).unwrap_or_else(|| "constant".into());
    if mode != "constant" {
        return Err(node.unsupported(format!("padding mode {mode}: only zeros (constant) are a merge's padding")));
    }
    if let Some(v) = p.input.get(2).filter(|n| !n.is_empty()) {
        match consts.get(v) {
            Some(Const::Float(t)) if t.data.iter().all(|&x| x == 0.0) => {}
            Some(Const::Ints(x)) if x.iter().all(|&x| x == 0) => {}
            _ if derived.contains(v) && readers == ["Add"] => {}
            _ => return Err(node.unsupported("padding with a value other than 0")),
        }
    }
    let pads = match p.input.get(1).map(|n| (consts.get(n), derived.contains(n))) {
        Some((Some(Const::Ints(v)), _)) => v.clone(),
        Some((_, true)) if readers == ["Add"] => return Ok(AnnLayer::Identity),
        _ => {
            node.ints("pads").map(|v| v.to_vec()).ok_or_else(|| node.unsupported("pads that are neither constant nor those of a merge"))?
        }
    };
    // ONNX order: the begins of every axis (N, C, H, W), then their ends.
    match pads[..] {
        [0, 0, 0, 0, 0, c, h, w] if c >= 0 && h >= 0 && w >= 0 => Ok(AnnLayer::PadEnd { pads: [c as usize, h as usize, w as usize] }),
        _ => {
            Err(node
                .unsupported(format!("pads {pads:?}: only zeros after the channels, rows and columns (a merge's padding) are supported")))
        }
    }
}

/// Reads an ONNX file into an ANN. A node the chip or the converter cannot take is
/// reported with the file and the node.
pub fn load(path: &Path) -> Result<Ann> {
    read(path).map_err(|e| match e {
        ModelError::Unsupported { layer, message } => ModelError::Unsupported { layer: format!("{}, {layer}", path.display()), message },
        other => other,
    })
}

fn read(path: &Path) -> Result<Ann> {
    let bytes = std::fs::read(path).map_err(|source| ModelError::Io { path: path.to_path_buf(), error: source })?;
    let model =
        ModelProto::decode(bytes.as_slice()).map_err(|e| file_error(path, format!("not an ONNX model (protobuf decode failed: {e})")))?;
    let graph = model.graph.ok_or_else(|| file_error(path, "ONNX model has no graph"))?;
    let mut consts: HashMap<String, Const> = HashMap::new();
    let mut external = ExternalData::new(path);
    for t in &graph.initializer {
        consts.insert(t.name.clone(), decode_tensor(t, path, &mut external)?);
    }
    let data_inputs: Vec<&str> = graph.input.iter().map(|i| i.name.as_str()).filter(|n| !consts.contains_key(*n)).collect();
    let [input] = data_inputs[..] else {
        return Err(file_error(
            path,
            format!("the graph has {} data inputs {data_inputs:?}: expected exactly one (the DVS input)", data_inputs.len()),
        ));
    };
    // Which layer made each activation; tensors computed from constants alone (their values
    // unread: the shape arithmetic torch writes for a Pad).
    let mut made: HashMap<String, Source> = HashMap::from([(input.to_string(), Source::Input)]);
    let mut derived: HashSet<String> = HashSet::new();
    // The operators that read each tensor.
    let mut readers: HashMap<&str, Vec<&str>> = HashMap::new();
    for n in &graph.node {
        for i in &n.input {
            readers.entry(i.as_str()).or_default().push(n.op_type.as_str());
        }
    }
    let sum_pools = sum_pool::find(&graph.node)?;
    let mut ann = Ann::default();
    let mut nodes = graph.node.iter().enumerate().filter(|(i, _)| !sum_pools.inner.contains(i)).peekable();
    while let Some((index, proto)) = nodes.next() {
        let (node, p) = (Node { proto }, proto);
        if constant(&node, &mut consts, path, &mut external)? {
            continue;
        }
        // A sum pooling's last node stands for all of it: it reads what the first one reads.
        let sum_pool = sum_pools.by_root.get(&index);
        let activations: Vec<&String> = match sum_pool {
            Some(pool) => pool.input(&graph.node).into_iter().collect(),
            None => p.input.iter().filter(|i| !consts.contains_key(*i) && !derived.contains(*i) && !i.is_empty()).collect(),
        };
        if activations.is_empty() {
            derived.extend(p.output.iter().cloned());
            continue;
        }
        let inputs = activations
            .iter()
            .map(|a| made.get(*a).copied().ok_or_else(|| node.unsupported(format!("reads {a}, which no node before it makes"))))
            .collect::<Result<Vec<Source>>>()?;
        let merge = p.op_type == "Add" && inputs.len() == 2;
        if inputs.len() != 1 && !merge {
            return Err(
                node.unsupported(format!("has {} activation inputs {activations:?}: only Add (sinabs' Merge) takes two", inputs.len()))
            );
        }
        let weight = |i: usize| -> Result<Tensor> {
            match p.input.get(i).and_then(|n| consts.get(n)) {
                Some(Const::Float(t)) => Ok(t.clone()),
                _ => Err(node.unsupported(format!("input {i} must be a constant float tensor"))),
            }
        };
        let name = if p.name.is_empty() { format!("{}#{}", p.op_type, ann.layers.len()) } else { p.name.clone() };
        let mut output = p.output.first().cloned().unwrap_or_default();
        let layer = match p.op_type.as_str() {
            "Pow" => match sum_pool {
                Some(pool) => pool.layer(&graph.node, &consts)?,
                None => return Err(node.unsupported(format!("a Pow that is no part of a sum pooling: expected {}", sum_pool::FORM))),
            },
            "Add" if merge => AnnLayer::Merge,
            "Pad" => pad(&node, &consts, &derived, readers.get(output.as_str()).map_or(&[][..], |r| &r[..]))?,
            "LpPool" => match node.int("p", 2) {
                1 => {
                    let (kernel, stride) = node.pooling()?;
                    AnnLayer::SumPool { kernel, stride }
                }
                p => return Err(node.unsupported(format!("lp pooling of norm {p}: only norm 1 (sinabs' SumPool2d) is sum pooling"))),
            },
            "Conv" => {
                if node.int("group", 1) != 1 {
                    return Err(node.unsupported("grouped/depthwise convolution is not supported by the chip"));
                }
                if node.ints("dilations").is_some_and(|d| d.iter().any(|&v| v != 1)) {
                    return Err(node.unsupported("dilated convolution is not supported by the chip"));
                }
                let w = weight(1)?;
                if w.shape.len() != 4 {
                    return Err(node.unsupported(format!("weight of shape {:?}: expected 4-D (2-D convolution)", w.shape)));
                }
                let bias = if p.input.len() > 2 { Some(weight(2)?.data) } else { None };
                AnnLayer::Conv { weight: w, bias, stride: node.pair("strides", 1)?, padding: node.symmetric_pads()? }
            }
            "Relu" => AnnLayer::Relu,
            "AveragePool" => {
                let (kernel, stride) = node.pooling()?;
                AnnLayer::AvgPool { kernel, stride }
            }
            "MaxPool" => return Err(node.unsupported("max pooling has no chip equivalent: use AvgPool2d (sum pooling on chip)")),
            "Flatten" => AnnLayer::Flatten,
            "Reshape" => match p.input.get(1).and_then(|n| consts.get(n)) {
                // torch's x.view(x.size(0), -1) / flatten: two dimensions, batch first.
                Some(Const::Ints(dims)) if dims.len() == 2 => AnnLayer::Flatten,
                _ => return Err(node.unsupported("only a Reshape to (batch, features), i.e. a flatten, is supported")),
            },
            "Dropout" | "Identity" => AnnLayer::Dropout,
            "BatchNormalization" => {
                let eps = node.attr("epsilon").map_or(1e-5, |a| a.f);
                let [g, b, m, v] = [weight(1)?, weight(2)?, weight(3)?, weight(4)?];
                crate::import::batch_norm(&g.data, &b.data, &m.data, &v.data, eps)
            }
            "Gemm" => {
                if node.int("transA", 0) != 0 || node.attr("alpha").is_some_and(|a| a.f != 1.0) || node.attr("beta").is_some_and(|a| a.f != 1.0) {
                    return Err(node.unsupported("only Gemm with transA = 0, alpha = beta = 1 (a Linear layer) is supported"));
                }
                let w = weight(1)?;
                let w = if node.int("transB", 0) == 1 { w } else { w.transposed().ok_or_else(|| node.unsupported("Gemm weight is not 2-D"))? };
                let bias = if p.input.len() > 2 { Some(weight(2)?.data) } else { None };
                AnnLayer::Linear { weight: w, bias }
            }
            "MatMul" => {
                let w = weight(1)?.transposed().ok_or_else(|| node.unsupported("MatMul weight is not 2-D"))?;
                let mut bias = None;
                // torch exports Linear(bias=True) on 3-D inputs as MatMul + Add.
                if let Some((_, next)) = nodes.peek()
                    && next.op_type == "Add"
                    && next.input.iter().any(|i| p.output.contains(i))
                    && let Some(Const::Float(b)) = next.input.iter().find_map(|i| consts.get(i))
                {
                    bias = Some(b.data.clone());
                    output = next.output.first().cloned().unwrap_or_default();
                    nodes.next();
                }
                AnnLayer::Linear { weight: w, bias }
            }
            "Add" => return Err(node.unsupported("an Add of a constant that is not a bias after MatMul")),
            other => return Err(node.unsupported(format!("unknown operator {other}: supported are Conv, Relu, AveragePool, LpPool (p = 1) and sinabs' SumPool2d, Flatten, Reshape, Gemm, MatMul, BatchNormalization, Dropout, Identity, Add of two activations (sinabs' Merge) and Pad"))),
        };
        made.insert(output, Source::Layer(ann.layers.len()));
        ann.push_from(name, layer, inputs);
    }
    if ann.layers.is_empty() {
        return Err(file_error(path, "the graph has no layers"));
    }
    Ok(ann)
}

#[cfg(test)]
mod tests {
    use super::{Tensor, bf16_to_f32, f16_to_f32, transpose};

    #[test]
    fn half_precision_widens_exactly() {
        let cases: [(u16, f32); 9] = [
            (0x0000, 0.0),
            (0x3c00, 1.0),
            (0xc000, -2.0),
            (0x3555, 0.333_251_95),
            (0x7bff, 65504.0),
            (0x0001, 5.960_464_5e-8),
            (0x83ff, -6.097_555e-5),
            (0x7c00, f32::INFINITY),
            (0xfc00, f32::NEG_INFINITY),
        ];
        for (bits, want) in cases {
            assert_eq!(f16_to_f32(bits), want, "{bits:#06x}");
        }
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
        assert_eq!((bf16_to_f32(0x3f80), bf16_to_f32(0xc0a0)), (1.0, -5.0));
    }

    /// A constant's axes reordered as ONNX's `Transpose` says: a linear weight (2-D), a 3-D
    /// order, the default (reversed), and orders that are none.
    #[test]
    fn a_constant_is_transposed_by_its_perm() {
        let t = Tensor::new(vec![2, 3], vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]).expect("tensor");
        let got = transpose(&t, Some(&[1, 0])).expect("2-D");
        assert_eq!((got.shape, got.data), (vec![3, 2], vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]));
        let cube = Tensor::new(vec![2, 3, 4], (0..24).map(|v| v as f32).collect()).expect("tensor");
        let got = transpose(&cube, Some(&[2, 0, 1])).expect("3-D");
        assert_eq!(got.shape, vec![4, 2, 3]);
        // out[k][i][j] = in[i][j][k] = 12 i + 4 j + k.
        assert_eq!(got.data[(3 * 2 + 1) * 3 + 2], (12 + 4 * 2 + 3) as f32);
        assert_eq!(transpose(&t, None).expect("reversed").data, vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        for bad in [&[0i64, 0][..], &[0], &[0, 2], &[-1, 0]] {
            assert!(transpose(&t, Some(bad)).is_err(), "{bad:?}");
        }
    }
}
