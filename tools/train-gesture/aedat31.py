"""A reader of AEDAT 3.1 polarity events and DVS128 Gesture label files, in numpy only.

It reads what `dynapviz synth` writes and what IBM's DVS128 Gesture distributes, from the format's
description alone (28-byte packet headers, 8-byte polarity events), independently of dynapviz's
own reader.
"""

import csv
from pathlib import Path

import numpy as np

POLARITY_EVENT = 1


def read_events(path):
    """Returns (t, x, y, p) numpy arrays of the valid polarity events in `path`."""
    data = Path(path).read_bytes()
    end = data.find(b"#!END-HEADER")
    if not data.startswith(b"#!AER-DAT3") or end < 0:
        raise ValueError(f"{path}: not an AEDAT 3.1 file")
    pos = data.index(b"\n", end) + 1
    ts, words = [], []
    while pos + 28 <= len(data):
        etype, _src, size, tsoff, overflow, capacity, number, _valid = np.frombuffer(data, "<u2", 2, pos).tolist() + np.frombuffer(
            data, "<u4", 6, pos + 4
        ).tolist()
        pos += 28
        # The body is the packet's memory (capacity events); the first `number` are in use.
        body = capacity * size
        if pos + body > len(data):
            raise ValueError(f"{path}: packet at byte {pos - 28} is truncated")
        if number > capacity:
            raise ValueError(f"{path}: packet at byte {pos - 28} says {number} events in use of {capacity}")
        if etype == POLARITY_EVENT and size == 8:
            ev = np.frombuffer(data, "<u4", 2 * number, pos).reshape(-1, 2)
            words.append(ev[:, 0])
            ts.append((np.int64(overflow) << 31) | ev[:, 1].astype(np.int64))
        pos += body
    if not words:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty, empty
    w = np.concatenate(words)
    t = np.concatenate(ts)
    valid = (w & 1) == 1
    w, t = w[valid], t[valid]
    return t, ((w >> 17) & 0x1FFF).astype(np.int64), ((w >> 2) & 0x1FFF).astype(np.int64), ((w >> 1) & 1).astype(np.int64)


def read_labels(path):
    """Returns [(class, start_us, end_us)] from a `*_labels.csv`."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return [(int(r[0]), int(r[1]), int(r[2])) for r in rows[1:] if r]


def recordings(directory):
    """Every `NAME.aedat` in `directory` with a `NAME_labels.csv` beside it, sorted."""
    d = Path(directory)
    return sorted(p for p in d.glob("*.aedat") if (d / f"{p.stem}_labels.csv").exists())


def labels_for(recording):
    p = Path(recording)
    return p.with_name(f"{p.stem}_labels.csv")
