#!/usr/bin/env python3
"""Makes the DV network stream fixtures of `crates/dynapviz-events/tests/data/`: the bytes that
iniVation's dv-processing (its `NetworkWriter`, the server DV's "Output to network" module is
built on) sends a client, for the first events of a real recording as dv-processing itself
reads them, and those events as CSV (`dv-network.csv`). The tests serve the bytes from a socket and hold our
network reader to the CSV: a third-party writer and reader on both sides.

Usage: `target/sinabs-venv/bin/pip install dv-processing` once, then
`target/sinabs-venv/bin/python tools/dv_network_capture.py RECORDING.aedat4 OUT_DIR [COMPRESSION]`
(e.g. `../shared/fixtures/events/dvxplorer_person.aedat4`; COMPRESSION: NONE, LZ4 or ZSTD, as the
stream's header states it)."""

import socket
import sys
import threading
import time
from pathlib import Path

import dv_processing as dv

PACKETS = 3
EVENTS_PER_PACKET = 500


def main():
    recording, out = Path(sys.argv[1]), Path(sys.argv[2])
    compression = sys.argv[3] if len(sys.argv) > 3 else "NONE"
    reader = dv.io.MonoCameraRecording(str(recording))
    resolution = reader.getEventResolution()
    events = []
    while reader.isRunning() and len(events) < PACKETS * EVENTS_PER_PACKET:
        batch = reader.getNextEventBatch()
        if batch is None:
            continue
        events.extend((e.timestamp(), e.x(), e.y(), int(e.polarity())) for e in batch)
    events = events[: PACKETS * EVENTS_PER_PACKET]
    stream = dv.io.Stream.EventStream(0, "events", "DVXplorer_fixture", resolution)
    stream.setCompression(getattr(dv.CompressionType, compression))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    writer = dv.io.NetworkWriter("127.0.0.1", port, stream)
    captured = bytearray()
    client = socket.create_connection(("127.0.0.1", port))
    client.settimeout(1.0)

    def receive():
        while True:
            try:
                data = client.recv(1 << 16)
            except socket.timeout:
                return
            if not data:
                return
            captured.extend(data)

    receiver = threading.Thread(target=receive)
    receiver.start()
    while writer.getClientCount() == 0:
        time.sleep(0.01)
    for p in range(PACKETS):
        store = dv.EventStore()
        for t, x, y, on in events[p * EVENTS_PER_PACKET : (p + 1) * EVENTS_PER_PACKET]:
            store.push_back(t, x, y, bool(on))
        writer.writeEvents(store)
        time.sleep(0.05)
    receiver.join()
    client.close()
    name = f"dv-network-{compression.lower()}"
    (out / f"{name}.bin").write_bytes(bytes(captured))
    # The same events whatever the compression: one file.
    with open(out / "dv-network.csv", "w") as f:
        f.write("t_us,x,y,p\n")
        f.writelines(f"{t},{x},{y},{on}\n" for t, x, y, on in events)
    print(f"{name}: {len(captured)} bytes, {len(events)} events, {resolution[0]}x{resolution[1]}")


if __name__ == "__main__":
    main()
