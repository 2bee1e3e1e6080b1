#!/usr/bin/env python3
"""dynapviz's event-file readers and writers against two independent implementations users
have, faery, expelliarmus and evlib, on the real recordings of `../shared/fixtures/events`: each
recording, its times shifted to start at 0, is written by one side and read by the other, both
ways, in every format both sides have; the events must be the same, one by one.

Run by `tools/cross-check-formats` (which makes the venv). Prints one line per file, format and
direction, and exits non-zero when a pair that should agree does not. Known disagreements are
printed as such, with the reason, and do not fail the run:
- expelliarmus 1.1.12 writes EVT 3.0 with one TIME_HIGH word for the whole file, and reads a
  TIME_LOW smaller than the one before as a wrap of it (adding 4096 µs) even after a TIME_HIGH
  word moved the time on. Prophesee's format (and faery) take the time as TIME_HIGH << 12 |
  TIME_LOW, as dynapviz does: such a file reads 4096 µs apart from the first wrap on.
- faery 0.7 has no EVT 2.1 (its encoder and decoder say "not yet implemented"), nor does
  expelliarmus: dynapviz's EVT 2.1 meets evlib's reader (evlib writes only HDF5 and text, so
  that direction is one way).
- evlib also reads each recording itself, beside dynapviz: a third decoding of the originals.
  evlib 0.13 has no reader for Prophesee's DAT (it takes the file for text), so N-CARS' is left
  out there.
"""

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

EXPELLIARMUS_EVT3 = "expelliarmus' EVT 3.0 infers TIME_LOW wraps (see the docstring)"


def dynapviz_csv(binary, path, out, rebase=False):
    """The events of `path` as dynapviz reads them, (t, x, y, p) rows."""
    args = [binary, "convert", str(path), str(out), "--to", "csv"] + (["--rebase-time"] if rebase else [])
    run = subprocess.run(args, capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(run.stderr.strip()[:300])
    return np.loadtxt(out, delimiter=",", skiprows=1, dtype=np.int64).reshape(-1, 4)


def rows(t, x, y, p):
    return np.stack([t, x, y, p], 1).astype(np.int64)


def faery_read(path, kind):
    import faery

    chunks = list(faery.events_stream_from_file(path, file_type=kind))
    a = np.concatenate(chunks) if chunks else np.zeros(0, dtype=[("t", "<u8"), ("x", "<u2"), ("y", "<u2"), ("on", "?")])
    return rows(a["t"], a["x"], a["y"], a["on"])


def faery_write(source, path, kind, version):
    import faery

    faery.events_stream_from_file(source).to_file(path, version=version, file_type=kind, zero_t0=True)


def expelliarmus_read(path, encoding):
    from expelliarmus import Wizard

    a = Wizard(encoding=encoding, fpath=str(path)).read()
    return rows(a["t"], a["x"], a["y"], a["p"])


def evlib_read(path, _kind=None):
    import evlib

    df = evlib.load_events(str(path)).collect()
    t = df["t"].dt.total_microseconds().to_numpy()
    # evlib gives polarity as -1 / 1.
    return rows(t, df["x"].to_numpy(), df["y"].to_numpy(), df["polarity"].to_numpy() > 0)


def expelliarmus_write(events, path, encoding):
    from expelliarmus import Wizard

    arr = np.zeros(len(events), dtype=[("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "u1")])
    arr["t"], arr["x"], arr["y"], arr["p"] = events.T
    Wizard(encoding=encoding).save(str(path), arr)


def verdict(want, got, known=None):
    """'same', or where the first difference is; `known` marks a disagreement explained above."""
    if got.shape == want.shape and (got == want).all():
        return "same", True
    if got.shape != want.shape:
        what = f"{len(got)} events against {len(want)}"
    else:
        bad = (got != want).any(1)
        i = int(np.argmax(bad))
        what = f"{int(bad.sum())} events differ, the first #{i}: {got[i].tolist()} against {want[i].tolist()}"
    return (f"known: {known} ({what})", True) if known else (f"DIFFERS: {what}", False)


def main():
    here = Path(__file__).resolve().parent.parent
    shared = Path(sys.argv[1]) if len(sys.argv) > 1 else here / "../shared/fixtures/events"
    binary = str(here / "target/release/dynapviz")
    recordings = sorted(p for p in shared.iterdir() if p.suffix in (".raw", ".aedat4", ".dat") and "nmnist" not in p.name)
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for src in recordings:
            want = dynapviz_csv(binary, src, tmp / "want.csv", rebase=True)
            checks = []
            # The recording itself, read by both (times as recorded, not rebased).
            originals = []
            if src.suffix != ".dat":
                originals.append(("the original, evlib reads as dynapviz", lambda src=src: evlib_read(src), None))
            # dynapviz writes, they read.
            for fmt, who, kind in [("evt2", "faery", "evt"), ("evt3", "faery", "evt"), ("aedat4", "faery", "aedat"), ("es", "faery", "es"),
                                   ("evt2", "expelliarmus", "evt2"), ("evt3", "expelliarmus", "evt3"),
                                   ("evt2", "evlib", None), ("evt21", "evlib", None), ("evt3", "evlib", None), ("aedat4", "evlib", None)]:
                out = tmp / f"dv.{fmt}.{'raw' if fmt.startswith('evt') else fmt}"
                subprocess.run([binary, "convert", str(src), str(out), "--to", fmt, "--rebase-time"], check=True, capture_output=True)
                read = {"faery": faery_read, "expelliarmus": expelliarmus_read, "evlib": evlib_read}[who]
                known = EXPELLIARMUS_EVT3 if (who, fmt) == ("expelliarmus", "evt3") else None
                checks.append((f"dynapviz writes {fmt}, {who} reads", lambda out=out, read=read, kind=kind: read(out, kind), known))
            # They write, dynapviz reads (faery cannot read N-CARS' DAT, of type "2d"; its AEDAT 4
            # keeps the recording's own times whatever `zero_t0` says, so it is left out).
            if src.suffix != ".dat":
                for kind, version, ext in [("evt", "evt2", "raw"), ("evt", "evt3", "raw"), ("es", None, "es"), ("dat", "dat2", "dat")]:
                    out = tmp / f"faery.{version or kind}.{ext}"
                    checks.append((f"faery writes {version or kind}, dynapviz reads",
                                   lambda out=out, kind=kind, version=version: (faery_write(src, out, kind, version),
                                                                               dynapviz_csv(binary, out, tmp / "got.csv"))[1], None))
            for encoding, ext in [("evt2", "raw"), ("evt3", "raw"), ("dat", "dat")]:
                out = tmp / f"expelliarmus.{encoding}.{ext}"
                known = EXPELLIARMUS_EVT3 if encoding == "evt3" else None
                checks.append((f"expelliarmus writes {encoding}, dynapviz reads",
                               lambda out=out, encoding=encoding: (expelliarmus_write(want, out, encoding),
                                                                   dynapviz_csv(binary, out, tmp / "got.csv"))[1], known))
            as_recorded = dynapviz_csv(binary, src, tmp / "orig.csv")
            for name, read, known, expected in [c + (as_recorded,) for c in originals] + [c + (want,) for c in checks]:
                try:
                    line, good = verdict(expected, read(), known)
                except Exception as e:  # noqa: BLE001  (a tool that fails is reported, not fatal)
                    line, good = f"DIFFERS: failed: {type(e).__name__}: {str(e)[:200]}", False
                ok &= good
                print(f"{src.name}: {name}: {line}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
