import hashlib

import datasets
import pytest

import originality.shapes.dataset as dataset_module
from originality.errors import OriginalityError
from originality.shapes import parse_caption, preset
from originality.shapes.dataset import make_dataset, read_table, shard_paths
from originality.shapes.statistics import check_statistics, dataset_report


def digest(folder) -> str:
    h = hashlib.sha256()
    for p in shard_paths(folder):
        h.update(p.read_bytes())
    return h.hexdigest()


def test_originality_mix_frequencies_hold_on_20k_images(tmp_path):
    out = make_dataset(preset("originality-mix"), 20_000, tmp_path / "mix", seed=3, progress=False)
    report = dataset_report(out)
    failed = [c for c in report["checks"] if not c["ok"]]
    assert not failed
    # The checks did look at the three pairs.
    names = {c["name"] for c in report["checks"]}
    assert {"images with circle+square", "images with circle+triangle", "images with square+triangle"} <= names


def test_held_out_elements_never_appear_and_elements_are_uniform(tmp_path):
    spec = preset("ladder-9-small-empty")
    out = make_dataset(spec, 4000, tmp_path / "ladder", progress=False)
    rows = read_table(out, columns=["component", "elements", "caption"]).to_pylist()
    held = spec.held_out_elements[0]
    assert all(held not in parse_caption(r["caption"]) for r in rows)
    assert all(c.ok for c in check_statistics(rows, spec))


def test_checks_catch_a_dataset_that_breaks_its_spec(tmp_path):
    out = make_dataset(preset("ladder-4-big-full"), 2000, tmp_path / "d", progress=False)
    rows = read_table(out, columns=["component", "elements"]).to_pylist()
    rows[0]["elements"] = [{"shape": "circle", "colour": "blue", "size": "big", "texture": "full", "bbox": [0] * 4}]
    failed = {c.name for c in check_statistics(rows, preset("ladder-4-big-full")) if not c.ok}
    assert "held out: big blue full circle" in failed


def test_same_seed_gives_identical_bytes_whatever_the_workers(tmp_path):
    spec = preset("originality-mix")
    a = make_dataset(spec, 1200, tmp_path / "a", seed=7, workers=1, shard_size=700, progress=False)
    b = make_dataset(spec, 1200, tmp_path / "b", seed=7, workers=2, shard_size=700, progress=False)
    c = make_dataset(spec, 1200, tmp_path / "c", seed=8, workers=2, shard_size=700, progress=False)
    assert len(shard_paths(a)) == 2
    assert digest(a) == digest(b) != digest(c)


def test_load_dataset_reads_the_output_with_decoded_images(tmp_path):
    out = make_dataset(preset("all-elements"), 300, tmp_path / "d", size=128, progress=False)
    ds = datasets.load_dataset(str(out), split="train")
    assert len(ds) == 300
    row = next(r for r in ds if r["elements"])
    assert row["image"].size == (128, 128)
    assert len(row["elements"]) == len(parse_caption(row["caption"]))
    assert set(row["elements"][0]) == {"shape", "colour", "size", "texture", "bbox"}


def test_existing_output_is_refused_unless_overwrite(tmp_path):
    out = tmp_path / "d"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(OriginalityError, match="exists and is not empty"):
        make_dataset(preset("all-elements"), 10, out, progress=False)
    assert (out / "keep.txt").read_text() == "mine"
    make_dataset(preset("all-elements"), 10, out, overwrite=True, progress=False)
    assert not (out / "keep.txt").exists()


def test_failure_midway_leaves_nothing_half_written(tmp_path, monkeypatch):
    real = dataset_module.render_example

    def failing(spec, index, seed, size, *args):
        if index == 700:
            raise RuntimeError("boom")
        return real(spec, index, seed, size, *args)

    monkeypatch.setattr(dataset_module, "render_example", failing)
    with pytest.raises(RuntimeError):
        make_dataset(preset("all-elements"), 1000, tmp_path / "d", workers=1, progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("n, out, message", [(0, "d", "--n must be >= 1"), (5, "f/sub", "cannot write to")])
def test_bad_arguments(tmp_path, n, out, message):
    (tmp_path / "f").write_text("a file, not a folder")
    with pytest.raises(OriginalityError, match=message):
        make_dataset(preset("all-elements"), n, tmp_path / out, progress=False)
