//! sinabs' `SumPool2d` in an ONNX graph. It is `lp_pool2d` of norm 1, which torch's exporters
//! write as its formula: `Pow(x, p)`, `AveragePool`, `Sign` and `Abs` of that, `Relu(Abs)`,
//! `Mul(Sign, Relu)`, `Mul(kh * kw)`, `Pow(1 / p)`.
//!
//! The formula's nodes are found by where each tensor goes, not by their order in the file: the
//! exporters share one `Pow(x, p)` among all the sum poolings of one activation (they eliminate
//! common subexpressions), so a pooling may start from a `Pow` written for another one, far
//! before it.

use std::collections::{HashMap, HashSet};

use super::{Const, Node, NodeProto, scalar};
use crate::ann::AnnLayer;
use crate::error::Result;

/// What the formula's nodes must be, for error messages.
pub(super) const FORM: &str =
    "torch's export of lp_pool2d (sinabs' SumPool2d): Pow(x, p), AveragePool, Sign and Abs, Relu, Mul, Mul(kh*kw), Pow(1/p)";

/// One sum pooling's nodes that hold its numbers, by their index in the graph.
pub(super) struct SumPool {
    /// `Pow(x, p)`, perhaps shared with other sum poolings of `x`.
    power: usize,
    /// The `AveragePool`: the kernel and stride.
    average: usize,
    /// `Mul(kh * kw)`: the average made a sum.
    area: usize,
    /// `Pow(1 / p)`: the last node, whose output is the pooling's.
    root: usize,
}

/// The sum poolings of a graph, by the index of their last node, and the indices of the nodes
/// inside them: nodes only the formula reads, which are no layers of their own.
#[derive(Default)]
pub(super) struct SumPools {
    pub by_root: HashMap<usize, SumPool>,
    pub inner: HashSet<usize>,
}

/// Finds every sum pooling: each `AveragePool` of a `Pow`'s output read by a `Sign` and an
/// `Abs` starts one, and the rest of the formula must follow from it, or the graph is refused
/// with the node that does not fit.
pub(super) fn find(nodes: &[NodeProto]) -> Result<SumPools> {
    let mut readers: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut maker: HashMap<&str, usize> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        for input in &n.input {
            readers.entry(input.as_str()).or_default().push(i);
        }
        for output in &n.output {
            maker.insert(output.as_str(), i);
        }
    }
    let output = |i: usize| nodes[i].output.first().map_or("", String::as_str);
    let node = |i: usize| Node { proto: &nodes[i] };
    // The one node of operator `op` that reads `from`'s output.
    let next = |from: usize, op: &str| -> Result<usize> {
        match readers.get(output(from)).map_or(&[][..], Vec::as_slice) {
            [] => Err(node(from).unsupported(format!("the graph ends inside a sum pooling: expected {FORM}"))),
            [i] if nodes[*i].op_type == op => Ok(*i),
            [i] => Err(node(*i).unsupported(format!("inside a sum pooling, expected {op} here: {FORM}"))),
            _ => Err(node(from).unsupported(format!("inside a sum pooling, its output goes to more than the {op}: {FORM}"))),
        }
    };
    // A `Pad` of nothing (opsets 9 and 10 write one before the `AveragePool`, pads in an
    // attribute) passes its input on: the node that made it, and the `Pad` if there was one.
    let unpadded = |i: usize| -> (usize, Option<usize>) {
        let pads = node(i).ints("pads").is_some_and(|p| p.iter().all(|&v| v == 0));
        match nodes[i].input.first().and_then(|x| maker.get(x.as_str())) {
            Some(&before) if nodes[i].op_type == "Pad" && pads && readers.get(output(i)).is_some_and(|r| r.len() == 1) => (before, Some(i)),
            _ => (i, None),
        }
    };
    let mut pools = SumPools::default();
    for (average, n) in nodes.iter().enumerate() {
        let (power, pad) = match n.input.first().and_then(|x| maker.get(x.as_str())) {
            Some(&p) if n.op_type == "AveragePool" => unpadded(p),
            _ => continue,
        };
        if nodes[power].op_type != "Pow" {
            continue;
        }
        let (sign, abs) = match readers.get(output(average)).map_or(&[][..], Vec::as_slice) {
            [a, b] if nodes[*a].op_type == "Sign" && nodes[*b].op_type == "Abs" => (*a, *b),
            [a, b] if nodes[*a].op_type == "Abs" && nodes[*b].op_type == "Sign" => (*b, *a),
            // An average pooling of a sum pooling's output (the `Pow(1 / p)` that ends it), or a
            // `Pow` the importer refuses as no part of a sum pooling.
            _ => continue,
        };
        let relu = next(abs, "Relu")?;
        let product = next(relu, "Mul")?;
        if next(sign, "Mul")? != product {
            return Err(node(product).unsupported(format!("inside a sum pooling, expected the product of the Sign and the Relu: {FORM}")));
        }
        let area = next(product, "Mul")?;
        let root = next(area, "Pow")?;
        pools.inner.extend([average, sign, abs, relu, product, area].into_iter().chain(pad));
        pools.by_root.insert(root, SumPool { power, average, area, root });
    }
    // A `Pow` is inside when every node that reads it is inside a sum pooling (its
    // `AveragePool`, or the `Pad` before it); one read by anything else stays a node, which the
    // importer refuses.
    for pool in pools.by_root.values() {
        if readers.get(output(pool.power)).is_some_and(|r| r.iter().all(|i| pools.inner.contains(i))) {
            pools.inner.insert(pool.power);
        }
    }
    Ok(pools)
}

impl SumPool {
    /// The activation pooled: the first `Pow`'s base.
    pub(super) fn input<'a>(&self, nodes: &'a [NodeProto]) -> Option<&'a String> {
        nodes[self.power].input.first()
    }

    /// The pooling as a layer, once its constants are known: the norm must be 1 (a sum), the
    /// multiplier the pooling's area, the root 1.
    pub(super) fn layer(&self, nodes: &[NodeProto], consts: &HashMap<String, Const>) -> Result<AnnLayer> {
        let [power, average, area, root] = [self.power, self.average, self.area, self.root].map(|i| Node { proto: &nodes[i] });
        let norm = scalar(&power, consts).ok_or_else(|| power.unsupported(format!("Pow without a constant exponent: expected {FORM}")))?;
        if norm != 1.0 {
            return Err(power.unsupported(format!("lp pooling of norm {norm}: only norm 1 (sinabs' SumPool2d) is sum pooling")));
        }
        let (kernel, stride) = average.pooling()?;
        let size = (kernel[0] * kernel[1]) as f32;
        if scalar(&area, consts) != Some(size) {
            return Err(area.unsupported(format!("expected a multiplication by the pooling area {size}: {FORM}")));
        }
        if scalar(&root, consts) != Some(1.0) {
            return Err(root.unsupported(format!("expected the power 1/p = 1: {FORM}")));
        }
        Ok(AnnLayer::SumPool { kernel, stride })
    }
}
