import io

import pytest
from PIL import Image

from originality.detection import ElementDetector, matches_caption
from originality.detection.detector import default_detector_dir
from originality.detection.training import export_yolo, train_detector
from originality.errors import OriginalityError
from originality.shapes import preset
from originality.shapes.dataset import make_dataset, read_table


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return make_dataset(preset("all-elements"), 48, tmp_path_factory.mktemp("det") / "d", size=64, progress=False)


def test_export_blurs_the_chosen_share_of_images_and_keeps_their_labels(small, tmp_path):
    export_yolo(small, tmp_path / "crisp", "train")
    export_yolo(small, tmp_path / "soft", "train", blur=0.5, seed=3)
    rows = read_table(small, columns=["index", "image"]).to_pylist()
    changed = 0
    for r in rows:
        stem = f"{r['index']:07d}"
        crisp = (tmp_path / "crisp" / "images" / "train" / f"{stem}.png").read_bytes()
        assert crisp == r["image"]["bytes"]
        soft = Image.open(tmp_path / "soft" / "images" / "train" / f"{stem}.png").convert("RGB")
        changed += soft.tobytes() != Image.open(io.BytesIO(crisp)).convert("RGB").tobytes()
        labels = [(tmp_path / k / "labels" / "train" / f"{stem}.txt").read_text() for k in ("crisp", "soft")]
        assert labels[0] == labels[1]
    assert 0.25 * len(rows) < changed < 0.75 * len(rows)


def test_training_can_start_from_a_saved_detector(small, tmp_path):
    # One short epoch at a tiny learning rate: started from the shipped detector, the result still
    # reads images; started from nothing, it could not.
    trained = train_detector(
        small,
        small,
        tmp_path / "d",
        epochs=1,
        batch=16,
        lr0=1e-6,
        workers=0,
        init=default_detector_dir(),
        verbose=False,
    )
    rows = read_table(small, columns=["image", "caption"]).to_pylist()
    images = [Image.open(io.BytesIO(r["image"]["bytes"])).convert("RGB") for r in rows]
    found = trained.detect(images, threshold=0.5)
    assert sum(matches_caption(d, r["caption"]) for d, r in zip(found, rows, strict=True)) >= 0.8 * len(rows)
    assert ElementDetector.load(tmp_path / "d").yaml == trained.yaml


def test_a_start_of_another_architecture_is_refused(small, tmp_path):
    with pytest.raises(OriginalityError, match="cannot start"):
        train_detector(small, small, tmp_path / "d", yaml="yolov8s.yaml", init=default_detector_dir(), verbose=False)
