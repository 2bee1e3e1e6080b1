#!/usr/bin/env python3
"""NIR exports of the sinabs reference networks, so that the tests hold dynapviz's NIR import to
what sinabs made of the same network:
- the shared gesture case (`tests/nir/gesture_r50.nir`) and every chain case of
  `tests/sinabs-cases` that sinabs can export (a `model.nir` beside the case's `expected.json`),
  by sinabs' own `to_nir`;
- the graph cases of `tests/sinabs-cases`, which `to_nir` cannot export (it has no `Merge`), as
  a graph written here from their torch.fx trace (a merge is two edges into one node, as NIR
  writes a sum);
- `tests/nir/flat.nir` and `nested.nir` (one network, flat and as a graph in a graph), and
  `tests/nir/bad/`: graphs the chip cannot run, or broken ones.

sinabs exports spiking networks only, and only these modules: Conv2d, Linear, IAF, SumPool2d
and Flatten. So each ANN is converted by sinabs' `from_model` first; each AvgPool2d becomes
sinabs' SumPool2d with the next weights divided by its area (in f32, as sinabs' DynapcnnNetwork
does with an AvgPool2d), and Dropout goes. Before a file is written, sinabs' DynapcnnNetwork of
that exported network is checked against the case's `expected.json`: every layer and every
bin's class counts must be equal, or the case is skipped with the reason. Arrays of more than
16 values are stored deflated (a per-neuron threshold array is one value many times over), and
edges sorted, so a file made again is the same.

Needs nir >= 1.0.5 with nirtorch 2.x (tools/bench-sinabs' venv pins nir 1.0.4; see
`tools/nir-cases`, which makes a venv on top of it).

Usage: `tools/nir-cases [CASES]` (default `tests/sinabs-cases`).
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import samna_stub  # noqa: E402, F401  (before sinabs)

import h5py  # noqa: E402
import nir  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import sinabs.layers as sl  # noqa: E402
from sinabs.from_torch import from_model  # noqa: E402
from sinabs.nir import to_nir  # noqa: E402

import sinabs_golden as golden  # noqa: E402


def exportable(ann, shape):
    """sinabs' spiking network of `ann`, in the modules sinabs' NIR export knows."""
    snn = from_model(ann, input_shape=shape, add_spiking_output=True, batch_size=1).spiking_model
    layers, area = [], None
    for m in snn:
        if isinstance(m, (nn.Dropout, nn.Dropout2d)):
            continue
        if isinstance(m, nn.AvgPool2d):
            k = m.kernel_size if isinstance(m.kernel_size, tuple) else (m.kernel_size, m.kernel_size)
            area = (area or 1) * k[0] * k[1]
            layers.append(sl.SumPool2d(k))
            continue
        if isinstance(m, (nn.Conv2d, nn.Linear)) and area is not None:
            with torch.no_grad():
                m.weight.copy_(m.weight / area)
            area = None
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            raise NotImplementedError("batch norm (sinabs' NIR export has no such node)")
        layers.append(m)
    return nn.Sequential(*layers)


def input_shapes(snn, shape):
    """Each module's input shape (without the batch), by module name."""
    shapes = {}
    hooks = [m.register_forward_hook(lambda _m, i, _o, n=n: shapes.__setitem__(n, tuple(i[0].shape[1:]))) for n, m in snn.named_children()]
    with torch.no_grad():
        snn(torch.zeros(1, *shape))
    for h in hooks:
        h.remove()
    for m in snn.modules():
        if hasattr(m, "reset_states"):
            m.reset_states()
    return shapes


def export(snn, shape):
    """sinabs' NIR graph of `snn`, with the input shapes its export leaves out (a Conv2d's and a
    Flatten's: nir.write refuses them missing)."""
    shapes = input_shapes(snn, shape)
    graph = to_nir(snn, torch.zeros(1, *shape))
    for name, node in graph.nodes.items():
        if isinstance(node, nir.Conv2d) and node.input_shape is None:
            node.input_shape = np.array(shapes[name][-2:])
        if isinstance(node, nir.Flatten) and node.input_type["input"] is None:
            node.input_type = {"input": np.array(shapes[name])}
    return graph


def write(path, graph):
    """`nir.write`'s layout, with the larger arrays deflated and the edges sorted."""

    def put(group, d):
        for k, v in d.items():
            if k == "metadata":
                if v:
                    put(group.create_group(k), v)
            elif isinstance(v, str):
                group.create_dataset(k, data=v, dtype=h5py.string_dtype())
            elif isinstance(v, dict):
                put(group.create_group(str(k)), v)
            elif isinstance(v, torch.Tensor):
                put(group, {k: v.detach().numpy()})
            elif isinstance(v, np.ndarray) and v.size > 16 and v.dtype.kind in "fiu":
                group.create_dataset(k, data=v, compression="gzip")
            else:
                group.create_dataset(k, data=v)

    def sort_edges(g):
        # nirtorch's edges come in no fixed order: sorted, a file made again is the same.
        g.edges = sorted(g.edges)
        for n in g.nodes.values():
            if isinstance(n, nir.NIRGraph):
                sort_edges(n)

    sort_edges(graph)
    with h5py.File(path, "w") as f:
        f.create_dataset("version", data=nir.version)
        put(f.create_group("node"), graph.to_dict())


def make(case, to, name, ann, shape, device, ev):
    """Writes `to` from the ANN if sinabs' view of its export equals `case`'s `expected.json`."""
    want = json.loads((case / "expected.json").read_text())
    try:
        snn = exportable(ann, shape)
        got = golden.expected_of_snn(name, snn, shape, device, ev)
        graph = export(snn, shape)
    except Exception as e:  # noqa: BLE001  (a case sinabs cannot export is reported, not fatal)
        print(f"{name}: skipped, sinabs cannot export it: {type(e).__name__}: {e}")
        return
    got["layers"] = golden.known_fields(got["layers"], want["layers"])
    diff = [k for k in ("layers", "class_counts", "class_counts_per_bin") if got[k] != want[k]]
    if diff:
        print(f"{name}: skipped, the exported network differs from the case in {diff}")
        return
    to.parent.mkdir(parents=True, exist_ok=True)
    write(to, graph)
    print(f"{name}: {to.name} ({to.stat().st_size} bytes), {len(graph.nodes)} nodes, equal to {case / 'expected.json'}")


def graph_export(ann, shape):
    """A NIR graph of a branching ANN, written by this script (sinabs' `to_nir` exports no
    `Merge`): torch.fx's trace of the module, each ReLU the IF sinabs' `from_model` makes of it
    (threshold 1), each pooling as it is (NIR has AvgPool2d), and each `Merge` as NIR writes a
    sum: the edges of both of its inputs into the node that reads it."""
    class Tracer(torch.fx.Tracer):
        def is_leaf_module(self, m, qualname):
            return isinstance(m, (sl.Merge, sl.SumPool2d)) or super().is_leaf_module(m, qualname)

    traced = torch.fx.GraphModule(ann, Tracer().trace(ann))
    modules = dict(traced.named_modules())
    shapes = input_shapes_fx(traced, shape)
    nodes = {"input": nir.Input(input_type={"input": np.array(shape)})}
    edges = []
    made = {}  # fx node -> the NIR nodes its value comes from
    outputs = 0
    one = np.ones(1, dtype=np.float32)
    for n in traced.graph.nodes:
        if n.op == "placeholder":
            made[n] = ["input"]
            continue
        if n.op == "output":
            results = n.args[0] if isinstance(n.args[0], (tuple, list)) else [n.args[0]]
            for r in results:
                name = "output" if outputs == 0 else f"output{outputs}"
                nodes[name] = nir.Output(output_type={"output": np.array([1])})
                edges += [(src, name) for src in made[r]]
                outputs += 1
            continue
        assert n.op == "call_module", n
        m = modules[n.target]
        sources = [src for a in n.args for src in made[a]]
        if isinstance(m, sl.Merge):
            made[n] = sources
            continue
        name = n.target
        if isinstance(m, nn.Conv2d):
            bias = m.bias.detach().numpy() if m.bias is not None else np.zeros(m.out_channels, dtype=np.float32)
            nodes[name] = nir.Conv2d(input_shape=np.array(shapes[n][-2:]), weight=m.weight.detach().numpy(), stride=np.array(m.stride),
                                     padding=np.array(m.padding), dilation=np.array(m.dilation), groups=m.groups, bias=bias)
        elif isinstance(m, nn.Linear):
            nodes[name] = nir.Linear(weight=m.weight.detach().numpy()) if m.bias is None else nir.Affine(
                weight=m.weight.detach().numpy(), bias=m.bias.detach().numpy())
        elif isinstance(m, nn.ReLU):
            nodes[name] = nir.IF(r=one, v_threshold=one)
        elif isinstance(m, (nn.AvgPool2d, sl.SumPool2d)):
            k = m.kernel_size if isinstance(m.kernel_size, tuple) else (m.kernel_size, m.kernel_size)
            kind = nir.AvgPool2d if isinstance(m, nn.AvgPool2d) else nir.SumPool2d
            nodes[name] = kind(kernel_size=np.array(k), stride=np.array(k), padding=np.array([0, 0]))
        elif isinstance(m, nn.Flatten):
            nodes[name] = nir.Flatten(start_dim=0, end_dim=-1, input_type={"input": np.array(shapes[n])})
        else:
            raise NotImplementedError(type(m).__name__)
        edges += [(src, name) for src in sources]
        made[n] = [name]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def input_shapes_fx(traced, shape):
    """Each traced node's first input's shape (without the batch)."""
    shapes = {}
    env = {}
    x = torch.zeros(1, *shape)
    modules = dict(traced.named_modules())
    with torch.no_grad():
        for n in traced.graph.nodes:
            if n.op == "placeholder":
                env[n] = x
            elif n.op == "call_module":
                args = [env[a] for a in n.args]
                shapes[n] = tuple(args[0].shape[1:])
                env[n] = modules[n.target](*args)
    return shapes


def bad_graphs():
    """Small graphs the chip cannot run or that are broken, by file name: the tests check that
    each is refused with an error naming the node and the reason."""
    rng = np.random.default_rng(0)
    conv = lambda **k: nir.Conv2d(input_shape=np.array([8, 8]), weight=rng.normal(size=(4, 2, 3, 3)).astype(np.float32),
                                  stride=np.array([1, 1]), padding=np.array([1, 1]), dilation=np.array(k.get("dilation", [1, 1])),
                                  groups=1, bias=np.zeros(4, dtype=np.float32))
    io = {"input": nir.Input(input_type={"input": np.array([2, 8, 8])}), "output": nir.Output(output_type={"output": np.array([4, 8, 8])})}
    ones = np.ones((4, 8, 8), dtype=np.float32)
    chain = [("input", "conv"), ("conv", "neuron"), ("neuron", "output")]
    lif = nir.LIF(tau=ones * 0.01, r=ones, v_leak=ones * 0, v_threshold=ones)
    spread = ones.copy()
    spread[1] = 2.0
    flat = nir.NIRGraph(nodes={**io, "conv": conv(), "neuron": nir.IF(r=ones, v_threshold=ones * 0.5)}, edges=chain, type_check=False)
    nested = nir.NIRGraph(nodes={**io, "body": flat}, edges=[("input", "body"), ("body", "output")], type_check=False)
    return {
        # Not bad: the same network flat and as a graph inside a graph (the tests compare them).
        "../flat.nir": flat,
        "../nested.nir": nested,
        "leaky.nir": nir.NIRGraph(nodes={**io, "conv": conv(), "neuron": lif}, edges=chain),
        "two_thresholds.nir": nir.NIRGraph(nodes={**io, "conv": conv(), "neuron": nir.IF(r=ones, v_threshold=spread)}, edges=chain),
        "dilated.nir": nir.NIRGraph(nodes={**io, "conv": conv(dilation=[2, 2]), "neuron": nir.IF(r=ones, v_threshold=ones)}, edges=chain,
                                    type_check=False),
        "cycle.nir": nir.NIRGraph(
            nodes={**io, "conv": conv(), "neuron": nir.IF(r=ones, v_threshold=ones)},
            edges=chain + [("neuron", "conv")],
            type_check=False,
        ),
        "output_and_on.nir": nir.NIRGraph(
            nodes={**io, "conv": conv(), "neuron": nir.IF(r=ones, v_threshold=ones), "output2": io["output"],
                   "conv2": nir.Conv2d(input_shape=np.array([8, 8]), weight=np.ones((4, 4, 1, 1), dtype=np.float32), stride=np.array([1, 1]),
                                       padding=np.array([0, 0]), dilation=np.array([1, 1]), groups=1, bias=np.zeros(4, dtype=np.float32)),
                   "neuron2": nir.IF(r=ones, v_threshold=ones)},
            edges=chain + [("neuron", "conv2"), ("conv2", "neuron2"), ("neuron2", "output2")],
            type_check=False,
        ),
        "no_input.nir": nir.NIRGraph(nodes={"output": io["output"], "conv": conv(), "neuron": nir.IF(r=ones, v_threshold=ones)},
                                     edges=chain[1:], type_check=False),
    }


def declare_huge(src, dst):
    """`src` with its neuron's `r` replaced by a dataset that declares 302 M values and stores
    none (HDF5 fills them in from its fill value when read): a file of kilobytes that would read
    as 1.2 GB, as a fuzzer found one. The tests check it is refused before it is read."""
    import shutil

    import h5py

    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        node = f["node/nodes/neuron"]
        del node["r"]
        node.create_dataset("r", shape=(3, 33554435, 3), dtype="f4", fillvalue=1.0)


def main():
    here = Path(__file__).resolve().parent.parent
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else here / "tests/sinabs-cases"
    shared = here / "../shared/fixtures"
    torch.set_num_threads(1)
    for name, graph in bad_graphs().items():
        (here / "tests/nir/bad").mkdir(parents=True, exist_ok=True)
        write(here / "tests/nir/bad" / name, graph)
    declare_huge(here / "tests/nir/flat.nir", here / "tests/nir/bad/huge_dataset.nir")
    gesture = shared / "golden/gesture_r50"
    if gesture.exists():
        ann = golden.gesture_ann()
        ann.load_state_dict(torch.load(shared / "sinabs-gesture/dvs_gesture_params.pt", map_location="cpu"), strict=False)
        ann.eval()
        want = json.loads((gesture / "expected.json").read_text())
        ev = golden.read_csv(gesture / "input.csv")
        # The shared case's figures stay there: the test reads them from the shared fixtures.
        make(gesture, here / "tests/nir/gesture_r50.nir", want["case"], ann, tuple(want["input_shape"]), want["device"], ev)
    for name, (shape, device, build, gains, seed) in golden.cases().items():
        case = out / name
        # sinabs' `from_nir` reads every IF as subtracting: a network that resets to zero does
        # not come back from its own export.
        if not (case / "expected.json").exists() or name in golden.RESET_FN:
            continue
        ann = golden.randomize(build(), gains, seed, golden.BIAS_RANGE.get(name, (0.0, 0.05)))
        ann.eval()
        make(case, case / "model.nir", name, ann, shape, device, golden.read_csv(case / "input.csv"))
    for name, (shape, _device, build, gains, seed) in golden.graph_cases().items():
        case = out / name
        # As above: a network that resets to zero does not come back from NIR.
        if (case / "expected.json").exists() and name not in golden.RESET_FN:
            ann = golden.randomize(build(), gains, seed, golden.BIAS_RANGE.get(name, (0.0, 0.05)))
            ann.eval()
            write(case / "model.nir", graph_export(ann, shape))
            print(f"{name}: model.nir written from its torch.fx trace (the tests compare it with expected.json)")


if __name__ == "__main__":
    main()
