"""The simulated shop: a seedable catalog and user population with hidden ground truth."""

from tailorgen.world.attributes import CATEGORIES, COLOURS, PATTERNS, PREFERENCE_ATTRIBUTES, VISUAL_ATTRIBUTES
from tailorgen.world.build import WorldConfig, build_world
from tailorgen.world.oracle import Oracle

__all__ = [
    "CATEGORIES",
    "COLOURS",
    "PATTERNS",
    "PREFERENCE_ATTRIBUTES",
    "VISUAL_ATTRIBUTES",
    "Oracle",
    "WorldConfig",
    "build_world",
]
