"""The element detector: images in, per image a list of detections (element, box, confidence).

The paper reads generated images with a YOLOv8 detector fine-tuned on the shapes data,
keeping detections at confidence >= 0.9 (App. B.1). This module is the project's own small
interface to it; Ultralytics (AGPL-3.0, the ``detector`` extra) is touched only here and in
:mod:`originality.detection.training`, so another detector can be swapped in.

One class per element (60 classes): YOLO assigns one label per box, and an element is the
unit the experiments compare. Weights are stored as safetensors and the network is rebuilt
from its Ultralytics yaml; no pickle is ever loaded.

Input images are converted to RGB (transparency composited on white). A square image of
another size is resized (area averaging when shrinking, bilinear when growing) to the
detector's input size, and boxes are reported in the input image's own pixels; a
non-square image is refused.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from originality.digests import file_sha256
from originality.errors import OriginalityError
from originality.images import to_rgb
from originality.shapes.captions import parse_caption
from originality.shapes.vocabulary import ALL_ELEMENTS, Element

DEFAULT_THRESHOLD = 0.9
WEIGHTS = "detector.safetensors"
META = "detector.json"


@dataclass(frozen=True)
class Detection:
    element: Element
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in the input image's pixels
    confidence: float

    @property
    def centre(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box
        return ((x0 + x1) / 2, (y0 + y1) / 2)


def _check_saved(folder: Path) -> None:
    if not (folder / WEIGHTS).is_file() or not (folder / META).is_file():
        raise OriginalityError(f"no detector weights in {folder} (expected {WEIGHTS} and {META})")


def read_saved(folder: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """A saved detector's metadata and (unfused) weights, checked for presence and classes."""
    _check_saved(folder)
    meta = json.loads((folder / META).read_text())
    if meta.get("classes") != [e.phrase for e in ALL_ELEMENTS]:
        raise OriginalityError(f"detector in {folder} was trained on other classes")
    try:
        return meta, load_file(folder / WEIGHTS)
    except (SafetensorError, OSError) as exc:
        raise OriginalityError(f"corrupt detector weights in {folder}: {str(exc).splitlines()[0]}") from exc


def element_multiset(detections: Iterable[Detection]) -> Counter[Element]:
    """The elements found in one image, with multiplicity."""
    return Counter(d.element for d in detections)


def matches_caption(detections: Iterable[Detection], caption: str | Sequence[Element]) -> bool:
    """Whether the detected elements are exactly the caption's (as multisets, order ignored)."""
    elements = parse_caption(caption) if isinstance(caption, str) else list(caption)
    return element_multiset(detections) == Counter(elements)


MATCH_KINDS = ("exact", "swapped", "shapes", "miss")


def _count(counter: Counter[Element], *names: str) -> Counter[tuple[str, ...]]:
    """The elements' values of the attributes ``names`` (e.g. shape and colour), with multiplicity."""
    return Counter(tuple(getattr(e, n) for n in names) for e in counter.elements())


def match_kind(found: Counter[Element], want: Counter[Element]) -> str:
    """How a sample's elements ``found`` relate to the wanted ones, most specific first.

    ``exact``: the same elements. ``swapped``: the same shapes and the same colours, but the
    colours sit on other shapes (a red circle and a blue square for a blue circle and a red
    square): the model lost which colour goes where (or, in data with several sizes and
    textures, drew another size or texture). ``shapes``: the same shapes, other colours.
    ``miss``: other shapes (or another count).
    """
    if found == want:
        return "exact"
    if _count(found, "shape") != _count(want, "shape"):
        return "miss"
    if _count(found, "colour") == _count(want, "colour"):
        return "swapped"
    return "shapes"


def mismatch(found: Counter[Element], want: Counter[Element]) -> str:
    """Why a sample's elements ``found`` are not the wanted ones, in a few plain words.

    ``matched``; ``nothing read``; ``circle in place of square``, ``missing square``, ``extra
    circle`` (shapes differ); ``colours swapped`` (the right colours on the wrong shapes); ``red
    circle drawn blue``; ``size differs``, ``texture differs``. Several are joined by `` and ``.
    """
    if found == want:
        return "matched"
    if not found:
        return "nothing read"
    count = _count
    missing = count(want, "shape") - count(found, "shape")
    extra = count(found, "shape") - count(want, "shape")
    if missing or extra:
        lost, added = [s for (s,) in sorted(missing.elements())], [s for (s,) in sorted(extra.elements())]
        swaps = [f"{a} in place of {b}" for a, b in zip(added, lost, strict=False)]
        n = len(swaps)
        return " and ".join(swaps + [f"missing {s}" for s in lost[n:]] + [f"extra {s}" for s in added[n:]])
    if count(found, "shape", "colour") != count(want, "shape", "colour"):
        if count(found, "colour") == count(want, "colour"):
            return "colours swapped"
        lost = sorted((count(want, "shape", "colour") - count(found, "shape", "colour")).elements())
        drawn = sorted((count(found, "shape", "colour") - count(want, "shape", "colour")).elements())
        return " and ".join(f"{c} {s} drawn {d}" for (s, c), (_, d) in zip(lost, drawn, strict=True))
    key = ("shape", "colour")
    differs = [n for n in ("size", "texture") if count(found, *key, n) != count(want, *key, n)]
    return " and ".join(f"{n} differs" for n in differs) or "differs"


def kind_shares(found: Sequence[Iterable[Detection]], want: Counter[Element]) -> dict[str, float]:
    """The share of samples of each :data:`MATCH_KINDS` kind, given each sample's detections."""
    kinds = Counter(match_kind(element_multiset(d), want) for d in found)
    return {kind: kinds[kind] / max(1, len(found)) for kind in MATCH_KINDS}


def centres(detections: Iterable[Detection]) -> list[tuple[float, float]]:
    return [d.centre for d in detections]


def import_ultralytics():
    """Import Ultralytics offline, without its process-wide side effects.

    Importing it replaces ``PIL.Image.open`` for the whole process with a wrapper that tries
    to pip-install a HEIF plugin whenever Pillow cannot identify a file; Pillow's own is put
    back, and automatic installs are switched off.
    """
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    # Under torchrun with a process group up, Ultralytics waits at import for every rank (a
    # barrier); the detector reads images in one process, so it is imported as a lone process.
    launcher = {k: os.environ.pop(k) for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK") if k in os.environ}
    try:
        import ultralytics
        from ultralytics.utils import patches
    except ImportError as exc:
        raise OriginalityError("the detector needs Ultralytics: pip install 'originality[detector]'") from exc
    finally:
        os.environ.update(launcher)
    Image.open = getattr(patches, "_image_open", Image.open)

    logging.getLogger("ultralytics").setLevel(logging.WARNING)  # no per-build "Overriding nc" chatter
    return ultralytics


class ElementDetector:
    """Batched inference of a YOLO ``DetectionModel`` whose classes are the 60 elements."""

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        imgsz: int = 64,
        yaml: str = "yolov8n.yaml",
        threshold: float = DEFAULT_THRESHOLD,
        iou: float = 0.5,
        device: str | torch.device = "cpu",
    ):
        self.model = model.to(device).eval()
        self.imgsz, self.yaml, self.threshold, self.iou = imgsz, yaml, threshold, iou
        self.device = torch.device(device)

    # -- persistence ------------------------------------------------------------------------------
    @staticmethod
    def build(yaml: str = "yolov8n.yaml") -> torch.nn.Module:
        """The untrained network, from its Ultralytics yaml (no download, no pickle)."""
        import_ultralytics()
        from ultralytics.nn.tasks import DetectionModel

        return DetectionModel(cfg=yaml, nc=len(ALL_ELEMENTS), verbose=False)

    def save(self, folder: str | Path, extra: dict | None = None) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        save_file(state, folder / WEIGHTS)
        meta = {"yaml": self.yaml, "imgsz": self.imgsz, "classes": [e.phrase for e in ALL_ELEMENTS], **(extra or {})}
        (folder / META).write_text(json.dumps(meta, indent=1) + "\n")
        return folder

    @classmethod
    def load(
        cls,
        folder: str | Path | None = None,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        device: str | torch.device = "cpu",
    ) -> ElementDetector:
        """Load a saved detector (the one shipped in the package when ``folder`` is None)."""
        folder = Path(folder) if folder is not None else default_detector_dir()
        meta, state = read_saved(folder)
        model = cls.build(meta["yaml"])
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise OriginalityError(f"corrupt detector weights in {folder}: {str(exc).splitlines()[0]}") from exc
        model.fuse()
        return cls(model, imgsz=meta["imgsz"], yaml=meta["yaml"], threshold=threshold, device=device)

    # -- inference --------------------------------------------------------------------------------
    def _tensor(self, images: Sequence[Image.Image]) -> tuple[torch.Tensor, list[float]]:
        arrays, scales = [], []
        for image in images:
            if image.width != image.height:
                raise OriginalityError(f"the detector reads square images; got {image.width}x{image.height}")
            scales.append(image.width / self.imgsz)
            if image.width != self.imgsz:
                method = Image.Resampling.BOX if image.width > self.imgsz else Image.Resampling.BILINEAR
                image = image.resize((self.imgsz, self.imgsz), method)
            arrays.append(np.asarray(image, dtype=np.uint8))
        batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255)
        return batch.to(self.device), scales

    @torch.no_grad()
    def detect(
        self,
        images: Sequence[Image.Image | np.ndarray | str | Path],
        *,
        threshold: float | None = None,
        batch_size: int = 256,
    ) -> list[list[Detection]]:
        """Detections per image, at confidence >= ``threshold`` (default 0.9)."""
        import_ultralytics()
        from ultralytics.utils.nms import non_max_suppression

        threshold = self.threshold if threshold is None else threshold
        check_confidence(threshold)
        results: list[list[Detection]] = []
        for start in range(0, len(images), batch_size):
            chunk = [to_rgb(im) for im in images[start : start + batch_size]]
            x, scales = self._tensor(chunk)
            raw = self.model(x)
            raw = raw[0] if isinstance(raw, tuple | list) else raw
            kept = non_max_suppression(raw, conf_thres=threshold, iou_thres=self.iou, agnostic=True, max_det=50)
            for boxes, scale in zip(kept, scales, strict=True):
                results.append(
                    [
                        Detection(ALL_ELEMENTS[int(c)], tuple(float(v) * scale for v in box), float(conf))
                        for *box, conf, c in boxes[:, :6].tolist()
                    ]
                )
        return results


def check_confidence(value: float | None, name: str = "detector confidence") -> float | None:
    """A detector confidence in (0, 1] (None passes: the default), or a one-line error."""
    if value is not None and not (isinstance(value, int | float) and math.isfinite(value) and 0 < value <= 1):
        raise OriginalityError(f"{name} must be a number in (0, 1], got {value}")
    return value


def detector_identity(folder: str | Path | None = None) -> str:
    """A digest of a saved detector's weights (the shipped one when ``folder`` is None): cached
    measurements carry it, so a retrained detector re-measures instead of reusing its numbers."""
    folder = Path(folder) if folder is not None else default_detector_dir()
    _check_saved(folder)
    return file_sha256(folder / WEIGHTS)


def default_detector_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "assets" / "detector"
