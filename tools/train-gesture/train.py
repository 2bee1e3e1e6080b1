"""Trains the sinabs DVS-gesture network on synthetic gestures and exports it for dynapviz.

The data are recordings in the DVS128 Gesture layout written by `dynapviz synth` (AEDAT 3.1 and
`*_labels.csv`), read here with numpy alone (aedat31.py). The network is the architecture of the
sinabs visualizer example (`models/sinabs-gesture.toml`): bias-free convolutions, ReLU, average
pooling, two linear layers. It is trained as an ANN on event-count frames of short windows
(`--window`, 0.5x to 3x it): an integrate-and-fire neuron's membrane is bounded by its threshold
below and above, so the chip's spike counts follow the recent input rather than the whole
gesture, and only short windows show which way an arm turns (over a whole circle every pixel gets
as many ON as OFF events, whichever the direction). Because the network has no bias and only
ReLU/average pooling, scaling its input scales its output: a window of any length and the chip's
raw counts give the same argmax. A gesture's ANN score is the sum over its consecutive windows of
the rectified outputs on raw counts: what the chip's output layer counts as spikes.

After training, every layer's weights are rescaled (data-based normalisation, Diehl et al. 2015)
so that each layer's high-percentile activation on raw counts of one window equals the input's:
the spiking layers then fire at the input's rates, neither silent nor saturated. The rescaling is
a positive factor per layer, so the ANN's predictions do not change.

Outputs: `NAME.safetensors` and `NAME.pt` (state_dict, keys `0.weight` ... `24.weight`), `NAME.onnx`
when the onnx package is present, and `NAME.json` with the training record (seeds, epochs,
accuracies, normalisation factors).
"""

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

import aedat31

CLASSES = 11
SIZE = 128
# A horizontal mirror turns one class into another: right <-> left, clockwise <-> counter-clockwise.
MIRROR = [0, 2, 1, 6, 5, 4, 3, 7, 8, 9, 10]


def network(dropout=0.3):
    """The sinabs gesture network; module indices are the state_dict key prefixes.

    He initialisation: without biases or batch norm, PyTorch's default initialisation shrinks the
    signal at every one of the nine layers, and training then learns the easy classes but never
    the direction of an arm circle.
    """
    model = nn.Sequential(
        nn.Conv2d(2, 16, 2, 2, bias=False),  # 0
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1, bias=False),  # 2
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1, bias=False),  # 5
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1, bias=False),  # 8
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1, bias=False),  # 11
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Conv2d(64, 64, 3, padding=1, bias=False),  # 14
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Dropout2d(dropout),
        nn.Conv2d(64, 256, 2, bias=False),  # 18
        nn.ReLU(),
        nn.Dropout2d(dropout),
        nn.Flatten(),
        nn.Linear(256, 128, bias=False),  # 22
        nn.ReLU(),
        nn.Linear(128, CLASSES, bias=False),  # 24
    )
    for m in model:
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    return model


class Segment:
    """The events of one labelled gesture, as flat pixel indices (p * 128 * 128 + y * 128 + x)."""

    def __init__(self, t, index, label, start, end, source):
        self.t, self.index, self.label, self.start, self.end, self.source = t, index, label, start, end, source

    def frame(self, t0, t1):
        a, b = np.searchsorted(self.t, [t0, t1])
        return np.bincount(self.index[a:b], minlength=2 * SIZE * SIZE).reshape(2, SIZE, SIZE).astype(np.float32)


def load(directory):
    segments = []
    for rec in aedat31.recordings(directory):
        t, x, y, p = aedat31.read_events(rec)
        inside = (x < SIZE) & (y < SIZE)
        t, index = t[inside], (p * SIZE * SIZE + y * SIZE + x)[inside]
        order = np.argsort(t, kind="stable")
        t, index = t[order], index[order]
        for cls, start, end in aedat31.read_labels(aedat31.labels_for(rec)):
            if not 1 <= cls <= CLASSES:
                continue
            a, b = np.searchsorted(t, [start, end])
            segments.append(Segment(t[a:b], index[a:b], cls - 1, start, end, rec.name))
    if not segments:
        raise SystemExit(f"{directory}: no labelled recordings")
    return segments


def normalise(frames):
    """Scales each frame to a fixed total count: the network is homogeneous, so only shapes matter."""
    total = frames.sum(dim=(1, 2, 3), keepdim=True).clamp(min=1.0)
    return frames * (1000.0 / total)


def sample_windows(segments, per_segment, rng, min_s, max_s):
    frames, labels = [], []
    for s in segments:
        span = s.end - s.start
        for _ in range(per_segment):
            length = int(rng.uniform(min_s, max_s) * 1e6)
            length = min(length, span)
            t0 = s.start + int(rng.integers(0, span - length + 1))
            frames.append(s.frame(t0, t0 + length))
            labels.append(s.label)
    return torch.from_numpy(np.stack(frames)), torch.tensor(labels)


def augment(x, y, rng):
    """Random shifts of up to 8 pixels and horizontal mirrors (with the mirrored class)."""
    n = x.shape[0]
    out = torch.zeros_like(x)
    for i in range(n):
        dx, dy = (int(v) for v in rng.integers(-8, 9, size=2))
        src = x[i, :, max(0, -dy) : SIZE - max(0, dy), max(0, -dx) : SIZE - max(0, dx)]
        out[i, :, max(0, dy) : max(0, dy) + src.shape[1], max(0, dx) : max(0, dx) + src.shape[2]] = src
    flip = torch.from_numpy(rng.random(n) < 0.5)
    out[flip] = out[flip].flip(-1)
    y = y.clone()
    y[flip] = torch.tensor([MIRROR[int(c)] for c in y[flip]], dtype=y.dtype)
    return out, y


def window_frames(segment, window_s):
    """Raw event counts of the consecutive windows of a segment."""
    w = int(window_s * 1e6)
    starts = range(segment.start, segment.end - w // 2, w)
    return np.stack([segment.frame(t0, min(t0 + w, segment.end)) for t0 in starts])


def segment_scores(model, segments, window_s):
    """Every segment's class scores: the sum over its consecutive windows of the rectified
    outputs on raw counts, which is what the chip's output layer counts as spikes."""
    model.eval()
    scores = []
    with torch.no_grad():
        for s in segments:
            x = torch.from_numpy(window_frames(s, window_s))
            scores.append(model(x).clamp(min=0).sum(0).numpy())
    return np.stack(scores)


def accuracy(model, segments, window_s):
    pred = segment_scores(model, segments, window_s).argmax(1)
    return float(np.mean(pred == np.array([s.label for s in segments]))), pred


def normalise_for_chip(model, segments, rng, percentile, output_gain, window_s):
    """Rescales each weight layer so its activations on raw counts match the input's scale.

    One pass through the layers: a layer's weights are scaled by the factor that brings its
    activation percentile to the input's, and its output with them, so the next layer is measured
    on what it will really receive.
    """
    model.eval()
    x, _ = sample_windows(segments[:: max(1, len(segments) // 256)], 1, rng, window_s, window_s)
    level = lambda h: float(np.percentile(h[h > 0].numpy(), percentile))  # noqa: E731
    factors = []
    with torch.no_grad():
        ref = level(x)
        h, pending = x, None
        modules = list(model)
        for i, module in enumerate(modules):
            h = module(h)
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                pending = module
            last = i == len(modules) - 1
            if isinstance(module, nn.ReLU) or last:
                f = ref / level(h) * (output_gain if last else 1.0)
                pending.weight.mul_(f)
                h = h * f
                factors.append(f)
    return ref, factors


def export(model, out, record):
    out.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().float() for k, v in model.state_dict().items()}
    torch.save(state, out.with_suffix(".pt"))
    write_safetensors(state, out.with_suffix(".safetensors"))
    try:
        import onnx  # noqa: F401

        torch.onnx.export(
            model.eval(), torch.zeros(1, 2, SIZE, SIZE), str(out.with_suffix(".onnx")), dynamo=False, input_names=["input"]
        )
    except ImportError:
        print("onnx not installed: no .onnx export")
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")


def write_safetensors(state, path):
    """The safetensors layout (8-byte header length, JSON header, raw little-endian data)."""
    header, blobs, offset = {}, [], 0
    for k, v in state.items():
        data = v.numpy().astype("<f4").tobytes()
        header[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    path.write_bytes(len(h).to_bytes(8, "little") + h + b"".join(blobs))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", required=True, help="directory of training recordings")
    ap.add_argument("--test", required=True, help="directory of held-out recordings (other seeds)")
    ap.add_argument("--out", required=True, type=Path, help="output path without extension")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--windows", type=int, default=8, help="random windows per segment per epoch")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--window", type=float, default=0.1, help="seconds: the time scale of the training frames")
    ap.add_argument("--percentile", type=float, default=99.9)
    ap.add_argument("--output-gain", type=float, default=8.0, help="output layer rate relative to the input's")
    ap.add_argument("--note", default="", help="free text stored in the training record")
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    started = time.time()
    train, test = load(args.train), load(args.test)
    sources = sorted({s.source for s in train})
    held = set(sources[-max(1, len(sources) // 8) :])
    val = [s for s in train if s.source in held]
    fit = [s for s in train if s.source not in held]
    print(f"{len(fit)} training, {len(val)} validation, {len(test)} test gestures")

    model = network()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    steps = args.epochs * math.ceil(len(fit) * args.windows / 32)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)
    best, best_state = -1.0, None
    for epoch in range(args.epochs):
        model.train()
        x, y = sample_windows(fit, args.windows, rng, 0.5 * args.window, 3.0 * args.window)
        x, y = augment(x, y, rng)
        x = normalise(x)
        perm = torch.randperm(len(y))
        total = 0.0
        for i in range(0, len(y), 32):
            idx = perm[i : i + 32]
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        val_acc, _ = accuracy(model, val, args.window)
        print(f"epoch {epoch + 1:2d}: loss {total / len(y):.3f}, validation accuracy {val_acc:.3f} ({time.time() - started:.0f} s)")
        if val_acc >= best:
            best, best_state = val_acc, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    test_before, _ = accuracy(model, test, args.window)
    ref, factors = normalise_for_chip(model, fit, rng, args.percentile, args.output_gain, args.window)
    test_acc, pred = accuracy(model, test, args.window)
    if test_acc != test_before:
        print(f"warning: normalisation changed the test accuracy from {test_before:.4f} to {test_acc:.4f} (rounding)")
    confusion = np.zeros((CLASSES, CLASSES), int)
    for s, p in zip(test, pred):
        confusion[s.label, p] += 1
    print(f"float ANN: validation {best:.3f}, held-out test {test_acc:.3f}")
    record = {
        "architecture": "models/sinabs-gesture.toml",
        "train": str(args.train),
        "test": str(args.test),
        "epochs": args.epochs,
        "seed": args.seed,
        "training_gestures": len(fit),
        "validation_accuracy": best,
        "ann_test_accuracy": test_acc,
        "ann_test_confusion": confusion.tolist(),
        "input_reference_count": ref,
        "layer_scale_factors": factors,
        "window_s": args.window,
        "percentile": args.percentile,
        "output_gain": args.output_gain,
        "seconds": round(time.time() - started),
        "note": args.note,
    }
    export(model, args.out, record)
    print(f"wrote {args.out}.{{safetensors,pt,json}}")


if __name__ == "__main__":
    main()
