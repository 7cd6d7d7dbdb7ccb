"""The on-disk schema that every dataset (a built shop or an imported public dataset) uses.

A dataset is a directory::

    manifest.json          source, counts, content hashes, schema version, tailorgen version
    items.parquet          ITEMS_SCHEMA
    interactions.parquet   INTERACTIONS_SCHEMA
    queries.parquet        QUERIES_SCHEMA (optional)
    images/                image files referenced by items.image (relative paths)
    import_report.json     rows skipped on import, with file, line, field and reason
    splits/NAME/           split files written by tailorgen.data.splits
    truth/                 hidden ground truth (simulated shop only); never read by the loader
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 1

ITEMS_SCHEMA = pa.schema(
    [
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("title", pa.string(), nullable=False),
        pa.field("description", pa.string()),
        pa.field("category", pa.string()),
        pa.field("tags", pa.list_(pa.string())),
        # Relative path under the dataset directory (or absolute); null when there is no image yet.
        pa.field("image", pa.string()),
        # Encoded image bytes, for datasets that keep images inside the Parquet file.
        pa.field("image_bytes", pa.binary()),
        # Where the image came from, for adapters whose source lists URLs (Amazon imUrl, posters).
        pa.field("image_url", pa.string()),
        pa.field("brand", pa.string()),
        pa.field("price", pa.float64()),
        # Remaining source fields as one JSON object, so nothing from the source is lost.
        pa.field("extra", pa.string()),
    ]
)

INTERACTIONS_SCHEMA = pa.schema(
    [
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("item_id", pa.string(), nullable=False),
        # Seconds since the Unix epoch (the simulated shop uses its own clock starting at 0).
        pa.field("timestamp", pa.int64(), nullable=False),
        pa.field("rating", pa.float32()),
        pa.field("review", pa.string()),
    ]
)

QUERIES_SCHEMA = pa.schema(
    [
        pa.field("query_id", pa.string(), nullable=False),
        pa.field("user_id", pa.string()),
        pa.field("query", pa.string(), nullable=False),
        pa.field("target_item_id", pa.string(), nullable=False),
        pa.field("timestamp", pa.int64()),
    ]
)

REQUIRED_ITEM_FIELDS = ("item_id", "title")
REQUIRED_INTERACTION_FIELDS = ("user_id", "item_id", "timestamp")

TABLES = {
    "items": ("items.parquet", ITEMS_SCHEMA),
    "interactions": ("interactions.parquet", INTERACTIONS_SCHEMA),
    "queries": ("queries.parquet", QUERIES_SCHEMA),
}


def empty_item_row() -> dict:
    return {name: None for name in ITEMS_SCHEMA.names}
