"""originality: how original is an image with respect to a text-to-image diffusion model.

Implements and extends Haviv et al. 2024, "Not Every Image is Worth a Thousand Words:
Quantifying Originality in Stable Diffusion".
"""

__version__ = "0.1.0"
