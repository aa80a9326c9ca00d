import dataclasses

import pytest

from originality.models import train, train_preset
from originality.shapes import preset
from originality.shapes.dataset import make_dataset


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """512 originality-mix images at 32 px."""
    return make_dataset(
        preset("originality-mix"), 512, tmp_path_factory.mktemp("data") / "mix", size=32, progress=False
    )


@pytest.fixture(scope="session")
def small_data(tmp_path_factory):
    """128 images: enough for the resume tests, which train three times."""
    return make_dataset(
        preset("originality-mix"), 128, tmp_path_factory.mktemp("data") / "small", size=32, progress=False
    )


@pytest.fixture
def tiny_config():
    return dataclasses.replace(train_preset("tiny"), checkpoint_every=10)


@pytest.fixture(scope="session")
def tiny_model(tiny_data, tmp_path_factory):
    """The tiny preset trained once on ``tiny_data`` (64 VAE + 128 UNet steps)."""
    return train(train_preset("tiny"), tiny_data, tmp_path_factory.mktemp("models") / "tiny", progress=False)
