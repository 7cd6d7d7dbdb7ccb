import json

import numpy as np

from tailorgen.generation import PersonalizedImagePipeline


def test_a_short_training_run_saves_a_working_pipeline(tiny_generator):
    path, report = tiny_generator
    assert report["examples"] == 120 and 0 < report["personalize_examples"] < 120
    saved = json.loads((path / "training_report.json").read_text())
    assert saved["config"]["train_seed"] == 5001
    assert np.isfinite(report["loss_curve"]).all()
    pipe = PersonalizedImagePipeline.from_pretrained(str(path))
    assert pipe.unet.config.cross_attention_dim == 32
    assert sum(p.numel() for p in pipe.conditioner.parameters()) == report["parameters"]["conditioner"]
    assert sum(p.numel() for p in pipe.unet.parameters()) == report["parameters"]["unet"]
