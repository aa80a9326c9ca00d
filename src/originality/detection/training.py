"""Train the element detector with Ultralytics YOLO on labels exported from shapes datasets.

The network is built from its yaml (no pretrained weights, nothing downloaded). Colour and
scale augmentations are off: hue, saturation and size are what the detector must read, so
changing them would teach it wrong labels. The EMA weights at the end of training are
saved as safetensors; the ``.pt`` files Ultralytics writes on the way are deleted.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from originality.detection.detector import ElementDetector, import_ultralytics
from originality.errors import OriginalityError
from originality.shapes.dataset import read_info, read_table
from originality.shapes.vocabulary import ALL_ELEMENTS, Element


def export_yolo(dataset: str | Path, out: Path, split: str) -> int:
    """Write a shapes dataset as YOLO images/ and labels/ (class cx cy w h, normalised)."""
    size = read_info(dataset)["size"]
    images, labels = out / "images" / split, out / "labels" / split
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    rows = read_table(dataset, columns=["index", "image", "elements"]).to_pylist()
    for r in rows:
        stem = f"{r['index']:07d}"
        (images / f"{stem}.png").write_bytes(r["image"]["bytes"])
        lines = []
        for e in r["elements"]:
            x0, y0, x1, y1 = e["bbox"]
            c = Element(e["shape"], e["colour"], e["size"], e["texture"]).index
            lines.append(
                f"{c} {(x0 + x1) / 2 / size:.6f} {(y0 + y1) / 2 / size:.6f} "
                f"{(x1 - x0) / size:.6f} {(y1 - y0) / size:.6f}"
            )
        (labels / f"{stem}.txt").write_text("\n".join(lines))
    return len(rows)


def train_detector(
    train_data: str | Path,
    val_data: str | Path,
    out: str | Path,
    *,
    epochs: int = 20,
    batch: int = 64,
    imgsz: int = 64,
    yaml: str = "yolov8n.yaml",
    lr0: float = 0.002,
    seed: int = 0,
    device: str = "cpu",
    workers: int = 2,
    verbose: bool = True,
) -> ElementDetector:
    """Train on ``train_data`` (validating on ``val_data``) and save the detector into ``out``."""
    import_ultralytics()
    from ultralytics import YOLO

    out = Path(out)
    work = Path(tempfile.mkdtemp(prefix="yolo-"))
    captured = {}
    try:
        export_yolo(train_data, work / "data", "train")
        export_yolo(val_data, work / "data", "val")
        names = "\n".join(f"  {i}: {e.phrase.replace(' ', '_')}" for i, e in enumerate(ALL_ELEMENTS))
        (work / "data.yaml").write_text(
            f"path: {work / 'data'}\ntrain: images/train\nval: images/val\nnames:\n{names}\n"
        )
        model = YOLO(yaml)

        def grab(trainer) -> None:  # the final EMA weights, in memory: no .pt file is read back
            captured["state"] = {k: v.detach().clone() for k, v in trainer.ema.ema.state_dict().items()}

        model.add_callback("on_train_epoch_end", grab)
        model.train(
            data=str(work / "data.yaml"),
            imgsz=imgsz,
            epochs=epochs,
            batch=batch,
            device=device,
            workers=workers,
            project=str(work / "runs"),
            name="detector",
            exist_ok=True,
            plots=False,
            amp=False,
            pretrained=False,
            optimizer="AdamW",
            lr0=lr0,
            cos_lr=True,
            seed=seed,
            deterministic=True,
            val=False,
            hsv_h=0.0,
            hsv_s=0.0,
            hsv_v=0.0,
            scale=0.0,
            mosaic=0.0,
            degrees=0.0,
            shear=0.0,
            perspective=0.0,
            translate=0.1,
            fliplr=0.5,
            flipud=0.0,
            verbose=verbose,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if "state" not in captured:
        raise OriginalityError("detector training ended without weights")
    network = ElementDetector.build(yaml)
    network.load_state_dict({k: v.float() for k, v in captured["state"].items()})
    detector = ElementDetector(network, imgsz=imgsz, yaml=yaml)
    detector.save(out, extra={"epochs": epochs, "batch": batch, "train_data": str(train_data), "seed": seed})
    return ElementDetector.load(out)
