"""Interests: tags per item from text and image, user interest profiles, and rewriting item text."""

from tailorgen.interests.profile import (
    InterestProfile,
    build_profile,
    build_profiles,
    load_profiles,
    recency_weights,
    save_profiles,
)
from tailorgen.interests.rewrite import (
    HTTPRewriter,
    LocalLLMRewriter,
    Rewriter,
    RewriteResult,
    TemplateRewriter,
    make_rewriter,
    validate_output,
)
from tailorgen.interests.tagging import ImageTagger, ItemTags, TextTagger, tag_catalog
from tailorgen.interests.vocabulary import TagVocabulary

__all__ = [
    "HTTPRewriter",
    "LocalLLMRewriter",
    "RewriteResult",
    "Rewriter",
    "TemplateRewriter",
    "make_rewriter",
    "validate_output",
    "ImageTagger",
    "InterestProfile",
    "ItemTags",
    "TagVocabulary",
    "TextTagger",
    "build_profile",
    "build_profiles",
    "recency_weights",
    "load_profiles",
    "save_profiles",
    "tag_catalog",
]
