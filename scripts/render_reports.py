"""Render HTML reports to PNG with headless Chromium, as a reader's browser shows them.

    python scripts/render_reports.py outputs/demo/scores/report.html --out docs/report-batch.png
    python scripts/render_reports.py outputs/demo/scores/common.png/report.html --out docs/report-image.png

Needs Debian's ``chromium`` package (``apt-get install chromium``). The page is loaded from
disk with the network off (the reports are self-contained: an external request would fail
visibly), drawn in a tall window and cropped to its content.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def render(page: Path, out: Path, width: int = 1200, height: int = 4000) -> Path:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        sys.exit("error: no chromium on PATH (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as profile:
        shot = Path(profile) / "shot.png"
        subprocess.run(
            [browser, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
             f"--screenshot={shot}", page.resolve().as_uri()],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        image = Image.open(shot).convert("RGB")
    ink = np.asarray(image).min(axis=2) < 250
    rows = np.nonzero(ink.any(axis=1))[0]
    bottom = int(rows.max()) + 24 if len(rows) else image.height
    out.parent.mkdir(parents=True, exist_ok=True)
    image.crop((0, 0, width, min(bottom, image.height))).save(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("page", type=Path, help="an HTML report")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--width", type=int, default=1200)
    args = parser.parse_args()
    print(render(args.page, args.out, args.width))


if __name__ == "__main__":
    main()
