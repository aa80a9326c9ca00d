"""The real-world path (Sec. 4.2, 5) on tiny CLIP-based pipelines built here: hub-id loading from a
cache, domains, the editability check with a CLIP classifier, DreamSim's offline error, and batch
audits spread over processes by ``accelerate launch``."""

import json
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

from originality import runs
from originality.batch import RESULTS, finished
from originality.domains import DOMAINS, load_domain
from originality.errors import OriginalityError
from originality.method.search import check_prompts_fit, score, score_preset
from originality.models.pipeline import check_text_encoder, load_pipeline, resolve_dtype
from originality.scorer import save_result

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipelines import save_as_hub_cache, tiny_clip_classifier, tiny_clip_pipeline  # noqa: E402

TINY = dict(inversion_steps=2, batch_size=2, samples=2, inference_steps=2, max_tokens=2)


def house(path: Path | None = None, colour="red") -> Image.Image:
    image = Image.new("RGB", (32, 32), "white")
    ImageDraw.Draw(image).polygon([(4, 20), (16, 6), (28, 20)], fill=colour)
    if path is not None:
        image.save(path)
    return image


@pytest.fixture
def hub_cache(tmp_path):
    """A tiny CLIP-based Stable Diffusion laid out in a hub cache as ``local/tiny-sd``."""
    save_as_hub_cache(tiny_clip_pipeline(tmp_path / "build"), tmp_path / "hub", "local/tiny-sd")
    return tmp_path / "hub"


def domain_file(tmp_path, **extra) -> Path:
    data = {
        "name": "my-houses",
        "initializer": "house",
        "templates": ["a photo of a {}", "a photo of the {}"],
        "edit_prompts": ["cat in {}"],
        "edit_concept": "cat",
        "distance": "ssim",
        **extra,
    }
    path = tmp_path / "domain.json"
    path.write_text(json.dumps(data))
    return path


def test_a_hub_id_loads_from_the_cache_and_scores_with_editability(hub_cache, tmp_path):
    pipeline = load_pipeline("local/tiny-sd", cache_dir=hub_cache)
    assert pipeline.text_encoder.__class__.__name__ == "CLIPTextModel" and pipeline.unet.dtype == torch.float32
    clip = tiny_clip_classifier(tmp_path / "clip")
    domain = load_domain(domain_file(tmp_path))
    config = score_preset("quick", **TINY, full_curve=True, clip_model=str(clip))
    result = score(house(), pipeline, config, domain, name="house.png")
    save_result(result, house(), tmp_path / "out")
    assert [t.m for t in result.per_m] == [1, 2]
    assert result.settings["config"]["distance"] == "ssim" and result.settings["config"]["check"] == "editability"
    for t in result.per_m:
        verdict = t.in_distribution
        assert verdict.name == "editability"
        assert 0 <= verdict.evidence["shows_concept"] <= 1
        assert verdict.passed == (verdict.evidence["shows_concept"] >= 0.5)
        assert t.passed == (t.distance <= config.resolve(domain).threshold and verdict.passed)
        assert (tmp_path / "out" / "samples" / f"m{t.m}-edits.png").is_file()
    saved = json.loads((tmp_path / "out" / "result.json").read_text())
    assert "images" not in saved["per_m"][0]["in_distribution"]  # edited samples go to PNGs, not JSON


def test_editability_asks_the_classifier_about_the_edit_prompts(hub_cache, tmp_path):
    from originality.method.in_distribution import EditabilityCheck

    class Always:
        def __init__(self, p):
            self.p, self.texts = p, []

        def probabilities(self, images, texts):
            self.texts.append(texts)
            return torch.tensor([[self.p, 1 - self.p]] * len(images)).numpy()

    domain = load_domain(domain_file(tmp_path, edit_prompts=["cat in {}", "a cat and {}"]))
    rendered = []

    def render(prompt):
        rendered.append(prompt)
        return [house()] * 3

    yes = EditabilityCheck(domain, Always(0.9))(house(), [], render=render)
    assert yes.passed and yes.evidence["shows_concept"] == 1.0 and rendered == ["cat in {}", "a cat and {}"]
    no = EditabilityCheck(domain, Always(0.1))(house(), [], render=render)
    assert not no.passed and len(no.images) == 6
    with pytest.raises(OriginalityError, match="no edit prompts"):
        EditabilityCheck(load_domain("shapes"), Always(0.5))


def test_domain_presets_and_files(tmp_path):
    for name in ("houses", "art", "animals", "sport", "people"):
        d = DOMAINS[name]
        assert (d.distance, d.check, d.inference_steps, d.prompt) == ("dreamsim", "editability", 35, "a photo of {}")
    assert len(DOMAINS["art"].templates) == 20 and DOMAINS["art"].initializer == "painting"
    shapes = DOMAINS["shapes"]
    assert (shapes.distance, shapes.check, shapes.inference_steps) == ("elements", "positions", 50)
    yaml_file = tmp_path / "d.yaml"
    yaml_file.write_text("name: boats\ninitializer: boat\nedit_concept: dog\nedit_prompts: ['dog in {}']\n")
    assert load_domain(yaml_file).initializer == "boat"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "x", "templates": ["a {}"]}))
    with pytest.raises(OriginalityError, match="missing initial token"):
        load_domain(bad)
    bad.write_text(json.dumps({"name": "x", "initializer": "  "}))
    with pytest.raises(OriginalityError, match="missing initial token"):
        load_domain(bad)
    bad.write_text(json.dumps({"name": "x", "initializer": "boat", "colour": 1}))
    with pytest.raises(OriginalityError, match="unknown key 'colour'"):
        load_domain(bad)


def test_thresholds_and_steps_follow_the_domain_unless_given():
    houses = score_preset("paper").resolve(DOMAINS["houses"])
    assert (houses.distance, houses.check, houses.inference_steps, houses.threshold) == (
        "dreamsim",
        "editability",
        35,
        0.35,
    )
    shapes = score_preset("quick").resolve(DOMAINS["shapes"])
    assert (shapes.distance, shapes.threshold, shapes.inference_steps) == ("elements", 0.585, 25)
    assert score_preset("paper", threshold=0.2, check=None).resolve(DOMAINS["art"]).threshold == 0.2
    with pytest.raises(OriginalityError, match="no default threshold"):
        score_preset("paper", distance="mine").resolve(DOMAINS["art"])


def test_dreamsim_without_weights_says_what_to_place_where(tmp_path, monkeypatch):
    pytest.importorskip("dreamsim")
    import torch.hub

    from originality.method.dreamsim import DreamSimDistance

    with pytest.raises(OriginalityError) as info:
        DreamSimDistance(cache_dir=tmp_path / "ds", allow_download=False)
    message = str(info.value)
    assert "\n" not in message and str(tmp_path / "ds") in message
    assert "ensemble_lora" in message and "dino_vitb16_pretrain.pth" in message and "--distance ssim" in message

    def offline(url, dst, *a, **kw):
        Path(dst).write_bytes(b"partial")  # a download cut short
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(OriginalityError, match="download failed .*network unreachable"):
        DreamSimDistance(cache_dir=tmp_path / "ds", variant="dino_vitb16", allow_download=True)
    assert not (tmp_path / "ds" / "pretrained.zip").exists()
    with pytest.raises(OriginalityError, match="unknown DreamSim variant"):
        DreamSimDistance(cache_dir=tmp_path / "ds", variant="vgg")


def test_loading_errors(tmp_path):
    with pytest.raises(OriginalityError, match="'nobody/no-such-model' .*cache " + str(tmp_path)):
        load_pipeline("nobody/no-such-model", cache_dir=tmp_path)
    with pytest.raises(OriginalityError, match="model folder not found"):
        load_pipeline(tmp_path / "missing")
    pipeline = tiny_clip_pipeline(tmp_path / "p")
    check_text_encoder(pipeline)
    pipeline.text_encoder = None
    with pytest.raises(OriginalityError, match="no text encoder embedding table"):
        check_text_encoder(pipeline)
    assert resolve_dtype(None, torch.device("cpu")) == torch.float32
    assert resolve_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(OriginalityError, match="unknown dtype"):
        resolve_dtype("fp8", torch.device("cpu"))


def test_part_files_of_dead_processes_count_and_merge_once(tmp_path):
    runs.append_jsonl(tmp_path / RESULTS, {"image": "a.png", "label": "1"})
    runs.append_jsonl(tmp_path / "results.rank1.jsonl", {"image": "b.png", "label": "+"})
    runs.append_jsonl(tmp_path / "results.rank0.jsonl", {"image": "a.png", "label": "1"})
    assert set(finished(tmp_path)) == {"a.png", "b.png"}
    runs.merge_parts(tmp_path, RESULTS, "image")
    lines = [json.loads(x)["image"] for x in (tmp_path / RESULTS).read_text().splitlines()]
    assert lines == ["a.png", "b.png"] and not list(tmp_path.glob("results.rank*.jsonl"))


def test_two_processes_split_a_folder(tmp_path, torchrun):
    pipeline = tiny_clip_pipeline(tmp_path / "build")
    pipeline.save_pretrained(tmp_path / "model", safe_serialization=True)
    images = tmp_path / "in"
    images.mkdir()
    colours = ["red", "green", "blue", "black", "orange"]
    for i, colour in enumerate(colours):
        house(images / f"h{i}.png", colour)
    run = torchrun(
        "score", str(images), "--model", str(tmp_path / "model"),
        "--domain", str(domain_file(tmp_path)), "--no-check", "--inversion-steps", "2", "--samples", "2",
        "--inference-steps", "2", "--max-tokens", "1", "--out", str(tmp_path / "out"), "--quiet",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    lines = [json.loads(x) for x in (tmp_path / "out" / RESULTS).read_text().splitlines()]
    assert sorted(r["image"] for r in lines) == [f"h{i}.png" for i in range(5)]  # each once
    assert sorted(r["process"] for r in lines) == [0, 0, 0, 1, 1]  # both processes scored their share
    assert not list((tmp_path / "out").glob("results.rank*.jsonl")) and not list((tmp_path / "out").glob(".lock*"))
    assert all((tmp_path / "out" / r["folder"] / "result.json").is_file() for r in lines)
    assert run.stdout.count("results:") == 1  # one summary, from the first process


def test_cli_real_world_bad_inputs_are_one_line_errors(tmp_path, capsys):
    from originality.cli import main

    image = tmp_path / "h.png"
    house(image)
    out = tmp_path / "out"
    cases = [
        (["--domain", "houses", "--dreamsim-cache", str(tmp_path / "ds")], "DreamSim 'ensemble' weights are not in"),
        (
            ["--domain", "houses", "--model", "nobody/x", "--distance", "ssim"],
            "no hub model of that id",
        ),
        (["--domain", str(domain_file(tmp_path, initializer=""))], "missing initial token"),
        (["--domain", "houses", "--dreamsim-type", "vgg"], "unknown DreamSim variant"),
    ]
    for extra, message in cases:
        assert main(["score", str(image), "--out", str(out), *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
        assert not out.exists()  # nothing written


def test_learned_tokens_that_would_be_cut_from_a_prompt_are_refused(tmp_path):
    """The tiny tokenizer reads 16 positions: "a rendering of a {}" holds 2 learned tokens, not 5.
    Before, the tokenizer silently cut the last ones off."""
    pipeline = tiny_clip_pipeline(tmp_path / "pipe")
    config = score_preset("quick", **{**TINY, "max_tokens": 5}, distance="ssim", check=None)
    with pytest.raises(OriginalityError, match=r"5 learned tokens takes \d+ positions and the text encoder reads 16"):
        score(house(), pipeline, config, load_domain("houses"))
    fits = score_preset("quick", **TINY, distance="ssim", check=None).resolve(load_domain("houses"))
    check_prompts_fit(pipeline, load_domain("houses"), fits)  # 2 tokens fit: no error
