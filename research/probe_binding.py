"""Issue 6 probe: do the learned tokens miss the query's shapes, or only which colour goes where?

    python research/probe_binding.py --run outputs/min-tokens-fixed [--model M] [--out F.json]
    python research/probe_binding.py --table F.json

For every query of a finished min-tokens run, reload its learned embeddings (m = 1..5), draw the
samples again on the score's own seeds and settings, read them with the shipped detector at the
score's confidence, and count per sample:

* ``exact``: exactly the query's elements (the ``elements`` distance's pass);
* ``swapped``: the query's shapes and colours, but the colours on the other shapes;
* ``right_shapes``: the query's shapes, whatever their colours (exact, swapped or other colours);

as :func:`originality.detection.detector.match_kind` sorts them.

The query's true caption is drawn too, on the same seeds (the model's ceiling). Prints a table
per group and m and writes every count to ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
from safetensors.torch import load_file

from originality.detection.detector import MATCH_KINDS, ElementDetector, element_multiset, match_kind
from originality.method.inversion import PLACEHOLDER
from originality.method.reconstruction import reconstruct
from originality.models.pipeline import generate, load_pipeline
from originality.shapes.captions import colour_count, parse_caption


def tally(want: Counter, found: list[Counter]) -> dict[str, float]:
    """Share of samples of each match kind, the share with the right shapes, elements per sample."""
    kinds = Counter(match_kind(got, want) for got in found)
    shares = {kind: kinds[kind] / len(found) for kind in MATCH_KINDS}
    shares["right_shapes"] = 1 - shares["miss"]
    shares["elements"] = sum(sum(got.values()) for got in found) / len(found)
    return shares


def print_table(results: list[dict]) -> None:
    """Means over the queries of each group, and of its one- and two-colour queries."""
    print(f"{'queries':19s} {'n':>2s} {'what':12s} {'caption':>7s} " + " ".join(f"{f'm={m}':>6s}" for m in range(1, 6)))
    for group in dict.fromkeys(r["group"] for r in results):
        for label, keep in (("all", (1, 2)), ("one colour", (1,)), ("two colours", (2,))):
            mine = [r for r in results if r["group"] == group and r["colours"] in keep]
            if not mine:
                continue
            for what in ("exact", "swapped", "right_shapes", "elements"):
                cells = [np.mean([r["ceiling"][what] for r in mine])]
                cells += [np.mean([r["per_m"][m][what] for r in mine]) for m in sorted(mine[0]["per_m"])]
                print(f"{group + ' ' + label:19s} {len(mine):2d} {what:12s} " + " ".join(f"{c:6.2f}" for c in cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", help="a min-tokens output folder")
    parser.add_argument("--table", help="print the table of a JSON this script wrote, and stop")
    parser.add_argument("--model", default=None, help="default: the shipped shapes model")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.table:
        print_table(json.loads(Path(args.table).read_text()))
        return
    if not args.run:
        parser.error("--run or --table is required")
    run = Path(args.run)
    pipeline = load_pipeline(args.model)
    rows = list(csv.DictReader((run / "queries.csv").open()))
    detector = None
    results = []
    for row in rows:
        folder = run / "scores" / row["image"].replace("/", "_")
        saved = json.loads((folder / "result.json").read_text())
        config, seeds = saved["settings"]["config"], saved["seeds"]
        if detector is None:
            detector = ElementDetector.load(threshold=config["detector_threshold"])
        steps, guidance = config["inference_steps"], config["guidance_scale"]
        want = Counter(parse_caption(row["caption"]))
        colours = colour_count(row["caption"])
        entry = {
            "image": row["image"],
            "group": row["group"],
            "caption": row["caption"],
            "colours": colours,
            "per_m": {},
        }
        caption_samples = generate(pipeline, [row["caption"]] * len(seeds), seeds, steps=steps, guidance_scale=guidance)
        entry["ceiling"] = tally(want, [element_multiset(d) for d in detector.detect(caption_samples)])
        for path in sorted((folder / "embeddings").glob("learned_embeds_m*.safetensors")):
            m = int(path.stem.removeprefix("learned_embeds_m"))
            embeddings = load_file(path)[PLACEHOLDER]
            samples = reconstruct(pipeline, embeddings, seeds, prompt="{}", steps=steps, guidance_scale=guidance)
            entry["per_m"][m] = tally(want, [element_multiset(d) for d in detector.detect(samples)])
        results.append(entry)
        print(
            row["image"],
            json.dumps({"caption": entry["ceiling"]["exact"]} | {m: v["exact"] for m, v in entry["per_m"].items()}),
            flush=True,
        )

    print_table(results)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
