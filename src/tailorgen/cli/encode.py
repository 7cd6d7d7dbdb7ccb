"""`tailorgen encode` and `tailorgen judge`."""

from __future__ import annotations

import json

import click

from tailorgen.cli import main
from tailorgen.cli.options import device_option


@main.command("encode")
@click.argument("dataset_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--modality", type=click.Choice(["text", "image", "both"]), default="both", show_default=True)
@click.option(
    "--text-model",
    default="minilm",
    show_default=True,
    help="'minilm' (embedded), a sentence-transformers folder or hub name, or clip:PATH for CLIP/SigLIP.",
)
@click.option(
    "--image-model",
    default=None,
    help="Folder of a tailorgen image encoder (default: the shipped one), or clip:PATH for CLIP/SigLIP.",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where embeddings are cached (default: DATASET_DIR/embeddings).",
)
@device_option()
def encode(dataset_dir, modality, text_model, image_model, cache_dir, device) -> None:
    """Embed every item of DATASET_DIR by text and/or image.

    Embeddings are L2-normalized and cached, keyed by the model's weights and the dataset's
    content hash, so a second run with the same inputs reads them from disk.
    """
    from tailorgen.data import Dataset
    from tailorgen.encoders import encode_catalog
    from tailorgen.encoders.factory import make_encoder

    ds = Dataset(dataset_dir)
    result = {}
    for m in ("text", "image") if modality == "both" else (modality,):
        encoder = make_encoder(m, text_model if m == "text" else image_model, device=device)
        ids, vectors = encode_catalog(ds, encoder, cache_dir=cache_dir)
        result[m] = {"items": len(ids), "dim": int(vectors.shape[1]), "encoder": encoder.fingerprint}
    click.echo(json.dumps(result, indent=2))


@main.command("judge")
@click.argument("dataset_dir", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--judge",
    "judge_path",
    type=click.Path(file_okay=False),
    default=None,
    help="Judge checkpoint folder (default: the one shipped with tailorgen).",
)
@click.option(
    "--limit", type=click.IntRange(min=1), default=None, help="Score only the first N items (N >= 1) [default: all]."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def judge(dataset_dir, judge_path, limit, as_json) -> None:
    """Per-attribute accuracy of the judge on DATASET_DIR (a shop with ground truth, any seed).

    The judge reads category, colour, pattern and second colour off each item image and is
    compared with the shop's hidden truth. It is for evaluation only.
    """
    from tailorgen.evaluation.judge import Judge, judge_accuracy

    result = judge_accuracy(Judge(judge_path), dataset_dir, limit=limit)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"judge {result['judge']} on {result['items']} items of {result['dataset']}")
    for attr, acc in result["accuracy"].items():
        click.echo(f"  {attr:<17} {100 * acc:6.2f}%")
