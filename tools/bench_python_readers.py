#!/usr/bin/env python3
"""Times the Python event-file readers users have (faery, aedat, expelliarmus, evlib; numpy and
pandas for CSV) on the given
files: best of N full decodes, printed as `reader<TAB>file<TAB>events<TAB>M events/s`.
Run by tools/bench-readers, which compares them with dynapviz in the same run."""

import os
import sys
import time


def faery_count(path):
    import faery

    n = 0
    for chunk in faery.events_stream_from_file(path):
        n += len(chunk)
    return n


def aedat_count(path):
    import aedat

    n = 0
    for packet in aedat.Decoder(path):
        if "events" in packet:
            n += len(packet["events"])
    return n


def expelliarmus_count(path, encoding):
    from expelliarmus import Wizard

    return len(Wizard(encoding=encoding, fpath=path).read())


def evlib_count(path):
    import evlib

    return len(evlib.load_events(path).collect())


def numpy_csv_count(path):
    import numpy as np

    return len(np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.int64))


def pandas_csv_count(path):
    import pandas as pd

    return len(pd.read_csv(path))


def readers_for(path):
    ext = os.path.splitext(path)[1].lower()
    out = [("faery", faery_count)]
    if ext == ".csv":
        out += [("numpy", numpy_csv_count), ("pandas", pandas_csv_count)]
    if ext == ".aedat4":
        out.append(("aedat", aedat_count))
    if ext in (".raw", ".aedat4"):
        out.append(("evlib", evlib_count))
    if ext in (".raw", ".evt2"):
        out.append(("expelliarmus", lambda p: expelliarmus_count(p, "evt2")))
    if ext == ".evt3":
        out.append(("expelliarmus", lambda p: expelliarmus_count(p, "evt3")))
    if ext == ".dat":
        out.append(("expelliarmus", lambda p: expelliarmus_count(p, "dat")))
    return out


def main():
    budget = float(os.environ.get("BENCH_SECONDS", "0.7"))
    for path in sys.argv[1:]:
        name = os.path.basename(path)
        for reader, fn in readers_for(path):
            try:
                best, n, start, passes = float("inf"), 0, time.perf_counter(), 0
                while passes < 3 or time.perf_counter() - start < budget:
                    t = time.perf_counter()
                    n = fn(path)
                    best = min(best, time.perf_counter() - t)
                    passes += 1
                print(f"{reader}\t{name}\t{n}\t{n / best / 1e6:.2f}", flush=True)
            except Exception as e:  # a reader that cannot read a format is reported, not fatal
                print(f"{reader}\t{name}\t-\terror: {type(e).__name__}: {str(e)[:80]}", flush=True)


if __name__ == "__main__":
    main()
