#!/usr/bin/env python3
"""sinabs' own CPU simulation of the discretized gesture network, timed on the same input as
`cargo bench -p dynapviz-chip --bench throughput` (the golden DVS input, repeated). samna is not
needed for the CPU forward: an import stub stands in for it. Times each input twice: on one torch
thread, and on THREADS (the third argument; torch's default is one per core, what a user gets). Prints one
line per input rate: `rate_k<TAB>events<TAB>input events/s on one thread<TAB>threads<TAB>input
events/s on them<TAB>output spikes`. Run by tools/bench-sinabs."""

import sys
import time

import samna_stub  # noqa: F401  (before sinabs)
from sinabs_golden import gesture_ann  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sinabs.from_torch import from_model  # noqa: E402
from sinabs.backend.dynapcnn import DynapcnnNetwork  # noqa: E402


def main():
    params, csv = sys.argv[1], sys.argv[2]
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else torch.get_num_threads()
    ann = gesture_ann()
    ann.load_state_dict(torch.load(params, map_location="cpu"), strict=False)
    ann.eval()
    ev = np.loadtxt(csv, delimiter=",", skiprows=1, dtype=np.int64)
    span = int(ev[-1, 0] - ev[0, 0] + 1)
    for keep in (1, 3, 8, 24):
        parts = []
        for rep in range(keep * 4):
            sub = ev[::keep].copy()
            sub[:, 0] += rep * span
            parts.append(sub)
        x = np.concatenate(parts)
        bins = int(x[-1, 0] // 1000) + 1
        frames = torch.zeros((bins, 2, 128, 128))
        np.add.at(frames.numpy(), (x[:, 0] // 1000, x[:, 3], x[:, 2], x[:, 1]), 1.0)
        rates, spikes = [], set()
        for n in (1, threads):
            torch.set_num_threads(n)
            # A fresh network per run: sinabs' state reset fails on views in this torch version.
            snn = from_model(ann, input_shape=(2, 128, 128), add_spiking_output=True, batch_size=1).spiking_model
            net = DynapcnnNetwork(snn, input_shape=(2, 128, 128), dvs_input=True, discretize=True)
            t = time.perf_counter()
            with torch.no_grad():
                out = net(frames)
            rates.append(len(x) / (time.perf_counter() - t))
            spikes.add(int(out.sum()))
        if len(spikes) != 1:
            sys.exit(f"sinabs gave {sorted(spikes)} output spikes on 1 and {threads} threads")
        rate = len(x) / (x[-1, 0] - x[0, 0]) * 1e6
        print(f"{rate / 1e3:.0f}\t{len(x)}\t{rates[0]:.0f}\t{threads}\t{rates[1]:.0f}\t{spikes.pop()}", flush=True)


if __name__ == "__main__":
    main()
