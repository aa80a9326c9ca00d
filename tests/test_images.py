import numpy as np
import pytest
from PIL import Image

from originality.errors import OriginalityError
from originality.images import fit_square, load_query


@pytest.mark.parametrize(
    "make",
    [
        lambda: Image.new("RGBA", (40, 40), (255, 0, 0, 0)),
        lambda: Image.new("L", (40, 40), 128),
        lambda: Image.new("CMYK", (40, 40), (0, 255, 255, 0)),
        lambda: Image.new("I;16", (40, 40), 65535),
        lambda: Image.new("P", (40, 40), 3),
        lambda: Image.new("1", (40, 40), 1),
    ],
)
def test_every_mode_becomes_rgb_of_the_models_size(tmp_path, make):
    path = tmp_path / "q.png" if make().mode != "CMYK" else tmp_path / "q.jpg"
    make().save(path)
    image = load_query(path, 32)
    assert image.mode == "RGB" and image.size == (32, 32)


def test_transparency_goes_on_white_and_16_bit_is_scaled(tmp_path):
    Image.new("RGBA", (16, 16), (255, 0, 0, 0)).save(tmp_path / "t.png")
    assert load_query(tmp_path / "t.png", 16).getpixel((0, 0)) == (255, 255, 255)
    Image.new("I;16", (16, 16), 65535).save(tmp_path / "w.png")
    assert load_query(tmp_path / "w.png", 16).getpixel((0, 0)) == (255, 255, 255)


def test_non_square_images_are_centre_cropped():
    image = Image.new("RGB", (300, 100), "white")
    image.paste((255, 0, 0), (100, 0, 200, 100))  # the centre third is red
    fitted = fit_square(image, 64)
    assert fitted.size == (64, 64)
    assert np.asarray(fitted)[..., 1].max() < 10  # all red: the white sides were cropped away


def test_tiny_huge_and_broken_images_are_refused(tmp_path):
    with pytest.raises(OriginalityError, match="sides must be between"):
        fit_square(Image.new("RGB", (4, 4)), 64)
    (tmp_path / "cut.png").write_bytes((Image.new("RGB", (64, 64)).tobytes())[:10])
    with pytest.raises(OriginalityError, match="cannot read image"):
        load_query(tmp_path / "cut.png", 64)
    Image.new("RGB", (64, 64)).save(tmp_path / "ok.png")
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(OriginalityError, match="cannot read image"):
        load_query(tmp_path / "truncated.png", 64)
