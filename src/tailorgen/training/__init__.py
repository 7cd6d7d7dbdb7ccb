"""The training toolkit every trainer uses: seeds and device, training shops, the loop's run, the report.

A trainer reads top to bottom::

    device = setup(cfg.seed, cfg.threads, device)            # seeds, threads, a checked device
    shop = training_shop(work_dir / "train", WorldConfig(n_items=cfg.train_items, seed=cfg.train_seed))
    model, opt = build(cfg).to(device), torch.optim.AdamW(...)
    rng = np.random.default_rng(cfg.seed)                    # the loop's own draws come from here (or torch's)
    run = TrainingRun(out, cfg, steps=cfg.steps, seed=cfg.seed, device=device, data={"train": shop.hashes})
    run.track(model=model, optimizer=opt, ema=ema, rng=rng)  # what a checkpoint holds
    for step in run:                                         # resumes after OUT's last checkpoint, if any
        idx = torch.from_numpy(rng.integers(0, n, cfg.batch_size)).to(device)
        loss = ...; opt.zero_grad(); loss.backward(); opt.step(); ema.step(model.parameters())
        run.log(loss)                                        # a tensor: read every 25 steps, not each one
    with run.output() as tmp:                                # OUT replaced only when the block succeeds
        model.save_pretrained(tmp)
        report = run.write_report(tmp, what="...", held_out=evaluate(tmp))

A killed run, started again with the same config and OUT, goes on from its last checkpoint and
ends with the weights of an uninterrupted run. ``EpochOrder`` draws shuffled epochs whose order
survives a resume; ``config_from`` builds a config dataclass from a file and ``key=value``
overrides (the CLI's ``--config`` and ``--set``); ``setting`` gives a config field its help text.
"""

from tailorgen.training.config import config_as_json, config_from, config_hash, require, setting
from tailorgen.training.data import EpochOrder, TrainingShop, data_hashes, training_shop
from tailorgen.training.environment import resolve_device, setup
from tailorgen.training.errors import ConfigError, TrainingError
from tailorgen.training.report import trained_with, write_report
from tailorgen.training.run import CHECKPOINT_EVERY, TrainingRun, TrainingStopped
from tailorgen.training.schedule import set_lr, warmup_cosine

__all__ = [
    "CHECKPOINT_EVERY",
    "ConfigError",
    "EpochOrder",
    "TrainingError",
    "TrainingRun",
    "TrainingShop",
    "TrainingStopped",
    "config_as_json",
    "config_from",
    "config_hash",
    "data_hashes",
    "require",
    "resolve_device",
    "set_lr",
    "setting",
    "setup",
    "trained_with",
    "training_shop",
    "warmup_cosine",
    "write_report",
]
