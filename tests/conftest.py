import pytest

from browser import find_chromium
from tailorgen.world import WorldConfig, build_world


@pytest.fixture(scope="session")
def small_shop(tmp_path_factory):
    """A small shop built once per test session; tests must not modify it."""
    out = tmp_path_factory.mktemp("shop") / "shop"
    build_world(WorldConfig(n_items=400, n_users=60, seed=7), out, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_vq_config():
    """A VQ tokenizer at a fraction of the shipped width, with one more level (32x32 -> 8x8 codes of 64;
    the shipped one has 16x16 of 1,024), trained for six steps."""
    from tailorgen.unified.vq_train import VQTrainConfig

    return VQTrainConfig(
        held_out_items=40,
        block_out_channels=(8, 16, 16),
        latent_channels=4,
        code_dim=4,
        codebook_size=64,
        steps=6,
        batch_size=16,
        warmup_steps=2,
        restart_every=3,
        threads=1,
    )


@pytest.fixture(scope="session")
def tiny_vq(small_shop, tiny_vq_config, tmp_path_factory):
    """The tiny VQ tokenizer trained once per session on ``small_shop`` (its folder; the report is inside)."""
    from tailorgen.unified.vq_train import train_vq

    out = tmp_path_factory.mktemp("vq") / "vq"
    train_vq(tiny_vq_config, out, progress=False, checkpoint_every=0, dataset=small_shop)
    return out


@pytest.fixture(scope="session")
def tiny_judge(tmp_path_factory):
    """A judge trained for seconds: right format and above chance, nowhere near the shipped one."""
    from tailorgen.evaluation.judge import JudgeTrainConfig, train_judge

    root = tmp_path_factory.mktemp("judge")
    cfg = JudgeTrainConfig(train_items=1500, eval_items=300, epochs=3, width=8, batch_size=32)
    report = train_judge(cfg, root / "ckpt", root / "work", progress=False)
    return root / "ckpt", report


@pytest.fixture(scope="session")
def tiny_generator(tmp_path_factory):
    """A generator pipeline trained for 30 steps: real weights in the real format, not a useful model."""
    from tailorgen.generation.train import GeneratorTrainConfig, train_generator

    root = tmp_path_factory.mktemp("generator")
    cfg = GeneratorTrainConfig(
        train_items=150,
        train_users=30,
        examples=120,
        steps=30,
        batch_size=8,
        block_out_channels=(32, 64),
        cross_attention_dim=32,
        warmup_steps=5,
        lr=1e-3,
        renders=1,
        finetune_steps=6,  # the shipped recipe's two phases: the accent token and FiLM join here
        finetune_warmup_steps=2,
    )
    report = train_generator(cfg, root / "gen", root / "work", progress=False)
    return root / "gen", report


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium (Debian's, driven by Playwright) for the tests of HTML pages."""
    executable = find_chromium()
    if executable is None:
        pytest.skip("no Chromium found: `make system-deps` installs Debian's chromium-headless-shell")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # --no-sandbox: CI and this machine run tests as root, where Chromium's sandbox refuses to start.
        b = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield b
        b.close()
