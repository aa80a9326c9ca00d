import dataclasses

import pytest

from originality.models import train_preset
from originality.shapes import preset
from originality.shapes.dataset import make_dataset


@pytest.fixture(scope="session")
def small_data(tmp_path_factory):
    """128 images: enough for the resume tests, which train three times."""
    return make_dataset(
        preset("originality-mix"), 128, tmp_path_factory.mktemp("data") / "small", size=32, progress=False
    )


@pytest.fixture
def tiny_config():
    return dataclasses.replace(train_preset("tiny"), checkpoint_every=10)
