"""Fusion: I-AM-G's interest attention over retrieved text and image neighbours."""

from tailorgen.fusion.interest_attention import InterestAttention

__all__ = ["InterestAttention"]
