"""Tiny random-weight CLIP / SigLIP models saved to a temp dir, loaded through the real loading code
(the way transformers and diffusers test themselves)."""

import json

import pytest


def _byte_level_vocab():
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}


def _tiny_tokenizer(d):
    """A character-level CLIP BPE tokenizer (no merges) from files written to ``d``."""
    from transformers import CLIPTokenizer

    vocab = _byte_level_vocab()
    tok_dir = d / "tok"
    tok_dir.mkdir()
    (tok_dir / "vocab.json").write_text(json.dumps(vocab))
    (tok_dir / "merges.txt").write_text("#version: 0.2\n")
    # transformers 5 ignores vocab_file= in the constructor: load through from_pretrained.
    return vocab, CLIPTokenizer.from_pretrained(str(tok_dir), model_max_length=16)


TINY_TEXT = {
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "max_position_embeddings": 16,
}
TINY_VISION = {
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "image_size": 32,
    "patch_size": 8,
}


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory):
    import torch
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor

    d = tmp_path_factory.mktemp("tiny-clip")
    vocab, tokenizer = _tiny_tokenizer(d)
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config={
            **TINY_TEXT,
            "vocab_size": len(vocab),
            "bos_token_id": vocab["<|startoftext|>"],
            "eos_token_id": vocab["<|endoftext|>"],
            "pad_token_id": vocab["<|endoftext|>"],
        },
        vision_config=TINY_VISION,
        projection_dim=24,
    )
    CLIPModel(config).save_pretrained(str(d))
    # The PIL backend: torchvision does not install beside this torch.
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(str(d))
    return d


@pytest.fixture(scope="session")
def tiny_siglip_dir(tmp_path_factory):
    import torch
    from transformers import SiglipConfig, SiglipImageProcessorPil, SiglipModel, SiglipProcessor

    d = tmp_path_factory.mktemp("tiny-siglip")
    vocab, tokenizer = _tiny_tokenizer(d)
    torch.manual_seed(0)
    text = {
        **TINY_TEXT,
        "vocab_size": len(vocab),
        "eos_token_id": vocab["<|endoftext|>"],
        "pad_token_id": vocab["<|endoftext|>"],
        "bos_token_id": vocab["<|startoftext|>"],
    }
    SiglipModel(SiglipConfig(text_config=text, vision_config=TINY_VISION)).save_pretrained(str(d))
    image_processor = SiglipImageProcessorPil(size={"height": 32, "width": 32})
    SiglipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(str(d))
    return d
