"""Issue 7 probe: level 4 of the quick ladder trained ~2,000 UNet steps (6.4 epochs of 20K) instead of 624.

OMP_NUM_THREADS=2 python benchmarks/probe_generalization_level4.py     # 35 min here
"""

import json

from originality.experiments.generalization import generalization_preset, run_generalization

config = generalization_preset("quick", levels=(4,), train_overrides={"vae_from": "shipped", "unet_epochs": 6.4})
summary = run_generalization("outputs/generalization-l4-long", config, progress=False)
print(json.dumps(summary["levels"], indent=1))
