import shutil

from safetensors.torch import load_file, save_file

from originality.models.pipeline import model_identity


def test_a_model_retrained_at_the_same_place_has_another_identity(tiny_model, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(tiny_model, folder)
    before = model_identity(folder)
    assert before.startswith(f"{folder} (unet sha256 ") and model_identity(folder) == before
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    state = load_file(weights)
    name = next(iter(state))
    state[name] = state[name] + 1.0
    save_file(state, weights)
    assert model_identity(folder) != before
    # Hub ids carry no local weights to hash; the shipped model does.
    assert model_identity("CompVis/stable-diffusion-v1-4") == "CompVis/stable-diffusion-v1-4"
    assert model_identity(None).startswith("shipped default (unet sha256 ")
