"""Generation: the conditional diffusion generator, its training, and the personalized image pipeline."""

from tailorgen.generation.conditioning import SEGMENTS, PersonalizationConditioner
from tailorgen.generation.pipeline import Conditions, PersonalizedImagePipeline
from tailorgen.generation.unet import build_unet

__all__ = ["SEGMENTS", "Conditions", "PersonalizationConditioner", "PersonalizedImagePipeline", "build_unet"]
