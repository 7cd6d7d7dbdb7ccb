"""The unified model (UniMP): one causal LM over a user's interleaved image+text history that
recommends, searches, rates and explains (next: writes images as tokens, and generates the next item).

- ``serialize``: the one serializer of histories and task prompts (training and inference);
- ``vocab``, ``item_ids``, ``tokenizer``: special tokens, item names (one token each, or semantic ids), BPE;
- ``model``: the causal LM (transformers) reading item images through a projector; its own loss;
- ``tasks``, ``train``: examples from a dataset's training part (leave-one-out); multi-task SFT
  (``tailorgen train unimp``);
- ``decode``: answers constrained to real items, ratings as expected values, explanations;
- ``unimp``: ``UniMP``, a trained model over one dataset; ``baselines``: what the benchmark compares against.
"""

from tailorgen.unified.serialize import TASKS, Event, Example, Serializer
from tailorgen.unified.unimp import UniMP

__all__ = ["TASKS", "Event", "Example", "Serializer", "UniMP"]
