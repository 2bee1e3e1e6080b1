#!/usr/bin/env python3
"""Holds `dynapviz replay` (the DV network output dynapviz serves) to a third-party reader:
iniVation's dv-processing connects with its `NetworkReader`, the client DV's network input is
built on, reads the whole stream, and must get the events dv-processing itself reads from the
recording file, in order, with the sensor size.

Usage: `target/sinabs-venv/bin/pip install dv-processing` once, build dynapviz
(`cargo build --release`), then
`target/sinabs-venv/bin/python tools/dv_network_check.py RECORDING.aedat4 [lz4|zstd|none] [tcp|unix]`
(e.g. `../shared/fixtures/events/dvxplorer_person.aedat4`). Prints what it compared; exits 1 on
any difference."""

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import dv_processing as dv

DYNAPVIZ = Path(__file__).resolve().parent.parent / "target" / "release" / "dynapviz"


def events_of(batches):
    out = []
    for batch in batches:
        out.extend((e.timestamp(), e.x(), e.y(), int(e.polarity())) for e in batch)
    return out


def from_file(recording):
    reader = dv.io.MonoCameraRecording(str(recording))
    batches = []
    while reader.isRunning():
        batch = reader.getNextEventBatch()
        if batch is not None:
            batches.append(batch)
    return reader.getEventResolution(), events_of(batches)


def main():
    recording = Path(sys.argv[1])
    compression = sys.argv[2] if len(sys.argv) > 2 else "lz4"
    transport = sys.argv[3] if len(sys.argv) > 3 else "tcp"
    with tempfile.TemporaryDirectory() as tmp:
        address = "tcp://127.0.0.1:0" if transport == "tcp" else f"unix://{tmp}/camera.sock"
        server = subprocess.Popen(
            [str(DYNAPVIZ), "replay", str(recording), "--serve", address, "--speed", "0", "--compression", compression],
            stdout=subprocess.PIPE,
            text=True,
        )
        line = server.stdout.readline()
        served = re.search(r"at ((tcp|unix)://\S+);", line)
        if served is None:
            sys.exit(f"dynapviz replay said: {line!r}")
        if transport == "tcp":
            host, port = served.group(1)[len("tcp://"):].rsplit(":", 1)
            reader = dv.io.NetworkReader(host, int(port))
        else:
            reader = dv.io.NetworkReader(dv.Path(served.group(1)[len("unix://"):]))
        batches = []
        while reader.isRunning():
            batch = reader.getNextEventBatch()
            if batch is not None:
                batches.append(batch)
        resolution = reader.getEventResolution()
        server.wait(timeout=30)
    got = events_of(batches)
    want_resolution, want = from_file(recording)
    print(f"{transport}, {compression}: dv-processing's NetworkReader read {len(got)} events in {len(batches)} packets, "
          f"sensor {resolution}; from the file {len(want)} events, sensor {want_resolution}")
    if resolution != want_resolution or got != want:
        first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
        sys.exit(f"different: first at event {first}")
    print("the same events, in the same order")


if __name__ == "__main__":
    main()
