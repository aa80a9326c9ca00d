"""Stable-Diffusion-style models trained from scratch on shapes: config, training, pipelines."""

from originality.models.config import TrainConfig, train_preset
from originality.models.pipeline import generate, load_pipeline
from originality.models.training import train

__all__ = ["TrainConfig", "generate", "load_pipeline", "train", "train_preset"]
