"""One skeleton for every experiment, and one runner for its folder.

An experiment is one file that ends with an :class:`Experiment`:

* its **config**: a dataclass with named presets, ``validate()`` (returns the config, raises a
  one-line error) and ``to_dict()``; a field's ``metadata["help"]`` becomes its command-line help;
* ``run(out, config, progress)``: the work, resumable inside the run folder (records in JSONL);
* ``summarise(out, config)``: the numbers, read back from what ``run`` wrote;
* ``figures(out, summary)``: the plots a person would rather look at, as PNG paths;
* ``table(summary)``: the few lines printed at the end;
* ``identity(config)``: what the settings must pin beside the config (a model's digest), so that a
  folder made with another model is refused rather than resumed;
* ``grows``: config fields a rerun may raise to extend the run (more queries), left out of the check;
* ``report(out, summary)``: a page of its own, where the generic one (table, figures) is not enough;
* ``parallel``: every process of a launch (``accelerate launch``, ``torchrun``) runs ``run`` and
  takes its share (through ``runs.processes()``); else the first runs it alone. The first summarises;
* ``score_options``: the config's ``score`` field (a ``ScoreConfig``) takes ``score``'s options;
* ``marker`` / ``compare``: the settings file and how saved settings compare, for folders written
  before the experiment moved onto this skeleton.

:func:`run_experiment` owns everything else: the folder (resumed with the same settings, refused in
one line with others; a fresh folder the run failed in before writing anything is removed again), the
lock, the processes, ``summary.json`` (with ``seconds_this_call``), ``report.html``. :func:`registered` finds every
experiment module's ``EXPERIMENT``, so a new experiment is one new file; the command line builds
``originality experiment NAME`` from its config.
"""

from __future__ import annotations

import argparse
import dataclasses
import html
import importlib
import pkgutil
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from originality import runs
from originality.errors import OriginalityError
from originality.presets import from_preset
from originality.report.html import STYLE, inline_png

Config = TypeVar("Config")


def _no_figures(out: Path, summary: dict[str, Any]) -> list[Path]:
    return []


def _no_identity(config: Any) -> dict[str, Any]:
    return {}


def _as_saved(settings: dict[str, Any]) -> dict[str, Any]:
    return settings


def _adopt_nothing(out: Path) -> bool:
    return False


@dataclass(frozen=True)
class Experiment(Generic[Config]):
    name: str  # the command: originality experiment NAME
    title: str  # one line for --help and the report
    presets: Mapping[str, Callable[[], Config]]
    run: Callable[[Path, Config, bool], None]
    summarise: Callable[[Path, Config], dict[str, Any]]
    table: Callable[[dict[str, Any]], str]
    figures: Callable[[Path, dict[str, Any]], list[Path]] = _no_figures
    identity: Callable[[Config], dict[str, Any]] = _no_identity
    grows: tuple[str, ...] = ()
    report: Callable[[Path, dict[str, Any]], Path] | None = None
    parallel: bool = False
    score_options: bool = False
    marker: str = runs.SETTINGS
    compare: Callable[[dict[str, Any]], Any] = _as_saved
    # a folder with content but no settings that the experiment may resume (e.g. its first step, run alone)
    adopt: Callable[[Path], bool] = _adopt_nothing

    def config(self, preset: str | None = None, **overrides: Any) -> Config:
        """The named preset (the first one by default) with ``overrides``, validated."""
        return from_preset(f"{self.name} experiment", self.presets, preset or next(iter(self.presets)), **overrides)

    def config_type(self) -> type:
        return type(next(iter(self.presets.values()))())


def run_experiment(
    experiment: Experiment, out: str | Path, config: Any, *, progress: bool = True
) -> dict[str, Any] | None:
    """Run (or resume) ``experiment`` into the folder ``out``; returns the summary it wrote (None in
    every process of a launch but the first, which summarises)."""
    out = Path(out)
    config = config.validate()
    procs = runs.processes()
    checked = {**config.to_dict(), **dict.fromkeys(experiment.grows)}  # a larger run extends this one
    settings = {"experiment": experiment.name, "config": checked, **experiment.identity(config)}
    options = dict(
        what=f"a {experiment.name} run", marker=experiment.marker, compare=experiment.compare, adopt=experiment.adopt
    )
    fresh = not runs.has_content(out)
    runs.open_run(out, settings, **options, write=False)  # every process checks before the first writes
    procs.barrier()
    if procs.first:
        runs.open_run(out, settings, **options)
    procs.barrier()
    started = time.perf_counter()
    with runs.lock(out, procs.index):
        try:
            if experiment.parallel or procs.first:
                experiment.run(out, config, progress)
        except OriginalityError:
            if fresh and procs.first and _only_settings(out, experiment.marker):
                shutil.rmtree(out)  # a bad model or input: nothing was made, the folder is not kept
            raise
        procs.barrier()
        if not procs.first:
            return None
        summary = {"experiment": experiment.name, "settings": settings, **experiment.summarise(out, config)}
        summary["seconds_this_call"] = time.perf_counter() - started
        runs.write_json(out / "summary.json", summary)
        figures = experiment.figures(out, summary)
        if experiment.report is not None:
            experiment.report(out, summary)
        else:
            report(experiment, summary, figures, out / "report.html")
    return summary


def _only_settings(out: Path, marker: str) -> bool:
    return {p.name for p in out.iterdir() if not p.name.startswith(".")} <= {marker}  # hidden: the lock


def report(experiment: Experiment, summary: dict[str, Any], figures: list[Path], path: Path) -> Path:
    """A self-contained page: the title, the printed table, every figure, the settings."""
    parts = [
        f"<!doctype html><meta charset='utf-8'><title>{html.escape(experiment.title)}</title>",
        f"<style>{STYLE}</style><h1>{html.escape(experiment.title)}</h1>",
        f"<pre>{html.escape(experiment.table(summary))}</pre>",
        *(f"<p><img alt='{html.escape(p.name)}' src='{inline_png(p)}' style='max-width:100%'></p>" for p in figures),
        "<details><summary>settings</summary><pre>",
        html.escape(runs.dumps(summary["settings"], indent=1)),
        "</pre></details>",
    ]
    return runs.write_text(path, "\n".join(parts) + "\n")


def registered() -> dict[str, Experiment]:
    """Every ``EXPERIMENT`` defined by a module of this package, by name."""
    package = importlib.import_module("originality.experiments")
    found: dict[str, Experiment] = {}
    for module in pkgutil.iter_modules(package.__path__):
        experiment = getattr(importlib.import_module(f"{package.__name__}.{module.name}"), "EXPERIMENT", None)
        if isinstance(experiment, Experiment):
            found[experiment.name] = experiment
    return dict(sorted(found.items()))


def option_fields(config_type: type) -> list[tuple[str, Any, Any, str]]:
    """(name, type, default, help) of the config fields the command line offers as ``--name``:
    those of a plain type (str, int, float, bool, or None meaning str), and tuples of one plain
    type, given comma-separated ("0,1,2")."""
    out = []
    defaults = config_type()
    for f in dataclasses.fields(config_type):
        value = getattr(defaults, f.name)
        kind = str if value is None else type(value)
        if kind in (str, int, float, bool):
            out.append((f.name, kind, value, f.metadata.get("help", "")))
        elif kind is tuple and value and len({type(v) for v in value}) == 1 and type(value[0]) in (str, int, float):
            shown = ",".join(map(str, value))
            out.append((f.name, comma_separated(type(value[0])), shown, f.metadata.get("help", "")))
    return out


def comma_separated(kind: type) -> Callable[[str], tuple]:
    """An option's parser: "0,1,2" as a tuple of ``kind``."""

    def parse(text: str) -> tuple:
        try:
            return tuple(kind(v.strip()) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"comma-separated {kind.__name__} values, got {text!r}") from None

    parse.__name__ = f"comma-separated {kind.__name__}"
    return parse
