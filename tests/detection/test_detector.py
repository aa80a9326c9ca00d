import numpy as np
import pytest
import torch
from PIL import Image

from originality.detection import (
    Detection,
    ElementDetector,
    centres,
    element_multiset,
    kind_shares,
    match_kind,
    matches_caption,
    mismatch,
)
from originality.detection.detector import default_detector_dir
from originality.errors import OriginalityError
from originality.images import to_rgb
from originality.shapes import preset
from originality.shapes.dataset import render_example

shipped = pytest.mark.skipif(
    not (default_detector_dir() / "detector.safetensors").is_file(), reason="no shipped detector in this checkout"
)


def rendered(n: int, seed: int = 12345):
    rows = [render_example(preset("all-elements"), i, seed, 64) for i in range(n)]
    import io

    return [Image.open(io.BytesIO(r["image"]["bytes"])).convert("RGB") for r in rows], rows


def as_detections(row) -> list[Detection]:
    from originality.shapes import Element

    return [
        Detection(Element(e["shape"], e["colour"], e["size"], e["texture"]), tuple(e["bbox"]), 1.0)
        for e in row["elements"]
    ]


def test_caption_helpers_agree_with_the_renderers_labels():
    _, rows = rendered(200)
    for row in rows:
        dets = as_detections(row)
        assert matches_caption(dets, row["caption"])
        assert matches_caption(list(reversed(dets)), row["caption"])  # order does not matter
        if dets:
            assert not matches_caption(dets[1:], row["caption"])
            assert len(centres(dets)) == len(dets)
    assert element_multiset([]) == element_multiset(as_detections({"elements": []}))
    assert matches_caption([], "")


def test_match_kind_tells_swapped_colours_from_wrong_shapes():
    from collections import Counter

    from originality.shapes import parse_caption

    def kind(found: str, want: str) -> str:
        return match_kind(Counter(parse_caption(found)), Counter(parse_caption(want)))

    want = "big blue full circle and big red full square"
    assert kind("big red full square and big blue full circle", want) == "exact"
    assert kind("big red full circle and big blue full square", want) == "swapped"
    assert kind("big green full circle and big red full square", want) == "shapes"
    assert kind("big blue full circle and big red full triangle", want) == "miss"
    assert kind("big blue full circle", want) == "miss"
    assert kind("", "") == "exact"

    def sample(caption: str) -> list[Detection]:
        return [Detection(e, (0, 0, 1, 1), 1.0) for e in parse_caption(caption)]

    found = [sample(want), sample("big red full circle and big blue full square"), sample("big blue full circle")]
    shares = kind_shares(found, Counter(parse_caption(want)))
    assert shares == pytest.approx({"exact": 1 / 3, "swapped": 1 / 3, "shapes": 0.0, "miss": 1 / 3})


def test_mismatch_says_why_a_sample_is_not_the_query():
    from collections import Counter

    from originality.shapes import parse_caption

    def why(found: str, want: str = "big blue full circle and big red full square") -> str:
        return mismatch(Counter(parse_caption(found)), Counter(parse_caption(want)))

    assert why("big red full square and big blue full circle") == "matched"
    assert why("") == "nothing read"
    assert why("big red full circle and big blue full square") == "colours swapped"
    assert why("big green full circle and big red full square") == "blue circle drawn green"
    assert why("big blue full circle") == "missing square"
    assert why("big blue full circle and big red full triangle") == "triangle in place of square"
    assert (
        why("big red full circle and big blue full circle and big red full star")
        == "circle in place of square and extra star"
    )
    assert why("small blue full circle and big red empty square") == "size differs and texture differs"


def test_weights_round_trip_through_safetensors(tmp_path):
    torch.manual_seed(0)
    network = ElementDetector.build()
    ElementDetector(network).save(tmp_path)
    loaded = ElementDetector.load(tmp_path)
    reference = ElementDetector.build()
    reference.load_state_dict(network.state_dict())
    reference.fuse()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(loaded.model.eval()(x)[0], reference.eval()(x)[0], atol=1e-4)
    assert not list(tmp_path.glob("*.pt"))


def test_bad_inputs(tmp_path):
    with pytest.raises(OriginalityError, match="no detector weights"):
        ElementDetector.load(tmp_path)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(OriginalityError, match="cannot read image"):
        to_rgb(tmp_path / "broken.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(OriginalityError, match="cannot read image"):
        to_rgb(tmp_path / "empty.png")
    detector = ElementDetector(ElementDetector.build())
    with pytest.raises(OriginalityError, match="square images"):
        detector.detect([Image.new("RGB", (64, 32), "white")])


def test_image_modes_are_converted():
    rgba = Image.new("RGBA", (8, 8), (255, 0, 0, 0))  # fully transparent red: white on white
    assert to_rgb(rgba).getpixel((0, 0)) == (255, 255, 255)
    assert to_rgb(Image.new("L", (8, 8), 10)).getpixel((0, 0)) == (10, 10, 10)
    assert to_rgb(Image.new("CMYK", (8, 8), (0, 0, 0, 0))).mode == "RGB"
    assert to_rgb(np.zeros((8, 8, 3), dtype=np.uint8)).size == (8, 8)


@shipped
def test_shipped_detector_reads_rendered_images():
    detector = ElementDetector.load()
    images, rows = rendered(300)
    # At 0.5 rendered images are read almost exactly; at the paper's 0.9 a few under-confident
    # elements are missed, never invented (the measured figures: results/detector).
    found = detector.detect(images, threshold=0.5)
    exact = sum(matches_caption(d, r["caption"]) for d, r in zip(found, rows, strict=True))
    assert exact >= 0.97 * len(rows)
    strict = detector.detect(images)  # at 0.9 some are missed, never invented
    for dets, row in zip(strict, rows, strict=True):
        assert not (element_multiset(dets) - element_multiset(as_detections(row)))
    # Boxes land on the drawn elements.
    for dets, row in zip(found, rows, strict=True):
        if matches_caption(dets, row["caption"]):
            truth = sorted(tuple(e["bbox"]) for e in row["elements"])
            got = sorted(d.box for d in dets)
            assert np.allclose(np.sort(np.array(got), axis=0), np.sort(np.array(truth), axis=0), atol=3.0)


@shipped
def test_shipped_detector_finds_nothing_in_an_empty_image_and_rescales_boxes():
    detector = ElementDetector.load()
    assert detector.detect([Image.new("RGB", (64, 64), "white")]) == [[]]
    images, rows = rendered(20)
    big = [im.resize((256, 256), Image.Resampling.NEAREST) for im in images]
    for small_dets, big_dets, row in zip(detector.detect(images), detector.detect(big), rows, strict=True):
        if matches_caption(small_dets, row["caption"]) and matches_caption(big_dets, row["caption"]):
            assert np.allclose(
                sorted(d.centre for d in big_dets), sorted((x * 4, y * 4) for x, y in centres(small_dets)), atol=6
            )
