"""Data layer: the schema, the Parquet store, dataset adapters, filtering and splits."""

from tailorgen.data.errors import DataError, ImportReport
from tailorgen.data.schema import INTERACTIONS_SCHEMA, ITEMS_SCHEMA, QUERIES_SCHEMA, SCHEMA_VERSION
from tailorgen.data.store import Dataset, DatasetWriter, clean_interactions, clean_items

__all__ = [
    "INTERACTIONS_SCHEMA",
    "ITEMS_SCHEMA",
    "QUERIES_SCHEMA",
    "SCHEMA_VERSION",
    "DataError",
    "Dataset",
    "DatasetWriter",
    "ImportReport",
    "clean_interactions",
    "clean_items",
]
