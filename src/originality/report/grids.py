"""Image grids with captions (contact sheets, reconstruction grids), drawn with Pillow."""

from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from originality.errors import OriginalityError
from originality.runs import save_image
from originality.shapes.dataset import read_table


def image_grid(
    images: Sequence[Image.Image],
    captions: Sequence[str] | None = None,
    *,
    columns: int = 8,
    cell: int = 128,
    caption_lines: int = 4,
    font_size: int = 11,
) -> Image.Image:
    """Tile ``images`` (scaled to ``cell`` px, nearest neighbour so pixels stay visible)."""
    if not images:
        raise OriginalityError("no images to put in a grid")
    font = ImageFont.load_default(size=font_size)
    line_height = font_size + 2
    text_height = caption_lines * line_height + 4 if captions is not None else 0
    columns = max(1, min(columns, len(images)))
    rows = (len(images) + columns - 1) // columns
    pad = 4
    sheet = Image.new("RGB", (columns * (cell + pad) + pad, rows * (cell + text_height + pad) + pad), (235, 235, 235))
    draw = ImageDraw.Draw(sheet)
    chars = max(8, int(cell / (font_size * 0.55)))
    for i, image in enumerate(images):
        x = pad + (i % columns) * (cell + pad)
        y = pad + (i // columns) * (cell + text_height + pad)
        sheet.paste(image.convert("RGB").resize((cell, cell), Image.Resampling.NEAREST), (x, y))
        if captions is not None:
            lines = textwrap.wrap(captions[i] or "(empty)", chars)
            if len(lines) > caption_lines:
                lines = lines[: caption_lines - 1] + [lines[caption_lines - 1][: chars - 1] + "…"]
            for j, line in enumerate(lines):
                draw.text((x, y + cell + 2 + j * line_height), line, fill=(20, 20, 20), font=font)
    return sheet


def grid_cell(grid: str | Path | Image.Image, index: int, *, columns: int = 10, cell: int = 96) -> Image.Image:
    """Cell ``index`` of a caption-less :func:`image_grid` (the score's sample grids use 10 x 96 px)."""
    sheet = grid if isinstance(grid, Image.Image) else Image.open(grid)
    pad = 4
    x = pad + (index % columns) * (cell + pad)
    y = pad + (index // columns) * (cell + pad)
    return sheet.crop((x, y, x + cell, y + cell))


def dataset_contact_sheet(path: str | Path, out: str | Path, *, count: int = 48, columns: int = 8) -> Path:
    """A PNG of the first ``count`` images of a shapes dataset, with their captions."""
    table = read_table(path, columns=["image", "caption"]).slice(0, count).to_pylist()
    images = [Image.open(io.BytesIO(r["image"]["bytes"])) for r in table]
    grid = image_grid(images, [r["caption"] for r in table], columns=columns)
    return save_image(grid, out)
