#!/usr/bin/env python3
"""Reference cases made by sinabs itself, for networks other than the gesture one: each case is a
float ANN (exported to ONNX as torch does), an input recording and what sinabs' own conversion,
discretization, "auto" mapping and CPU simulation made of them, in the layout of the shared
golden fixtures (`expected.json`). The tests hold dynapviz to them as to the shared ones.

Usage: `target/sinabs-venv/bin/python tools/sinabs_golden.py [OUT]` (default `tests/sinabs-cases`). `--check` makes the
shared gesture case again from its own model and input and compares it with its `expected.json`:
proof that this generator computes what that fixture's maker did.

Weights are random (seeded) and scaled so that every layer spikes but none saturates; the inputs
are the shared golden recording resampled to each case's input shape, or, without it, a
synthetic bar sweeping the sensor.
"""

import argparse
import hashlib
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import samna_stub  # noqa: E402, F401  (before sinabs)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import sinabs.layers as sl  # noqa: E402
from sinabs.backend.dynapcnn import DynapcnnNetwork  # noqa: E402
from sinabs.backend.dynapcnn.chip_factory import ChipFactory  # noqa: E402
from sinabs.backend.dynapcnn.dvs_layer import DVSLayer  # noqa: E402
from sinabs.from_torch import from_model  # noqa: E402
from sinabs.activation import MembraneReset, MembraneSubtract  # noqa: E402

SIMULATOR = "sinabs {} DynapcnnNetwork CPU forward (MultiSpike, {} reset)"
BIN_US = 1000


def cases():
    """Name -> (input shape, device, ANN builder, gain per weighted layer, seed). The gains bring
    each layer's activity into a range where it spikes often but not at every bin."""
    return {
        # Bias in every layer (sinabs adds it each bin), a strided conv, a linear read-out over
        # an 8x8 map (a conv with an 8x8 kernel on the chip).
        "small_bias": (
            (2, 32, 32),
            "speck2edevkit",
            lambda: nn.Sequential(
                nn.Conv2d(2, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
                nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
                nn.Flatten(), nn.Linear(16 * 8 * 8, 10),
            ),
            [0.6, 1.4, 2.5],
            11,
        ),
        # Merged polarities (one input channel), a pooling on the input that the DVS layer takes,
        # a 5x5 kernel with padding 2, pooling 4 and a conv read-out with no ReLU.
        "merged_dvs_pool": (
            (1, 128, 128),
            "speck2fdevkit",
            lambda: nn.Sequential(
                nn.AvgPool2d(4),
                nn.Conv2d(1, 8, 5, padding=2, bias=False), nn.ReLU(), nn.AvgPool2d(2),
                nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.ReLU(), nn.AvgPool2d(4),
                nn.Conv2d(16, 5, 4, bias=False),
            ),
            [2.0, 2.0, 2.5],
            12,
        ),
        # Stride 4 with a 4x4 kernel, a conv with no padding and stride 2, batch norm folded in,
        # three linear layers (the first over a 3x3 map), one of 300 channels.
        "strided_batchnorm": (
            (2, 64, 64),
            "speck2edevkit",
            lambda: nn.Sequential(
                nn.Conv2d(2, 16, 4, stride=4, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                nn.Conv2d(16, 32, 3, stride=2, bias=False), nn.ReLU(), nn.AvgPool2d(2),
                nn.Flatten(), nn.Linear(32 * 3 * 3, 64, bias=False), nn.ReLU(),
                nn.Linear(64, 300, bias=False), nn.ReLU(), nn.Linear(300, 4, bias=False),
            ),
            [1.2, 1.5, 1.5, 1.5, 2.0],
            13,
        ),
        # 1x1 and 7x7 kernels, stride 2 with padding 3, 64 channels.
        "kernels_1_and_7": (
            (2, 128, 128),
            "speck2edevkit",
            lambda: nn.Sequential(
                nn.Conv2d(2, 8, 7, stride=2, padding=3, bias=False), nn.ReLU(), nn.AvgPool2d(2),
                nn.Conv2d(8, 64, 1, bias=False), nn.ReLU(), nn.AvgPool2d(2),
                nn.Conv2d(64, 32, 3, stride=2, padding=1, bias=False), nn.ReLU(), nn.AvgPool2d(2),
                nn.Conv2d(32, 6, 4, bias=False),
            ),
            [1.2, 1.6, 2.0, 2.5],
            14,
        ),
        # Biases of both signs, some past the threshold: the shape-inference step fires those
        # neurons and their spikes charge the next layer; negative ones start at min_v_mem.
        "strong_bias": (
            (2, 32, 32),
            "speck2edevkit",
            lambda: nn.Sequential(
                nn.Conv2d(2, 8, 3, padding=1), nn.ReLU(),
                nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU(), nn.AvgPool2d(2),
                nn.Flatten(), nn.Linear(8 * 8 * 8, 6),
            ),
            [0.5, 1.0, 1.5],
            15,
        ),
        # A recording that starts 3.7 ms after 0 (sinabs' bins count from 0, and the bias charges
        # the neurons in the empty ones), a non-square input, padding only along y, chained
        # poolings (2 then 2) and a read-out that ends in ReLU (no spiking layer appended).
        "late_start_non_square": (
            (2, 48, 64),
            "speck2edevkit",
            lambda: nn.Sequential(
                nn.Conv2d(2, 8, 5, stride=2, padding=2), nn.ReLU(), nn.AvgPool2d(2), nn.AvgPool2d(2),
                nn.Conv2d(8, 16, 3, padding=(1, 0)), nn.ReLU(),
                nn.Flatten(), nn.Linear(16 * 6 * 6, 7), nn.ReLU(),
            ),
            [1.0, 1.5, 2.0],
            16,
        ),
        # Batch norm after a linear layer (BatchNorm1d), and a first layer that is a linear one
        # over the whole (small) input.
        "linear_batchnorm": (
            (2, 16, 16),
            "speck2edevkit",
            lambda: nn.Sequential(
                nn.Flatten(), nn.Linear(2 * 16 * 16, 64, bias=False), nn.BatchNorm1d(64), nn.ReLU(),
                nn.Linear(64, 5, bias=False),
            ),
            [1.5, 1.5],
            17,
        ),
        # sinabs' own SumPool2d in the ANN (torch exports it as lp_pool2d's formula): on the
        # input (the DVS layer's pooling, no rescale), between layers, and chained with an
        # AvgPool2d (whose 1/4 alone goes into the next layer's weights).
        "sum_pool": (
            (2, 128, 128),
            "speck2fdevkit",
            lambda: nn.Sequential(
                sl.SumPool2d(2),
                nn.Conv2d(2, 8, 3, padding=1, bias=False), nn.ReLU(), sl.SumPool2d(2),
                nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.ReLU(), sl.SumPool2d(2), nn.AvgPool2d(2),
                nn.Flatten(), nn.Linear(16 * 8 * 8, 10, bias=False),
            ),
            [1.0, 0.6, 1.5],
            18,
        ),
        # Neurons that reset to zero after a spike (`from_model(..., reset_fn=MembraneReset())`,
        # the chip's `return_to_zero`), with biases, so that the shape-inference step resets
        # too, and gains high enough that a neuron often reaches two thresholds in a bin, where
        # resetting to zero and subtracting differ.
        "reset_zero": (
            (2, 32, 32),
            "speck2edevkit",
            lambda: nn.Sequential(
                nn.Conv2d(2, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
                nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
                nn.Flatten(), nn.Linear(16 * 8 * 8, 6),
            ),
            [1.5, 2.0, 2.5],
            24,
        ),
        # A read-out with a map, not one neuron per class: sinabs' output is the last layer's
        # spikes per neuron, (C, H, W) flattened, 4 x 8 x 8 here.
        "map_output": (
            (2, 32, 32),
            "speck2edevkit",
            lambda: nn.Sequential(
                nn.Conv2d(2, 8, 3, padding=1, bias=False), nn.ReLU(), nn.AvgPool2d(2),
                nn.Conv2d(8, 4, 3, stride=2, padding=1, bias=False),
            ),
            [1.5, 2.5],
            26,
        ),
        # Drawn by `tools/sinabs_random.py` (seed 4): a layer whose weight scale, computed as
        # torch computes `127 / max` (the reciprocal, then times 127), puts one weight at -42.5
        # exactly, where one division would have put it at -42.500004 and rounded it to -43.
        "reciprocal_scale": (
            (2, 128, 128),
            "speck2fmodule",
            lambda: nn.Sequential(
                nn.AvgPool2d(2),
                nn.Conv2d(2, 16, 3, padding=1, bias=False), nn.ReLU(), nn.AvgPool2d(2),
                nn.Conv2d(16, 48, 3, stride=2, padding=1, bias=False), nn.ReLU(), nn.AvgPool2d(2),
                nn.Conv2d(48, 16, 3, padding=1, bias=False), nn.ReLU(), nn.AvgPool2d(4),
                nn.Conv2d(16, 48, 2, padding=1, bias=False), nn.ReLU(),
                nn.Conv2d(48, 3, 3, padding=1, bias=False),
            ),
            [1.6146634887323645, 1.763627416720899, 2.0253631312245193, 1.4808945739295458, 2.070217075943133],
            142351224,
        ),
        # Drawn by `tools/sinabs_random.py --wide` (seed 10): strong biases charge the first
        # layer in sinabs' step of zeros, and its spikes reach a conv with batch norm, which that
        # step runs as torch's norm (with eps, fused multiply-adds), not folded. Exported with
        # the norm a node (`NO_FOLD`).
        "norm_zero_step": (
            (2, 128, 64),
            "speck2fmodule",
            lambda: nn.Sequential(
                sl.SumPool2d(4),
                nn.Conv2d(2, 32, 5, padding=1), nn.ReLU(),
                nn.Conv2d(32, 48, 2, stride=2, padding=1, bias=False), nn.BatchNorm2d(48), nn.ReLU(),
                nn.Conv2d(48, 4, 7, stride=2, bias=False), nn.ReLU(),
                nn.Conv2d(4, 24, 1, bias=False), nn.ReLU(),
                nn.Conv2d(24, 7, 1, bias=False),
            ),
            [2.6089762861194608, 2.374073953625063, 1.848399841952121, 2.1135533082072833, 2.0686737554578607],
            1030601830,
        ),
        # sinabs' `from_model` with a threshold of 2.5, a lower bound of -4 and the biases
        # divided by 1.7 (`FROM_MODEL`), strong biases, and a batch norm after a biased conv:
        # the conv's bias is divided before the norm folds in. Exported with the norm a node.
        "neuron_options": (
            (2, 64, 64),
            "speck2edevkit",
            lambda: nn.Sequential(
                nn.Conv2d(2, 16, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
                nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.AvgPool2d(2),
                nn.Conv2d(32, 16, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
                nn.Flatten(), nn.Linear(16 * 8 * 8, 10),
            ),
            [2.5, 2.5, 3.0, 6.0],
            27,
        ),
    }

class Residual(nn.Module):
    """A skip connection as sinabs' graph API takes it: the first layer's pooled spikes go to the
    second layer and, merged with the second layer's, to the third (two destinations, a layer
    fed by two). The third is fed through average poolings of different areas (4 and 1), so
    sinabs scales its weights by its default `rescale_method_1`."""

    def __init__(self):
        super().__init__()
        self.conv1, self.relu1, self.pool1 = nn.Conv2d(2, 8, 3, padding=1, bias=False), nn.ReLU(), nn.AvgPool2d(2)
        self.conv2, self.relu2 = nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()
        self.merge = sl.Merge()
        self.conv3, self.relu3, self.pool3 = nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.ReLU(), nn.AvgPool2d(2)
        self.flat, self.fc, self.relu4 = nn.Flatten(), nn.Linear(16 * 8 * 8, 10, bias=False), nn.ReLU()

    def forward(self, x):
        a = self.pool1(self.relu1(self.conv1(x)))
        b = self.relu2(self.conv2(a))
        c = self.pool3(self.relu3(self.conv3(self.merge(a, b))))
        return self.relu4(self.fc(self.flat(c)))


class Branches(nn.Module):
    """Two branches from one layer (a 3x3 and a 1x1 conv on its sum-pooled spikes) merged into a
    third: the first layer has two destinations, and the layers after it are numbered as
    sinabs' topological sort numbers them."""

    def __init__(self):
        super().__init__()
        self.conv1, self.relu1, self.pool1 = nn.Conv2d(2, 8, 3, padding=1, bias=False), nn.ReLU(), sl.SumPool2d(2)
        self.conv2a, self.relu2a = nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.ReLU()
        self.conv2b, self.relu2b = nn.Conv2d(8, 8, 1, bias=False), nn.ReLU()
        self.merge = sl.Merge()
        self.conv3, self.relu3, self.pool3 = nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.ReLU(), nn.AvgPool2d(2)
        self.flat, self.fc, self.relu4 = nn.Flatten(), nn.Linear(16 * 8 * 8, 8, bias=False), nn.ReLU()

    def forward(self, x):
        a = self.pool1(self.relu1(self.conv1(x)))
        b = self.merge(self.relu2a(self.conv2a(a)), self.relu2b(self.conv2b(a)))
        c = self.pool3(self.relu3(self.conv3(b)))
        return self.relu4(self.fc(self.flat(c)))


class PoolPerDestination(nn.Module):
    """A layer whose spikes are pooled differently on the way to each destination (2x2 to the
    next layer, 4x4 to the merge after it), as the chip's destinations each have a pooling."""

    def __init__(self):
        super().__init__()
        self.conv1, self.relu1 = nn.Conv2d(2, 8, 3, padding=1, bias=False), nn.ReLU()
        self.pool1a, self.pool1b = nn.AvgPool2d(2), sl.SumPool2d(4)
        self.conv2, self.relu2, self.pool2 = nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.ReLU(), sl.SumPool2d(2)
        self.merge = sl.Merge()
        self.conv3, self.relu3, self.pool3 = nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.ReLU(), nn.AvgPool2d(2)
        self.flat, self.fc, self.relu4 = nn.Flatten(), nn.Linear(16 * 4 * 4, 8, bias=False), nn.ReLU()

    def forward(self, x):
        a = self.relu1(self.conv1(x))
        b = self.pool2(self.relu2(self.conv2(self.pool1a(a))))
        c = self.pool3(self.relu3(self.conv3(self.merge(self.pool1b(a), b))))
        return self.relu4(self.fc(self.flat(c)))


class InputBranches(nn.Module):
    """The input sent to two layers (a 3x3 and a 1x1 conv), whose spikes merge into a third: the
    DVS layer has two destinations."""

    def __init__(self):
        super().__init__()
        self.conv1a, self.relu1a = nn.Conv2d(2, 8, 3, padding=1, bias=False), nn.ReLU()
        self.conv1b, self.relu1b = nn.Conv2d(2, 8, 1, bias=False), nn.ReLU()
        self.merge = sl.Merge()
        self.conv2, self.relu2, self.pool2 = nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.ReLU(), nn.AvgPool2d(2)
        self.flat, self.fc, self.relu3 = nn.Flatten(), nn.Linear(16 * 16 * 16, 8, bias=False), nn.ReLU()

    def forward(self, x):
        b = self.merge(self.relu1a(self.conv1a(x)), self.relu1b(self.conv1b(x)))
        return self.relu3(self.fc(self.flat(self.pool2(self.relu2(self.conv2(b))))))


class TwoOutputs(nn.Module):
    """A layer whose spikes go to a 1x1 conv that is an output of the network and to a 3x3 conv
    on the way to the last layer, the other output."""

    # sinabs' `from_model` fails on a tuple output when given an input shape (a forward hook
    # takes the output's shape): converted without one, which changes nothing without biases.
    tuple_output = True

    def __init__(self):
        super().__init__()
        self.conv1, self.relu1, self.pool1 = nn.Conv2d(2, 8, 3, padding=1, bias=False), nn.ReLU(), sl.SumPool2d(2)
        self.conv2a, self.relu2a = nn.Conv2d(8, 4, 1, bias=False), nn.ReLU()
        self.conv2b, self.relu2b, self.pool2b = nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.ReLU(), nn.AvgPool2d(2)
        self.flat, self.fc, self.relu3 = nn.Flatten(), nn.Linear(16 * 8 * 8, 8, bias=False), nn.ReLU()

    def forward(self, x):
        a = self.pool1(self.relu1(self.conv1(x)))
        side = self.relu2a(self.conv2a(a))
        return side, self.relu3(self.fc(self.flat(self.pool2b(self.relu2b(self.conv2b(a))))))


class MergeOfMerges(nn.Module):
    """Three layers merged into a fourth by two `Merge`s, one inside the other: the input sent
    to two layers (a 3x3 and a 1x1 conv), whose pooled spikes meet first; the first also feeds
    a third layer, whose spikes join them. (sinabs' graph API refuses a `Merge` of two shapes.)"""

    def __init__(self):
        super().__init__()
        self.conv1a, self.relu1a, self.pool1a = nn.Conv2d(2, 8, 3, padding=1, bias=False), nn.ReLU(), sl.SumPool2d(2)
        self.conv1b, self.relu1b, self.pool1b = nn.Conv2d(2, 8, 1, bias=False), nn.ReLU(), sl.SumPool2d(2)
        self.conv2, self.relu2 = nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.ReLU()
        self.merge1, self.merge2 = sl.Merge(), sl.Merge()
        self.conv3, self.relu3, self.pool3 = nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.ReLU(), nn.AvgPool2d(2)
        self.flat, self.fc, self.relu4 = nn.Flatten(), nn.Linear(16 * 8 * 8, 8, bias=False), nn.ReLU()

    def forward(self, x):
        a = self.pool1a(self.relu1a(self.conv1a(x)))
        b = self.pool1b(self.relu1b(self.conv1b(x)))
        c = self.relu2(self.conv2(a))
        m = self.merge2(self.merge1(a, b), c)
        return self.relu4(self.fc(self.flat(self.pool3(self.relu3(self.conv3(m))))))


class SumPoolsOfOneLayer(nn.Module):
    """One layer's spikes sum-pooled twice: 4x4 to the next layer, and 2x2 then averaged 2x2 to
    a merge with that layer's. torch's exporter writes one `Pow(x, 1)` for both sum poolings,
    so the second starts from a node of the first; the average pooling reads a sum pooling's
    last node. (Drawn by `tools/sinabs_random.py --random-graphs`, which dynapviz refused.)"""

    def __init__(self):
        super().__init__()
        self.conv1, self.relu1 = nn.Conv2d(2, 8, 3, padding=1, bias=False), nn.ReLU()
        self.pool1a, self.pool1b, self.pool1c = sl.SumPool2d(4), sl.SumPool2d(2), nn.AvgPool2d(2)
        self.conv2, self.relu2 = nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.ReLU()
        self.merge = sl.Merge()
        self.conv3, self.relu3, self.pool3 = nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.ReLU(), nn.AvgPool2d(2)
        self.flat, self.fc, self.relu4 = nn.Flatten(), nn.Linear(16 * 4 * 4, 8, bias=False), nn.ReLU()

    def forward(self, x):
        a = self.relu1(self.conv1(x))
        b = self.relu2(self.conv2(self.pool1a(a)))
        c = self.pool3(self.relu3(self.conv3(self.merge(self.pool1c(self.pool1b(a)), b))))
        return self.relu4(self.fc(self.flat(c)))


def graph_cases():
    """Networks with branches, as `cases()` (graphs end in ReLU: sinabs' graph API appends no
    spiking output to a module that is not a Sequential)."""
    return {
        "residual": ((2, 32, 32), "speck2edevkit", Residual, [1.0, 1.0, 1.5, 2.0], 19),
        # Drawn by `tools/sinabs_random.py --graphs --wide` (seed 12): strong biases, and neurons that
        # reset to zero; in sinabs' step of zeros the residual's merge averages the first layer's
        # spikes (its AvgPool) where the chip scales the weights by `rescale_method_1`.
        "residual_zero_step": ((2, 32, 32), "speck2edevkit", Residual, [1.5270160403453277, 1.4376883068943789, 1.9437610897202042, 1.8018391546887187], 910123658),
        "branches": ((2, 32, 32), "speck2edevkit", Branches, [0.6, 0.8, 1.0, 1.0, 1.5], 20),
        "pool_per_destination": ((2, 32, 32), "speck2edevkit", PoolPerDestination, [0.6, 1.0, 0.5, 1.5], 21),
        "input_branches": ((2, 32, 32), "speck2edevkit", InputBranches, [1.0, 1.0, 1.0, 1.5], 22),
        "two_outputs": ((2, 32, 32), "speck2edevkit", TwoOutputs, [1.0, 1.0, 1.0, 1.5], 23),
        "merge_of_merges": ((2, 32, 32), "speck2edevkit", MergeOfMerges, [1.0, 1.0, 1.0, 1.0, 1.5], 25),
        "sum_pools_of_one_layer": ((2, 32, 32), "speck2fdevkit", SumPoolsOfOneLayer, [1.2, 1.5, 1.5, 2.0], 26),
    }


# Biases per case other than the default small positive ones: (low, high) of a uniform draw.
BIAS_RANGE = {"strong_bias": (-1.5, 2.5), "late_start_non_square": (0.0, 0.2), "norm_zero_step": (-1.5, 2.5), "residual_zero_step": (-1.5, 2.5),
              "neuron_options": (-1.5, 2.5)}

# Cases exported without constant folding: torch's exporters fold a batch norm into the conv
# before it (with eps, where sinabs folds without); unfolded it stays a node.
NO_FOLD = {"norm_zero_step", "neuron_options"}

# Microseconds added to the recording's times, per case.
START_US = {"late_start_non_square": 3700}

# sinabs' `reset_fn` per case other than its default `MembraneSubtract`.
RESET_FN = {"reset_zero": MembraneReset(), "residual_zero_step": MembraneReset()}

# sinabs' `from_model` options per case other than its defaults (`spike_threshold`, `min_v_mem`,
# `bias_rescaling`; `expected.json` names them under "from_model", and `dynapviz` takes them as
# `--spike-threshold`, `--min-v-mem` and `--bias-rescaling`).
FROM_MODEL = {"neuron_options": {"spike_threshold": 2.5, "min_v_mem": -4.0, "bias_rescaling": 1.7}}


def gesture_ann():
    return nn.Sequential(
        nn.Conv2d(2, 16, 2, 2, bias=False), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1, bias=False), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(64, 64, 3, padding=1, bias=False), nn.ReLU(), nn.AvgPool2d(2),
        nn.Dropout2d(0.5), nn.Conv2d(64, 256, 2, bias=False), nn.ReLU(),
        nn.Dropout2d(0.5), nn.Flatten(), nn.Linear(256, 128, bias=False), nn.ReLU(),
        nn.Linear(128, 11, bias=False),
    )


def randomize(ann, gains, seed, bias_range=(0.0, 0.05)):
    """Seeded weights: He-scaled normal times the layer's gain; biases drawn from `bias_range`
    (small and positive by default: a bias charges every neuron each bin); batch norm with some
    spread."""
    g = torch.Generator().manual_seed(seed)
    weighted = [m for m in ann.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(weighted) == len(gains), (len(weighted), len(gains))
    with torch.no_grad():
        for m, gain in zip(weighted, gains):
            fan_in = m.weight[0].numel()
            m.weight.copy_(torch.randn(m.weight.shape, generator=g) * gain * math.sqrt(2.0 / fan_in))
            if m.bias is not None:
                low, high = bias_range
                m.bias.copy_(low + torch.rand(m.bias.shape, generator=g) * (high - low))
        for m in ann.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                n = m.num_features
                m.weight.copy_(0.5 + torch.rand(n, generator=g))
                m.bias.copy_((torch.rand(n, generator=g) - 0.5) * 0.1)
                m.running_mean.copy_((torch.rand(n, generator=g) - 0.5) * 0.2)
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))
    return ann.eval()


def read_csv(path):
    return np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.int64).reshape(-1, 4)


def synthetic_bar(size=128, ms=40, seed=0):
    """A bar sweeping the sensor, ON events at its leading edge and OFF at its trailing one."""
    rng = np.random.default_rng(seed)
    rows = []
    for t in range(0, ms * 1000, 50):
        pos = int(t / (ms * 1000) * size)
        for _ in range(6):
            y = int(rng.integers(0, size))
            for x, p in ((pos, 1), (pos - 3, 0)):
                if 0 <= x < size:
                    rows.append((t + int(rng.integers(0, 50)), x, y, p))
    rows.sort()
    return np.array(rows, dtype=np.int64)


def resample(ev, shape, sensor=128):
    """The recording's events mapped onto a `shape[1] x shape[2]` input (x and y scaled down)."""
    _, h, w = shape
    out = ev.copy()
    out[:, 1] = ev[:, 1] * w // sensor
    out[:, 2] = ev[:, 2] * h // sensor
    return out


def frames(ev, shape):
    """sinabs' input: events summed into 1 ms bins, (bins, C, H, W); one channel merges polarities."""
    c, h, w = shape
    bins = int(ev[-1, 0] // BIN_US) + 1
    x = torch.zeros((bins, c, h, w))
    pol = ev[:, 3] if c == 2 else np.zeros(len(ev), dtype=np.int64)
    np.add.at(x.numpy(), (ev[:, 0] // BIN_US, pol, ev[:, 2], ev[:, 1]), 1.0)
    return x


def expected(name, ann, shape, device, ev):
    """What sinabs makes of the ANN and the input, in the layout of `expected.json`."""
    known_shape = None if getattr(ann, "tuple_output", False) else shape
    reset_fn = RESET_FN.get(name, MembraneSubtract())
    options = FROM_MODEL.get(name, {})
    snn = from_model(ann, input_shape=known_shape, add_spiking_output=True, batch_size=1, reset_fn=reset_fn, **options).spiking_model
    return {**expected_of_snn(name, snn, shape, device, ev), "reset_fn": type(reset_fn).__name__, **({"from_model": options} if options else {})}


class MergeAll(nn.Module):
    """sinabs' `Merge` of any number of inputs, pairwise from the first."""

    def forward(self, *inputs):
        out = inputs[0]
        for x in inputs[1:]:
            out = sl.Merge()(out, x)
        return out


def expected_of_snn(name, snn, shape, device, ev):
    """What sinabs' DynapcnnNetwork makes of a spiking network and the input (see `expected`)."""
    import sinabs

    net = DynapcnnNetwork(snn, input_shape=shape, dvs_input=True, discretize=True)
    # sinabs 3.1.3 converts a layer fed by three layers but its forward then fails: it hands
    # all three to one two-input `Merge`. Summed pairwise, as the nested `Merge`s of the model
    # do; a layer fed by two runs sinabs' own `Merge` as before.
    net._dynapcnn_module.merge_layer = MergeAll()
    cores = ChipFactory(device).get_config_builder().map_layers_to_cores(net.dynapcnn_layers)
    counts = {}

    def hook(index):
        def count(_module, _inputs, out):
            out = out[0] if isinstance(out, tuple) else out
            # Summed in float64: a float32 sum of more than 2^24 spikes rounds (a layer of a
            # random network fired 20 866 171, which float32 summed to 20 866 172).
            counts[index] = counts.get(index, 0) + int(out.sum(dtype=torch.float64))

        return count

    layers = {i: l for i, l in net.dynapcnn_layers.items() if not isinstance(l, DVSLayer)}
    for i, layer in layers.items():
        layer.register_forward_hook(hook(i))
    # The largest weighted sum a layer got, or part of one: beyond 2^24, float32 rounds integers,
    # and sinabs' simulation is no longer exact (dynapviz's binned mode stays exact). A sum
    # adds its terms in whatever order torch's convolution takes them, so its positive terms
    # alone (or its negative ones) bound what a partial sum may reach: measured in float64.
    largest = [0.0]

    def partial_sums(conv, inputs, out):
        x = inputs[0].double()
        w = conv.weight.double()
        parts = [nn.functional.conv2d(x, part, None, conv.stride, conv.padding) for part in (w.clamp(min=0), (-w).clamp(min=0))]
        largest[0] = max([largest[0], float(out.abs().max())] + [float(p.max()) for p in parts])

    for layer in layers.values():
        layer.conv_layer.register_forward_hook(partial_sums)
    with torch.no_grad():
        out = net(frames(ev, shape))
    if isinstance(out, dict):
        # Several outputs, by layer and destination: the classes are the read-out's, the layer
        # of the network's last weights (the model's last output, which sinabs may number
        # before a side output: its numbers follow its own sort of the graph).
        readout = [m for m in snn.modules() if isinstance(m, (nn.Conv2d, nn.Linear))][-1]
        last = layers_by_weight(net, readout)
        last = last if last in out else max(out)
        (out,) = out[last].values()
    per_bin = out.reshape(out.shape[0], -1).round().long().tolist()
    report = []
    for number, (i, layer) in enumerate(sorted(layers.items()), start=1):
        conv, spk = layer.conv_layer, layer.spk_layer
        w = conv.weight.detach().round().to(torch.int8).contiguous()
        report.append(
            {
                "index": number,
                "core": cores[i],
                "in_channels": conv.in_channels,
                "out_channels": conv.out_channels,
                "kernel": list(conv.kernel_size),
                "stride": list(conv.stride),
                "padding": list(conv.padding),
                "pool": list(layer.pool[0]) if isinstance(layer.pool[0], (tuple, list)) else [layer.pool[0]] * 2,
                "threshold": int(spk.spike_threshold),
                "min_v_mem": int(spk.min_v_mem),
                # As sinabs' config builder sets the chip's flag.
                "return_to_zero": isinstance(spk.reset_fn, MembraneReset),
                "weight_min": int(w.min()),
                "weight_max": int(w.max()),
                "weight_abs_sum": int(w.long().abs().sum()),
                "weight_sha256_i8_oihw": hashlib.sha256(w.numpy().tobytes()).hexdigest(),
                "spikes_after_pool": counts.get(i, 0),
            }
        )
    dvs = net.dvs_layer if hasattr(net, "dvs_layer") else next(l for l in net.dynapcnn_layers.values() if isinstance(l, DVSLayer))
    return {
        "case": name,
        "input_shape": list(shape),
        "bins": len(per_bin),
        "bin_us": BIN_US,
        "input_events": len(ev),
        "device": device,
        "simulator": SIMULATOR.format(sinabs.__version__, "zero" if any(l["return_to_zero"] for l in report) else "subtract"),
        "class_counts": [int(v) for v in np.array(per_bin).sum(axis=0)],
        "class_counts_per_bin": per_bin,
        "layers": report,
        "dvs": {"merge_polarities": bool(dvs.merge_polarities), "pooling": list(dvs.pool_layer.kernel_size)},
        "largest_input": int(largest[0]),
    }


def layers_by_weight(net, module):
    """The index of the DynapcnnLayer made of `module` (a Conv2d or a Linear of the spiking
    network), found by its weights, which sinabs keeps up to their discretization: the closest."""
    w = module.weight.detach().flatten()
    best, index = None, None
    for i, layer in net.dynapcnn_layers.items():
        if isinstance(layer, DVSLayer):
            continue
        v = layer.conv_layer.weight.detach().flatten()
        if v.numel() == w.numel():
            # Discretized: a positive multiple of the float weights, rounded.
            score = float(torch.nn.functional.cosine_similarity(v, w, dim=0))
            if best is None or score > best:
                best, index = score, i
    return index


def write_case(out, name, ann, shape, device, ev):
    out.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(ann, torch.zeros(1, *shape), str(out / "model.onnx"), dynamo=False, input_names=["input"], do_constant_folding=name not in NO_FOLD)
    # The same network as torch's default exporter (dynamo, since torch 2.9) writes it: other
    # operators, weights in `model.dynamo.onnx.data`. That exporter folds batch norm into the
    # weights itself, with torch's eps, where sinabs folds without: a weight on a rounding
    # boundary would differ from sinabs', so networks with batch norm get the first export only.
    if not any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in ann.modules()):
        torch.onnx.export(ann, (torch.zeros(1, *shape),), str(out / "model.dynamo.onnx"), dynamo=True, input_names=["input"])
    with open(out / "input.csv", "w") as f:
        f.write("t_us,x,y,p\n")
        f.writelines(f"{t},{x},{y},{p}\n" for t, x, y, p in ev.tolist())
    (out / "arch.txt").write_text(f"input_shape={tuple(shape)}\n{ann}\n")
    exp = expected(name, ann, shape, device, ev)
    (out / "expected.json").write_text(json.dumps(exp) + "\n")
    spikes = [l["spikes_after_pool"] for l in exp["layers"]]
    classes = exp["class_counts"] if len(exp["class_counts"]) <= 20 else f"{sum(exp['class_counts'])} spikes of {len(exp['class_counts'])} outputs"
    print(f"{name}: {len(ev)} events, {exp['bins']} bins, spikes per layer {spikes}, classes {classes}")
    return exp


def write_snn_state(case, ann, shape):
    """The case's spiking network as sinabs' `from_model` makes it, saved as a state_dict
    (`snn.pt`, IAF thresholds and all) with an architecture file naming its modules
    (`snn.toml`): what a user who saved the spiking network has. Chains without batch norm."""
    options = FROM_MODEL.get(case.name, {})
    snn = from_model(ann, input_shape=shape, add_spiking_output=True, batch_size=1, reset_fn=RESET_FN.get(case.name, MembraneSubtract()), **options).spiking_model
    lines = [f"input_shape = {list(shape)}"]
    for name, m in snn.named_children():
        spec = {"index": int(name) if name.isdigit() else name}
        if isinstance(m, nn.Conv2d):
            spec.update(type="Conv2d", in_channels=m.in_channels, out_channels=m.out_channels, kernel_size=list(m.kernel_size),
                        stride=list(m.stride), padding=list(m.padding), bias=m.bias is not None)
        elif isinstance(m, nn.Linear):
            spec.update(type="Linear", in_features=m.in_features, out_features=m.out_features, bias=m.bias is not None)
        elif isinstance(m, (sl.IAF, sl.IAFSqueeze)):
            spec.update(type="IAF")
            if isinstance(m.reset_fn, MembraneReset):
                spec.update(reset="zero")
        elif isinstance(m, (nn.AvgPool2d, sl.SumPool2d)):
            k = m.kernel_size if isinstance(m.kernel_size, (tuple, list)) else [m.kernel_size] * 2
            spec.update(type=type(m).__name__, kernel_size=list(k))
        elif isinstance(m, (nn.Flatten, nn.Dropout, nn.Dropout2d)):
            spec.update(type=type(m).__name__)
        else:
            return False
        lines.append("\n[[layers]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in spec.items()]
    torch.save(snn.state_dict(), case / "snn.pt")
    (case / "snn.toml").write_text("\n".join(lines) + "\n")
    return True


def known_fields(got, want):
    """The layers `got` with only the fields of the layers `want` has: a case written before
    this generator added a field (the shared one predates `return_to_zero`) lacks it."""
    if len(got) != len(want):
        return got
    return [{k: g[k] for k in w if k in g} for g, w in zip(got, want)]


def check_gesture(case, params):
    want = json.loads((case / "expected.json").read_text())
    ann = gesture_ann()
    ann.load_state_dict(torch.load(params, map_location="cpu"), strict=False)
    ann.eval()
    got = expected(want["case"], ann, tuple(want["input_shape"]), want["device"], read_csv(case / "input.csv"))
    got["layers"] = known_fields(got["layers"], want["layers"])
    diff = [k for k in want if k != "simulator" and got.get(k) != want[k]]
    if diff:
        for k in diff:
            print(f"{k}: got {json.dumps(got.get(k))[:400]}\n  want {json.dumps(want[k])[:400]}")
        sys.exit(f"the generator does not reproduce {case}")
    print(f"{case}: reproduced exactly")


def main():
    here = Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser()
    ap.add_argument("out", nargs="?", default=str(here / "tests/sinabs-cases"))
    ap.add_argument("--shared", default=str(here / "../shared"))
    ap.add_argument("--check", action="store_true", help="reproduce the shared gesture case first")
    ap.add_argument("--keep-every", type=int, default=6, help="use every Nth event of the recording")
    ap.add_argument("--only", action="append", metavar="CASE", help="make only this case (repeatable): regenerating the graph cases may renumber tied layers, as sinabs' set order varies between runs")
    ap.add_argument("--snn-state", action="store_true", help="only write each chain case's spiking network as a state_dict (snn.pt, snn.toml; made with the cases too)")
    args = ap.parse_args()
    shared = Path(args.shared) / "fixtures"
    golden_input = shared / "golden/gesture_r50/input.csv"
    if args.snn_state:
        for name, (shape, _device, build, gains, seed) in cases().items():
            case = Path(args.out) / name
            ann = randomize(build(), gains, seed, BIAS_RANGE.get(name, (0.0, 0.05)))
            if case.exists() and write_snn_state(case, ann, shape):
                print(f"{name}: snn.pt, snn.toml")
        return
    if args.check:
        check_gesture(shared / "golden/gesture_r50", shared / "sinabs-gesture/dvs_gesture_params.pt")
    source = read_csv(golden_input) if golden_input.exists() else synthetic_bar()
    torch.set_num_threads(1)
    for name, (shape, device, build, gains, seed) in {**cases(), **graph_cases()}.items():
        if args.only and name not in args.only:
            continue
        ann = randomize(build(), gains, seed, BIAS_RANGE.get(name, (0.0, 0.05)))
        # Every few events of the recording: a small fixture, still busy enough.
        ev = source[:: args.keep_every]
        ev = ev if shape[1:] == (128, 128) else resample(ev, shape)
        if name in START_US:
            ev = ev.copy()
            ev[:, 0] += START_US[name]
        write_case(Path(args.out) / name, name, ann, shape, device, ev)
        if name in cases():
            write_snn_state(Path(args.out) / name, ann, shape)


if __name__ == "__main__":
    main()
