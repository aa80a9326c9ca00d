"""Reading query images: any file Pillow opens, normalised to RGB, fitted to a model's size.

Rules (the same for the scorer and the detector):

* Transparency (RGBA, LA, palette with transparency) is composited on white; greyscale,
  CMYK and palette images are converted to RGB; 16-bit images are scaled to 8 bits.
* :func:`fit_square` centre-crops a non-square image to its shorter side, then resizes to the
  model's resolution: area averaging when shrinking, bicubic when enlarging. Images smaller
  than 8 px or larger than 16384 px on a side are refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from originality.errors import OriginalityError

MIN_SIDE, MAX_SIDE = 8, 16384


def open_header(path: str | Path) -> Image.Image:
    """The image file opened, its header read and its size checked, its pixels not yet decoded.

    The sides are checked against this module's limits here, before Pillow decodes anything: its
    own guard (a pixel count) would otherwise end a large file in a traceback, or decode a huge
    one before our check could refuse it."""
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # our limit on the sides, below, takes its place
    try:
        opened = Image.open(path)
    except (OSError, ValueError) as exc:
        raise OriginalityError(f"cannot read image {path}: {exc}") from exc
    finally:
        Image.MAX_IMAGE_PIXELS = previous
    w, h = opened.size
    if min(w, h) < MIN_SIDE or max(w, h) > MAX_SIDE:
        opened.close()
        raise OriginalityError(f"image {path} is {w}x{h} px: sides must be between {MIN_SIDE} and {MAX_SIDE} px")
    return opened


def to_rgb(image: Image.Image | np.ndarray | str | Path) -> Image.Image:
    """An RGB PIL image from a PIL image, an array or a file; transparency goes on white."""
    if isinstance(image, str | Path):
        with open_header(image) as opened:
            try:
                opened.load()
            except (OSError, ValueError, Image.DecompressionBombError) as exc:
                raise OriginalityError(f"cannot read image {image}: {exc}") from exc
            image = opened.copy()
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    if image.width == 0 or image.height == 0:
        raise OriginalityError("empty image (0 pixels)")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        image = Image.fromarray((np.asarray(image, dtype=np.float64) / 257).clip(0, 255).astype(np.uint8))
    return image.convert("RGB")


def fit_square(image: Image.Image, side: int) -> Image.Image:
    """Centre-crop to a square and resize to ``side`` x ``side`` (see the module's rules)."""
    w, h = image.size
    if min(w, h) < MIN_SIDE or max(w, h) > MAX_SIDE:
        raise OriginalityError(f"image of {w}x{h} px: sides must be between {MIN_SIDE} and {MAX_SIDE} px")
    if w != h:
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        image = image.crop((left, top, left + s, top + s))
    if image.width != side:
        method = Image.Resampling.BOX if image.width > side else Image.Resampling.BICUBIC
        image = image.resize((side, side), method)
    return image


def fitting_note(size: tuple[int, int], side: int) -> str | None:
    """What :func:`fit_square` did to an image of ``size`` that a reader should know: that a
    non-square image lost its sides. None for a square one."""
    w, h = size
    if w == h:
        return None
    s = min(w, h)
    return f"the {w}x{h} image was cropped to its middle {s}x{s} and resized to {side}x{side}"


def load_query(path: str | Path, side: int) -> Image.Image:
    """A query image file, as the RGB ``side`` x ``side`` image the model sees."""
    return fit_square(to_rgb(path), side)
