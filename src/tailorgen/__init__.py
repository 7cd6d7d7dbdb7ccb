"""tailorgen: personalized multimodal generation for recommender systems and e-commerce."""

__version__ = "0.1.0"
