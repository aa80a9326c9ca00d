"""Issue 7 probe: levels of the quick ladder trained ~2,000 UNet steps (6.4 epochs of 20K) instead of 624.

    OMP_NUM_THREADS=1 python research/probe_generalization_long.py [--levels 4,15,60]      # ~1 h a level, one thread
    python research/probe_generalization_long.py --levels 4,15,60 --partial results/generalization/probe-2000-steps

The run caches every model and measurement in ``--out`` and resumes. ``--partial DIR`` trains
nothing: it summarises the levels already measured (figures, summary.json, report.html and the
measurements' JSON into DIR), so a run that outlasts a session can be reported as far as it got.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from originality.experiments.generalization import plan, run_generalization, write_measured
from originality.experiments.generalization_config import generalization_preset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--levels", default="4,15,60")
    parser.add_argument("--unet-epochs", type=float, default=6.4)
    parser.add_argument("--out", default="outputs/generalization-l4-long")
    parser.add_argument("--partial", help="summarise the measured levels into this folder and stop")
    args = parser.parse_args()
    levels = tuple(int(v) for v in args.levels.split(","))
    overrides = {"vae_from": "shipped", "unet_epochs": args.unet_epochs}
    config = generalization_preset("quick", levels=levels, train_overrides=overrides)
    if not args.partial:
        summary = run_generalization(args.out, config, progress=False)
        if summary is not None:  # None on the helper processes of a torchrun launch
            print(json.dumps(summary["levels"], indent=1))
        return
    run, dest = Path(args.out), Path(args.partial)
    done = [j for j in plan(config) if (run / "cache" / f"measure-{j.measure_key}.json").is_file()]
    if not done:
        raise SystemExit(f"no level of {args.levels} is measured in {run} yet")
    (dest / "cache").mkdir(parents=True, exist_ok=True)
    (dest / "figures").mkdir(exist_ok=True)
    for job in done:
        shutil.copy(run / "cache" / f"measure-{job.measure_key}.json", dest / "cache")
        for figure in (run / "figures").glob(f"{job.name}-*.png"):
            shutil.copy(figure, dest / "figures")
    summary = write_measured(dest, config)  # the levels just copied
    print(json.dumps(summary["levels"], indent=1))


if __name__ == "__main__":
    main()
