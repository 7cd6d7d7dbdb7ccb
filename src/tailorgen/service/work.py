"""What a generation request does on a worker thread: call the library, write the files into a new
request folder, and give back the record with URLs in place of file paths."""

from __future__ import annotations

from pathlib import Path

from tailorgen.common.manifest import write_json
from tailorgen.generation.iamg import save_generation
from tailorgen.service.outputs import Outputs
from tailorgen.unified.records import generated_record, imagined_record
from tailorgen.unified.sample import SamplingSettings


def _with_urls(outputs: Outputs, request_id: str, record: dict) -> dict:
    return record | {"request_id": request_id, "images": [outputs.url(request_id, p) for p in record["images"]]}


def _save_pngs(images, folder: Path) -> list[str]:
    names = [f"image_{j}.png" for j in range(len(images))]
    for image, name in zip(images, names, strict=True):
        image.save(folder / name)
    return names


def personalize(gen, req, outputs: Outputs, checkpoints: dict) -> dict:
    g = gen.generate(req.user, req.item, req.n, req.seed, req.method,
                     guidance_scale=req.guidance, num_inference_steps=req.steps)  # fmt: skip
    request_id, record = outputs.write(lambda folder: save_generation(g, folder, checkpoints))
    return _with_urls(outputs, request_id, record)


def imagine(model, req, outputs: Outputs) -> dict:
    settings = SamplingSettings(guidance=req.guidance, temperature=req.temperature, top_k=req.top_k, top_p=req.top_p)
    made = model.imagine(req.user, req.keywords, req.n, settings, req.seed)

    def fill(folder: Path) -> dict:
        record = imagined_record(req.user, req.keywords, made, _save_pngs(made.images, folder), model.model_dir)
        write_json(folder / "record.json", record)
        return record

    request_id, record = outputs.write(fill)
    return _with_urls(outputs, request_id, record)


def generate_next(model, req, outputs: Outputs) -> dict:
    [made] = model.generate([req.user], req.n, req.seed)

    def fill(folder: Path) -> dict:
        record = generated_record(req.user, req.seed, made, _save_pngs(made["images"], folder), model.folder)
        write_json(folder / "record.json", record)
        return record

    request_id, record = outputs.write(fill)
    return _with_urls(outputs, request_id, record)
