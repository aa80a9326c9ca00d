"""Evaluate the detector against rendered ground truth: element-level precision and recall,
per-attribute accuracy and confusion matrices (matched by IoU >= 0.5, greedy by confidence)."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from originality.detection.detector import Detection, ElementDetector, matches_caption
from originality.models.pipeline import generate
from originality.report.plots import confusion_matrices
from originality.runs import write_json
from originality.shapes.captions import parse_caption
from originality.shapes.dataset import read_table
from originality.shapes.vocabulary import ATTRIBUTES, Element

IOU = 0.5


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match(detections: list[Detection], truth: list[tuple[Element, tuple[float, ...]]]) -> list[tuple[int, int]]:
    """Pairs (detection index, truth index), each used once, highest confidence first."""
    pairs, used = [], set()
    for d in sorted(range(len(detections)), key=lambda i: -detections[i].confidence):
        best, best_iou = None, IOU
        for t, (_, box) in enumerate(truth):
            if t not in used and (value := iou(detections[d].box, box)) >= best_iou:
                best, best_iou = t, value
        if best is not None:
            used.add(best)
            pairs.append((d, best))
    return pairs


def evaluate(detector: ElementDetector, dataset: str | Path, *, threshold: float | None = None) -> dict[str, Any]:
    rows = read_table(dataset, columns=["image", "elements"]).to_pylist()
    images = [Image.open(io.BytesIO(r["image"]["bytes"])) for r in rows]
    found = detector.detect(images, threshold=threshold)
    tp = n_det = n_true = 0
    confusion = {a: np.zeros((len(v), len(v)), dtype=int) for a, v in ATTRIBUTES.items()}
    exact_images = 0
    for r, dets in zip(rows, found, strict=True):
        truth = [(Element(e["shape"], e["colour"], e["size"], e["texture"]), tuple(e["bbox"])) for e in r["elements"]]
        pairs = match(dets, truth)
        n_det, n_true = n_det + len(dets), n_true + len(truth)
        correct = 0
        for d, t in pairs:
            got, want = dets[d].element, truth[t][0]
            correct += got == want
            for a, values in ATTRIBUTES.items():
                confusion[a][values.index(getattr(want, a)), values.index(getattr(got, a))] += 1
        tp += correct
        exact_images += correct == len(truth) == len(dets)
    return {
        "images": len(rows),
        "threshold": detector.threshold if threshold is None else threshold,
        "elements": n_true,
        "detections": n_det,
        "precision": tp / n_det if n_det else 1.0,
        "recall": tp / n_true if n_true else 1.0,
        "exact_images": exact_images / len(rows),
        "attribute_accuracy": {a: float(np.trace(m) / m.sum()) if m.sum() else None for a, m in confusion.items()},
        "confusion": {a: {"labels": list(ATTRIBUTES[a]), "matrix": m.tolist()} for a, m in confusion.items()},
    }


def write_evaluation(report: dict[str, Any], out: str | Path) -> tuple[Path, Path]:
    """``evaluation.json`` and ``evaluation.png`` (one confusion matrix per attribute) in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "evaluation.json", report)
    title = (
        f"precision {report['precision']:.4f}, recall {report['recall']:.4f} at confidence "
        f"{report['threshold']} on {report['images']} images"
    )
    png = confusion_matrices(report["confusion"], out / "evaluation.png", title=title)
    return out / "evaluation.json", png


def evaluate_generated(
    detector: ElementDetector,
    pipeline,
    captions: list[str],
    *,
    seed: int = 0,
    steps: int = 50,
    guidance_scale: float = 3.0,
) -> dict[str, Any]:
    """Generate one image per caption and check whether the detections match the caption.

    Returns the match rate, split into "shapes right" (the multiset of shapes) and "exact"
    (every attribute), and the misses with what was detected, for a look at what fails.
    """
    images = generate(
        pipeline, captions, [seed + i for i in range(len(captions))], steps=steps, guidance_scale=guidance_scale
    )
    found = detector.detect(images)
    exact = shapes = 0
    misses = []
    for i, (cap, dets) in enumerate(zip(captions, found, strict=True)):
        want = parse_caption(cap)
        ok = matches_caption(dets, want)
        shapes_ok = Counter(e.shape for e in want) == Counter(d.element.shape for d in dets)
        exact += ok
        shapes += shapes_ok
        if not ok:
            misses.append({"index": i, "caption": cap, "detected": [f"{d.element} ({d.confidence:.2f})" for d in dets]})
    return {
        "samples": len(captions),
        "exact": exact / len(captions),
        "shapes": shapes / len(captions),
        "misses": misses,
        "images": images,
    }
