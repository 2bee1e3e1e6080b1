#!/usr/bin/env python3
"""Random networks through sinabs and through dynapviz, compared: what the fixed cases of
`tests/sinabs-cases` cannot show, that networks nobody picked convert, discretize, map and run
(binned) as sinabs makes them. Each network is a chain the chip can hold, drawn from a seed:
input size and polarities, DVS pooling, 2-6 layers with kernels 1-7, strides 1-2, paddings,
biases, poolings 2/4, a linear read-out or a conv one (whose map may be more than 1x1), a
device; within the chip's limits sinabs does not check (conv output maps up to 64x64, kernels up
to 16x16), which dynapviz refuses. sinabs makes the case as
`sinabs_golden.py` does; `dynapviz model --json` and `simulate --mode binned --json` must give
the same layers (core, threshold, weights' checksum) and the same spike counts, per layer and
per bin.

`--wide` adds batch norm, sinabs' `SumPool2d`, hidden linear layers, strong biases of both signs,
reset to zero, late starts and `from_model`'s other options (a threshold, a lower bound, a
bias rescaling); `--graphs` draws the graph cases of `sinabs_golden.py` (residual,
branches, merges, two outputs) with random gains and weights instead of chains;
`--random-graphs` draws graphs at random (`draw_random_graph`): layers fed by any earlier one,
the input, or a merge of two or three, each path through poolings of its own (none, average or
sum, 2 or 4, two in a row), read out by a conv or a linear layer (`--side-outputs`: one in
four with a second output, a layer no other reads); with `--wide`, batch norm
after some convs, so that merges meet batch norm. sinabs 3.1.3 fails on some such graphs
(an IndexError in its edge handler): those count as refused and are drawn again. `--nir`
also writes each network as NIR (`model.nir`, as `tools/nir_cases.py` writes the fixed cases;
not with batch norm or reset to zero, which sinabs' NIR cannot hold) and compares dynapviz's
import of it the same way; it needs nir >= 1.0.5, so run it with `target/nir-venv/bin/python`
(`tools/nir-cases` makes that venv). `--state-dict` also saves each chain's spiking network
as a PyTorch state_dict with its architecture file (`snn.pt`, `snn.toml`) and compares that.
`--opsets` exports each `model.onnx` at an ONNX opset drawn from 9-17 instead of torch's default;
`--bins` runs sinabs and the binned mode in bins of a width drawn from 100 µs to 10 ms.

sinabs simulates in float32, which holds every integer up to 2^24: a network whose layer gets a
larger weighted sum in a bin (wide bins of busy layers) is rounded by sinabs, not by dynapviz's
exact integers. `expected.json` records the largest (`largest_input`), and a difference there is
reported as sinabs' and does not fail the run.

Usage: `target/sinabs-venv/bin/python tools/sinabs_random.py [--wide] [--graphs | --random-graphs] [--count N]
[--seed S] [--keep DIR]` (needs `target/release/dynapviz` and the venv `tools/bench-sinabs`
makes). Prints one line per network and exits non-zero when one differs; `--keep DIR` leaves the
cases there (a failing one is a new fixture for `tests/sinabs-cases`); `--recheck DIR` compares
the cases there again.
"""

import argparse
import json
import math
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sinabs_golden as golden  # noqa: E402  (stubs samna before sinabs)

import torch.nn as nn  # noqa: E402
import sinabs.layers as sl  # noqa: E402
from sinabs.activation import MembraneReset  # noqa: E402

# The opsets `--opsets` draws for the TorchScript export: its oldest, and later ones that
# write sum pooling, padding and linear layers differently.
OPSETS = [9, 10, 11, 13, 15, 17]

# float32 holds every integer up to 2^24: past it sinabs' sums round, and a difference from
# dynapviz's exact integers is sinabs'.
FLOAT32_EXACT = 1 << 24

# The bin widths (µs) `--bins` draws for sinabs' frames and the binned mode.
BIN_WIDTHS = [100, 250, 500, 1000, 2000, 3000, 10_000]

# The devices sinabs 3 builds for.
DEVICES = ["speck2edevkit", "speck2fdevkit", "speck2e", "speck2fmodule"]


def draw(rng):
    """A random chain: (input shape, device, ANN, gains)."""
    c = rng.choice([1, 2])
    h = rng.choice([16, 24, 32, 48, 64, 128])
    w = rng.choice([h, h, rng.choice([16, 32, 64])])
    modules, gains = [], []
    size = [h, w]
    dvs_pool = rng.choice([1, 1, 2, 4])
    if dvs_pool > 1 and h % dvs_pool == 0 and w % dvs_pool == 0 and min(h, w) // dvs_pool >= 8:
        modules.append(nn.AvgPool2d(dvs_pool))
        size = [h // dvs_pool, w // dvs_pool]
    channels = c
    layers = rng.randint(2, 6)
    for i in range(layers):
        last = i == layers - 1
        k = rng.choice([1, 2, 3, 3, 3, 5, 7])
        k = min(k, min(size))
        stride = rng.choice([1, 1, 1, 2]) if k > 1 or rng.random() < 0.3 else 1
        pad = rng.randint(0, k // 2)
        out = rng.choice([4, 8, 16, 16, 24, 32, 48, 64]) if not last else rng.randint(2, 12)
        bias = rng.random() < 0.3
        modules.append(nn.Conv2d(channels, out, k, stride=stride, padding=pad, bias=bias))
        gains.append(rng.uniform(1.2, 3.0))
        size = [(s + 2 * pad - k) // stride + 1 for s in size]
        # The chip's limits that sinabs does not check (DESIGN.md §4; dynapviz refuses them).
        if min(size) < 1 or max(size) > 64:
            return None
        channels = out
        if last:
            break
        modules.append(nn.ReLU())
        pool = rng.choice([1, 1, 2, 2, 4])
        if pool > 1 and size[0] % pool == 0 and size[1] % pool == 0 and min(size) // pool >= 1:
            modules.append(nn.AvgPool2d(pool))
            size = [s // pool for s in size]
    if rng.random() < 0.3 and max(size) <= 16:
        # A linear read-out over the last map: a conv over all of it on the chip.
        modules += [nn.ReLU(), nn.Flatten(), nn.Linear(channels * size[0] * size[1], rng.randint(2, 12), bias=rng.random() < 0.3)]
        gains.append(rng.uniform(1.5, 3.0))
    return (c, h, w), rng.choice(DEVICES), nn.Sequential(*modules), gains


def widen(rng, ann, gains):
    """More of what sinabs converts, for `--wide`: batch norm after some convs, sinabs' own
    `SumPool2d` for some poolings, a hidden linear layer before a linear read-out. Returns the
    ANN, its gains, and the case's `options`."""
    modules, out_gains, weighted = [], [], 0
    items = list(ann)
    for i, m in enumerate(items):
        if isinstance(m, nn.AvgPool2d) and rng.random() < 0.3:
            k = m.kernel_size
            modules.append(sl.SumPool2d(k))
            continue
        if isinstance(m, nn.Linear) and i == len(items) - 1 and rng.random() < 0.5:
            hidden = rng.choice([16, 32, 64])
            modules += [nn.Linear(m.in_features, hidden, bias=False), nn.ReLU()]
            out_gains.append(rng.uniform(1.2, 2.5))
            m = nn.Linear(hidden, m.out_features, bias=m.bias is not None)
        modules.append(m)
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            out_gains.append(gains[weighted])
            weighted += 1
            following = items[i + 1] if i + 1 < len(items) else None
            if isinstance(m, nn.Conv2d) and isinstance(following, nn.ReLU) and rng.random() < 0.2:
                modules.append(nn.BatchNorm2d(m.out_channels))
    return (nn.Sequential(*modules), out_gains, *options(rng))


def options(rng):
    """The case's bias range, reset (`None`: subtract), start time and `from_model` options
    (threshold, lower bound, bias rescaling; empty: its defaults), for `--wide`."""
    bias_range = rng.choice([(0.0, 0.05), (-0.05, 0.1), (-1.5, 2.5)])
    reset = MembraneReset() if rng.random() < 0.2 else None
    start_us = rng.choice([0, 0, rng.randint(1, 20_000)])
    from_model = {}
    if rng.random() < 0.3:
        from_model["spike_threshold"] = rng.choice([0.5, 0.8, 1.5, 2.0, round(rng.uniform(0.3, 4.0), 3)])
    if rng.random() < 0.3:
        from_model["min_v_mem"] = rng.choice([-0.5, -2.0, -5.0, round(-rng.uniform(0.1, 8.0), 3)])
    if rng.random() < 0.2:
        from_model["bias_rescaling"] = rng.choice([0.5, 2.0, 3.0, round(rng.uniform(0.2, 5.0), 3)])
    return bias_range, reset, start_us, from_model


def draw_graph(rng, graphs):
    """One of the graph cases with its gains scaled at random: (input shape, device, ANN, gains)."""
    shape, device, build, gains, _seed = rng.choice(graphs)
    return shape, device, build(), [g * rng.uniform(0.7, 1.6) for g in gains]


class RandomGraph(nn.Module):
    """A network drawn as a list of layers, each a conv (batch norm optional) and a ReLU fed by
    one earlier layer's spikes, the input's, or a `Merge` of several layers' spikes, each source
    through poolings of its own (none, average or sum, 2 or 4, or two in a row), as the chip's
    destinations each pool; the last layer is the read-out (a conv, or a linear layer over the
    flattened map). `layers`: `(sources, conv, norm)`, `sources` a list of `(layer, poolings)`
    with -1 for the input, `poolings` a list of `("avg"|"sum", k)`; `conv` an `nn.Conv2d` or
    `nn.Linear`."""

    def __init__(self, dvs_pool, layers, side=None):
        super().__init__()
        self.dvs_pool = nn.AvgPool2d(dvs_pool) if dvs_pool > 1 else None
        # A layer no other reads, besides the read-out: a second output (see `draw_random_graph`).
        self.side = side
        # sinabs converts a network of two outputs without an input shape (see `sinabs_golden`).
        self.tuple_output = side is not None
        self.wiring = []
        for i, (sources, conv, norm) in enumerate(layers):
            wired = []
            for j, (source, poolings) in enumerate(sources):
                names = []
                for n, (kind, k) in enumerate(poolings):
                    name = f"pool{i}_{j}_{n}"
                    setattr(self, name, nn.AvgPool2d(k) if kind == "avg" else sl.SumPool2d(k))
                    names.append(name)
                wired.append((source, names))
            merges = []
            for n in range(len(sources) - 1):
                merges.append(f"merge{i}_{n}")
                setattr(self, merges[-1], sl.Merge())
            if isinstance(conv, nn.Linear):
                setattr(self, f"flat{i}", nn.Flatten())
            setattr(self, f"conv{i}", conv)
            if norm:
                setattr(self, f"norm{i}", nn.BatchNorm2d(conv.out_channels))
            setattr(self, f"relu{i}", nn.ReLU())
            self.wiring.append((wired, merges, norm, isinstance(conv, nn.Linear)))

    def forward(self, x):
        outs = {-1: self.dvs_pool(x) if self.dvs_pool is not None else x}
        for i, (wired, merges, norm, linear) in enumerate(self.wiring):
            inputs = []
            for source, names in wired:
                y = outs[source]
                for name in names:
                    y = getattr(self, name)(y)
                inputs.append(y)
            y = inputs[0]
            for name, other in zip(merges, inputs[1:]):
                y = getattr(self, name)(y, other)
            if linear:
                y = getattr(self, f"flat{i}")(y)
            y = getattr(self, f"conv{i}")(y)
            if norm:
                y = getattr(self, f"norm{i}")(y)
            outs[i] = getattr(self, f"relu{i}")(y)
        last = outs[len(self.wiring) - 1]
        return last if self.side is None else (outs[self.side], last)


def draw_poolings(rng, size, kind_of_layer):
    """Poolings on one path from a map of `size`: none, one of 2 or 4, or two of 2 in a row,
    average or sum (sinabs consolidates a row into one). The input's path takes none: the DVS
    layer pools once for all its destinations."""
    if kind_of_layer == "input":
        return []
    ks = rng.choice([[], [], [2], [2], [4], [2, 2]])
    if any(s % math.prod(ks) for s in size) or min(size) // max(1, math.prod(ks)) < 1:
        return []
    return [(rng.choice(["avg", "sum"]), k) for k in ks]


def draw_random_graph(rng, wide, side_outputs=False):
    """A random graph the chip can hold, or None: (input shape, device, ANN, gains). Every layer
    but the read-out feeds one or two others (the chip's two destinations), so no layer dangles;
    a merge takes two or three sources of one shape. With `side_outputs`, one graph in four
    leaves a layer besides the read-out unread: a second output of the network. Such a graph has
    no biases and no batch norm: sinabs converts a network of two outputs without an input
    shape, so without its step of zeros, where a bias would charge the neurons."""
    c = rng.choice([1, 2])
    h = rng.choice([16, 32, 32, 48, 64])
    w = rng.choice([h, h, rng.choice([16, 32, 64])])
    dvs_pool = rng.choice([1, 1, 2, 4])
    if h % dvs_pool or w % dvs_pool or min(h, w) // dvs_pool < 8:
        dvs_pool = 1
    shapes = {-1: (c, h // dvs_pool, w // dvs_pool)}
    uses = {-1: 0}
    layers, gains = [], []
    hidden = rng.randint(2, 7)
    two = side_outputs and rng.random() < 0.25
    side = None

    def pooled(source, poolings):
        ch, hh, ww = shapes[source]
        k = math.prod(k for _, k in poolings)
        return ch, hh // k, ww // k

    def free():
        return [s for s in shapes if uses[s] < 2]

    for i in range(hidden + 1):
        last = i == hidden
        waiting = [s for s in shapes if s >= 0 and uses[s] == 0]
        if last:
            if two and len(waiting) >= 2:
                side = waiting.pop(0)
            if not waiting:
                return None
            first = waiting[-1]
        else:
            if not free():
                return None
            first = waiting[-1] if waiting and rng.random() < 0.7 else rng.choice(free())
        poolings = draw_poolings(rng, shapes[first][1:], "input" if first < 0 else "layer")
        sources = [(first, poolings)]
        target = pooled(first, poolings)
        # More sources of the same shape after their own poolings: a merge.
        want = len(waiting) - 1 if last else (rng.choice([0, 0, 1, 1, 2]) if first >= 0 else 0)
        others = [s for s in (waiting if last else free()) if s >= 0 and s != first]
        rng.shuffle(others)
        others.sort(key=lambda s: uses[s])  # sources no layer takes yet first
        for s in others:
            if len(sources) > want:
                break
            ch, hh, ww = shapes[s]
            if ch != target[0] or hh % target[1] or ww % target[2] or hh // target[1] != ww // target[2]:
                continue
            k = hh // target[1]
            if k == 1:
                ps = []
            elif k in (2, 4):
                ps = [(rng.choice(["avg", "sum"]), k)] if k == 2 or rng.random() < 0.7 else [("avg", 2), ("sum", 2)]
            else:
                continue
            sources.append((s, ps))
        if last and len(sources) < len(waiting):
            return None
        for s, _ in sources:
            uses[s] += 1
        ch, hh, ww = target
        if last and rng.random() < 0.5 and hh == ww <= 16:
            conv, norm = nn.Linear(ch * hh * ww, rng.randint(2, 12), bias=rng.random() < 0.3 and not two), False
            out = (conv.out_features, 1, 1)
        else:
            k = min(rng.choice([1, 3, 3, 5]), hh, ww)
            stride = rng.choice([1, 1, 1, 2]) if k > 1 else 1
            pad = rng.choice([k // 2, k // 2, 0])
            cout = rng.randint(2, 12) if last else rng.choice([4, 8, 8, 8, 16])
            conv = nn.Conv2d(ch, cout, k, stride=stride, padding=pad, bias=rng.random() < 0.3 and not two)
            norm = wide and not last and rng.random() < 0.3 and not two
            out = (cout, (hh + 2 * pad - k) // stride + 1, (ww + 2 * pad - k) // stride + 1)
            if min(out[1:]) < 1 or max(out[1:]) > 64:
                return None
        layers.append((sources, conv, norm))
        gains.append(rng.uniform(1.2, 2.5) / math.sqrt(len(sources)))
        shapes[i], uses[i] = out, 0
    if two and side is None:
        return None
    return (c, h, w), rng.choice(DEVICES), RandomGraph(dvs_pool, layers, side), gains


def export_nir(case, name, ann, shape, device, ev, chain):
    """The case's network as NIR, `model.nir`, as `tools/nir_cases.py` writes the fixed cases: a
    chain by sinabs' own `to_nir` (when sinabs' view of the export equals the case), a graph from
    its torch.fx trace."""
    import nir_cases  # needs nir >= 1.0.5: run under the venv `tools/nir-cases` makes

    if chain:
        nir_cases.make(case, case / "model.nir", name, ann, shape, device, ev)
    else:
        nir_cases.write(case / "model.nir", nir_cases.graph_export(ann, shape))


def run(args):
    out = subprocess.run(args, capture_output=True, text=True)
    if out.returncode != 0:
        return None, out.stderr.strip()
    return json.loads(out.stdout), None


def compare_all(case, exp, binary):
    """`compare` of the case's ONNX file, of its dynamo export (torch's default exporter; all
    but networks with batch norm, see `sinabs_golden.write_case`), and of its NIR file and
    state_dict where it has them (`--nir`, `--state-dict`)."""
    diffs = compare(case, exp, binary)
    if (case / "model.dynamo.onnx").exists():
        diffs += [f"dynamo export: {d}" for d in compare(case, exp, binary, ["model.dynamo.onnx"])]
    if (case / "model.nir").exists():
        diffs += [f"NIR: {d}" for d in compare(case, exp, binary, ["model.nir"])]
    if (case / "snn.pt").exists():
        diffs += [f"state_dict: {d}" for d in compare(case, exp, binary, ["snn.pt", "--arch", "snn.toml"])]
    return diffs


def compare(case, exp, binary, model_files=("model.onnx",)):
    """Differences between dynapviz and sinabs' `expected.json` for the case, as strings.
    `model_files`: the model and its architecture file, if it needs one."""
    shape = ",".join(map(str, exp["input_shape"]))
    files = [f if f.startswith("--") else str(case / f) for f in model_files]
    common = ["--model", *files, "--input-shape", shape, "--device", exp["device"]]
    if exp.get("reset_fn") == "MembraneReset":
        common += ["--reset", "zero"]
    if model_files[0] != "snn.pt":
        # sinabs' `from_model` options; a spiking state_dict holds them itself (its thresholds,
        # bounds and biases as `from_model` left them).
        for key, value in exp.get("from_model", {}).items():
            common += [f"--{key.replace('_', '-')}", str(value)]
    model, err = run([binary, "model", *common, "--json"])
    if model is None:
        return [f"model: {err}"]
    bins = ["--bin-us", str(exp["bin_us"])]
    sim, err = run([binary, "simulate", *common, "--input", str(case / "input.csv"), "--mode", "binned", *bins, "--json"])
    if sim is None:
        return [f"simulate: {err}"]
    diffs = []
    if len(model["layers"]) != len(exp["layers"]):
        return [f"{len(model['layers'])} layers, sinabs {len(exp['layers'])}"]
    # sinabs numbers the layers of a graph that no order ties in its own set order, which varies
    # from run to run: such layers are paired by their weights when the numbers disagree.
    by_weights = {l["weight_sha256_i8_oihw"]: i for i, l in enumerate(model["layers"])}
    order = [by_weights.get(w["weight_sha256_i8_oihw"], i) for i, w in enumerate(exp["layers"])]
    if sorted(order) != list(range(len(order))):
        order = list(range(len(order)))
    model["layers"] = [model["layers"][i] for i in order]
    sim["layers"] = [sim["layers"][i] for i in order]
    # Renumbered layers get other cores from the mapping; the cores are compared when sinabs
    # numbered them as dynapviz did.
    keys = ["core"] if order == sorted(order) else []
    for got, want in zip(model["layers"], exp["layers"]):
        for key in keys + ["in_channels", "out_channels", "kernel", "stride", "padding", "pool", "threshold", "min_v_mem", "weight_abs_sum", "weight_sha256_i8_oihw"]:
            if got[key] != want[key] and not (isinstance(want[key], int) and got[key] == float(want[key])):
                # sinabs names the pooling of its first destination, in an order of its own;
                # dynapviz the finest: a layer that pools differently per destination must
                # have sinabs' among its destinations' poolings.
                if key == "pool" and want[key] in got["destination_pools"]:
                    continue
                diffs.append(f"layer {want['index']} {key}: {got[key]} against {want[key]}")
    for got, want in zip(sim["layers"], exp["layers"]):
        if got["spikes_after_pool"] != want["spikes_after_pool"]:
            diffs.append(f"layer {want['index']} spikes: {got['spikes_after_pool']} against {want['spikes_after_pool']}")
    for key in ["class_counts", "class_counts_per_bin", "bins"]:
        if sim.get(key) != exp[key]:
            diffs.append(f"{key} differ")
    return diffs


def main():
    here = Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", type=Path)
    ap.add_argument("--binary", default=str(here / "target/release/dynapviz"))
    ap.add_argument("--shared", default=str(here / "../shared"))
    ap.add_argument("--wide", action="store_true", help="also batch norm, SumPool2d, hidden linear layers, strong biases of both signs, reset to zero, late starts, from_model's spike_threshold, min_v_mem and bias_rescaling")
    ap.add_argument("--graphs", action="store_true", help="the graph cases of sinabs_golden.py (residual, branches, merges, two outputs) with random weights, gains and biases instead of chains")
    ap.add_argument("--random-graphs", action="store_true", help="graphs drawn at random (layers fed by any earlier one or by merges of two or three, poolings per destination) instead of chains")
    ap.add_argument("--side-outputs", action="store_true", help="with --random-graphs, one graph in four has a second output (and no biases)")
    ap.add_argument("--nir", action="store_true", help="also write each network as NIR and compare dynapviz's import of it (run with target/nir-venv/bin/python, which tools/nir-cases makes)")
    ap.add_argument("--state-dict", action="store_true", help="also save each chain's spiking network as a state_dict with an architecture file (snn.pt, snn.toml) and compare dynapviz's import of it")
    ap.add_argument("--opsets", action="store_true", help="export each network's model.onnx at an opset drawn from %s (the default: torch's)" % OPSETS)
    ap.add_argument("--bins", action="store_true", help="bins of a width drawn from %s µs instead of 1000" % BIN_WIDTHS)
    ap.add_argument("--recheck", type=Path, metavar="DIR", help="compare the cases a --keep run left in DIR again, making none")
    args = ap.parse_args()
    if args.recheck:
        cases = sorted(p.parent for p in args.recheck.glob("*/expected.json"))
        failed = 0
        for case in cases:
            exp = json.loads((case / "expected.json").read_text())
            diffs = compare_all(case, exp, args.binary)
            if diffs and exp.get("largest_input", 0) >= FLOAT32_EXACT:
                print(f"{case.name}: differs where sinabs is not exact ({', '.join(diffs[:3])})")
                continue
            failed += bool(diffs)
            print(f"{case.name}: {'DIFFERS (' + ', '.join(diffs[:6]) + ')' if diffs else 'equal'}")
        print(f"{len(cases)} networks, {failed} differ")
        sys.exit(1 if failed else 0)
    golden_input = Path(args.shared) / "fixtures/golden/gesture_r50/input.csv"
    source = golden.read_csv(golden_input) if golden_input.exists() else golden.synthetic_bar()
    golden.torch.set_num_threads(1)
    rng = random.Random(args.seed)
    root = args.keep or Path(tempfile.mkdtemp(prefix="sinabs-random-"))
    done, failed, refused, inexact = 0, 0, 0, 0
    graphs = list(golden.graph_cases().values())
    while done < args.count:
        if args.random_graphs:
            drawn = draw_random_graph(rng, args.wide, args.side_outputs)
        else:
            drawn = draw_graph(rng, graphs) if args.graphs else draw(rng)
        if drawn is None:
            continue
        shape, device, ann, gains = drawn
        seed = rng.randrange(1 << 30)
        name = f"random_{args.seed}_{done:03d}"
        bias_range, start_us = (-0.05, 0.1), 0
        if args.wide:
            # A graph keeps its modules; a chain may get more of them.
            extra = random.Random(seed)
            if args.graphs or args.random_graphs:
                bias_range, reset, start_us, from_model = options(extra)
            else:
                ann, gains, bias_range, reset, start_us, from_model = widen(extra, ann, gains)
            golden.RESET_FN.pop(name, None)
            golden.FROM_MODEL.pop(name, None)
            if reset is not None:
                golden.RESET_FN[name] = reset
            if from_model:
                golden.FROM_MODEL[name] = from_model
        ann = golden.randomize(ann, gains, seed, bias_range)
        ev = source[::6]
        ev = ev if shape[1:] == (128, 128) else golden.resample(ev, shape)
        if start_us:
            ev = ev.copy()
            ev[:, 0] += start_us
        # A bin width of its own, drawn from the network's seed (the networks of a seed stay the same).
        golden.BIN_US = random.Random(seed + 1).choice(BIN_WIDTHS) if args.bins else 1000
        # A draw sinabs refused left files under this name (a dynamo export, say) that this
        # network may not write.
        shutil.rmtree(root / name, ignore_errors=True)
        try:
            exp = golden.write_case(root / name, name, ann, shape, device, ev)
        except Exception as e:  # sinabs refuses what the chip cannot hold: draw again
            refused += 1
            print(f"{name}: sinabs refused it ({type(e).__name__}: {str(e)[:120]}), drawn again")
            continue
        norm = any(isinstance(m, nn.BatchNorm2d) for m in ann.modules())
        # An opset of its own for the TorchScript export, drawn from the network's seed (the
        # networks of a seed stay the same).
        opset = random.Random(seed).choice(OPSETS) if args.opsets else None
        if norm or opset:
            # torch's exporters fold batch norm into the conv before it, with torch's `eps`,
            # where sinabs folds without: exported with no folding, the norm stays a node and
            # dynapviz folds it as sinabs does (see README, `model`).
            golden.torch.onnx.export(ann, golden.torch.zeros(1, *shape), str(root / name / "model.onnx"), dynamo=False,
                                     do_constant_folding=not norm, input_names=["input"], opset_version=opset)
        if args.nir and not norm and name not in golden.RESET_FN and name not in golden.FROM_MODEL:
            # sinabs' NIR reader takes every IF as subtracting, NIR has no batch norm, and the
            # exports here make every IF as `from_model`'s defaults do.
            export_nir(root / name, name, ann, shape, device, ev, chain=isinstance(ann, nn.Sequential))
        if args.state_dict and isinstance(ann, nn.Sequential):
            # The spiking network as sinabs' `from_model` makes it, saved as a state_dict with
            # an architecture file (chains without batch norm; see `write_snn_state`).
            golden.write_snn_state(root / name, ann, shape)
        diffs = compare_all(root / name, exp, args.binary)
        done += 1
        if diffs and exp["largest_input"] >= FLOAT32_EXACT:
            inexact += 1
            print(f"{name}: differs where sinabs is not exact ({', '.join(diffs[:3])}): a layer's input reached {exp['largest_input']}, past 2^24")
        elif diffs:
            failed += 1
            print(f"{name}: DIFFERS ({', '.join(diffs[:6])})\n  {ann}")
        else:
            print(f"{name}: equal ({len(exp['layers'])} layers, spikes {[l['spikes_after_pool'] for l in exp['layers']]})")
    print(f"{done} networks, {failed} differ, {inexact} differ where sinabs' float32 is not exact, {refused} refused by sinabs; cases in {root}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
