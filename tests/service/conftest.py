"""A real server on 127.0.0.1 over the small shop, with tiny models of every engine trained once."""

from __future__ import annotations

import pytest
from serving import Running, settings_for

from tailorgen.service import create_app
from tailorgen.unified.serialize import TASKS

TINY_UNIMP = dict(steps=30, batch_size=8, hidden=32, layers=2, heads=2, bpe_vocab=300, warmup_steps=5, threads=1,
                  lr=5e-3)  # fmt: skip


@pytest.fixture(scope="package")
def service_models(small_shop, tiny_vq, tiny_generator, tmp_path_factory):
    """Folders of a tiny generator, unified model (all five tasks) and GNR model (SFT only) for ``small_shop``."""
    from tailorgen.unified.gnr import GNRTrainConfig, train_gnr
    from tailorgen.unified.reward import RewardTrainConfig, train_reward
    from tailorgen.unified.train import UniMPTrainConfig, train_unimp

    root = tmp_path_factory.mktemp("service-models")
    unimp = UniMPTrainConfig(**TINY_UNIMP, tasks=TASKS, vq=str(tiny_vq))
    train_unimp(unimp, small_shop, root / "unimp", progress=False)
    reward = RewardTrainConfig(hidden=32, negatives=8, steps=10, batch_size=16, warmup_steps=2, threads=1)
    train_reward(reward, small_shop, root / "reward", progress=False, checkpoint_every=0)
    gnr = GNRTrainConfig(unimp=str(root / "unimp"), reward=str(root / "reward"), sft_steps=4, batch_size=4,
                         rl_steps=0, threads=1)  # fmt: skip
    train_gnr(gnr, small_shop, root / "gnr", progress=False, checkpoint_every=0)
    return {"generator": tiny_generator[0], "unimp": root / "unimp", "gnr": root / "gnr"}


@pytest.fixture(scope="package")
def server(small_shop, service_models, tmp_path_factory):
    """The whole service over the small shop, every engine loaded."""
    outputs = tmp_path_factory.mktemp("serve") / "outputs"
    with Running(create_app(settings_for(small_shop, service_models, outputs))) as running:
        running.outputs = outputs
        running.wait_ready()
        yield running
