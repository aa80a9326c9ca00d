"""Count the work one `originality score FOLDER` repeats per image: config resolutions, detector
loads and image opens (``PIL.Image.open``, every caller) (issue 35 §1's before/after table).

Three shipped example queries, the shipped model, budgets shrunk to seconds (2 inversion steps,
2 samples, m = 1, 4 reference samples). Runs on any commit whose CLI takes ``--steps``:

    python research/count_batch_work.py --signals fast
    python research/count_batch_work.py --signals all

Counts are per command of three images (issue 35's closing note gives them for both commits).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from unittest import mock

import PIL.Image

from originality.cli import main as cli_main
from originality.detection.detector import ElementDetector
from originality.method.search import ScoreConfig

QUERIES = Path(__file__).resolve().parents[1] / "src" / "originality" / "assets" / "queries"


def count(signals: str) -> dict[str, int]:
    counts: Counter[str] = Counter()
    resolve, image_open = ScoreConfig.resolve, PIL.Image.open
    load = ElementDetector.load.__func__

    def counted(name, fn):
        def wrapper(*args, **kwargs):
            counts[name] += 1
            return fn(*args, **kwargs)

        return wrapper

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "queries"
        folder.mkdir()
        for png in sorted(QUERIES.glob("*.png")):
            shutil.copy(png, folder / png.name)
        args = ["score", str(folder), "--out", str(Path(tmp) / "out"), "--signals", signals, "--quiet"]
        args += ["--steps", "2", "--samples", "2", "--max-tokens", "1", "--reference-samples", "4"]
        args += ["--inference-steps", "2"]
        with (
            mock.patch.object(ScoreConfig, "resolve", counted("config resolutions", resolve)),
            mock.patch.object(ElementDetector, "load", classmethod(counted("detector loads", load))),
            mock.patch.object(PIL.Image, "open", counted("image opens", image_open)),
        ):
            status = cli_main(args)
        counts["images"] = len(list(folder.glob("*.png")))
        counts["exit status"] = status
    return dict(counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", default="fast")
    print(json.dumps(count(parser.parse_args().signals)))


if __name__ == "__main__":
    main()
