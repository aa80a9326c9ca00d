"""Train the element detector with Ultralytics YOLO on labels exported from shapes datasets.

The network is built from its yaml (no pretrained weights, nothing downloaded). Colour and
scale augmentations are off: hue, saturation and size are what the detector must read, so
changing them would teach it wrong labels. Blur is on by option (``blur``): generated images
are softer than rendered ones, and a detector that saw only crisp edges is less sure of them.
Training can start from a saved detector (``init``) to train it longer. The EMA weights at the
end of training are saved as safetensors; the ``.pt`` files Ultralytics writes on the way are
deleted.
"""

from __future__ import annotations

import io
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from originality.detection.detector import ElementDetector, import_ultralytics, read_saved
from originality.errors import OriginalityError
from originality.shapes.dataset import read_info, read_table
from originality.shapes.vocabulary import ALL_ELEMENTS, Element


def export_yolo(dataset: str | Path, out: Path, split: str, *, blur: float = 0.0, seed: int = 0) -> int:
    """Write a shapes dataset as YOLO images/ and labels/ (class cx cy w h, normalised).

    ``blur``: the share of images written with a Gaussian blur of radius 0.3-1.2 px (boxes
    unchanged), drawn from ``seed``.
    """
    size = read_info(dataset)["size"]
    rng = np.random.default_rng(seed)
    images, labels = out / "images" / split, out / "labels" / split
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    rows = read_table(dataset, columns=["index", "image", "elements"]).to_pylist()
    for r in rows:
        stem = f"{r['index']:07d}"
        if blur and rng.random() < blur:
            image = Image.open(io.BytesIO(r["image"]["bytes"])).convert("RGB")
            image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2))).save(images / f"{stem}.png")
        else:
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
    blur: float = 0.0,
    init: str | Path | None = None,
    verbose: bool = True,
) -> ElementDetector:
    """Train on ``train_data`` (validating on ``val_data``) and save the detector into ``out``.

    ``init``: a saved detector folder to start from (same yaml and image size) instead of random
    weights; ``blur``: see :func:`export_yolo`.
    """
    import_ultralytics()
    from ultralytics import YOLO

    parent, start = _initial_state(init, yaml, imgsz) if init is not None else (None, None)
    out = Path(out)
    work = Path(tempfile.mkdtemp(prefix="yolo-"))
    captured = {}
    try:
        export_yolo(train_data, work / "data", "train", blur=blur, seed=seed)
        export_yolo(val_data, work / "data", "val")
        names = "\n".join(f"  {i}: {e.phrase.replace(' ', '_')}" for i, e in enumerate(ALL_ELEMENTS))
        (work / "data.yaml").write_text(
            f"path: {work / 'data'}\ntrain: images/train\nval: images/val\nnames:\n{names}\n"
        )
        model = YOLO(yaml)

        def grab(trainer) -> None:  # the final EMA weights, in memory: no .pt file is read back
            captured["state"] = {k: v.detach().clone() for k, v in trainer.ema.ema.state_dict().items()}

        def load_start(trainer) -> None:  # after Ultralytics has built the model, optimizer and EMA
            for network in (trainer.model, trainer.ema.ema):
                network.load_state_dict(start)

        model.add_callback("on_train_epoch_end", grab)
        if start is not None:
            model.add_callback("on_pretrain_routine_end", load_start)
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
            # Ultralytics' warm-up starts biases at lr 0.1: right for random weights, a jolt for trained ones.
            warmup_epochs=0.0 if start is not None else 3.0,
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
    extra = {"epochs": epochs, "batch": batch, "train_data": str(train_data), "seed": seed, "blur": blur}
    if parent is not None:  # the detector it continued, and that one's own history (classes are checked equal)
        extra["init"] = {"folder": str(init), **{k: v for k, v in parent.items() if k != "classes"}}
    detector.save(out, extra=extra)
    return ElementDetector.load(out)


def _initial_state(folder: str | Path, yaml: str, imgsz: int) -> tuple[dict, dict]:
    """A saved detector's metadata and unfused weights, checked against the network to train."""
    meta, state = read_saved(Path(folder))
    if (meta.get("yaml"), meta.get("imgsz")) != (yaml, imgsz):
        raise OriginalityError(
            f"detector in {folder} is {meta.get('yaml')} at {meta.get('imgsz')} px; "
            f"cannot start {yaml} at {imgsz} px from it"
        )
    return meta, state
