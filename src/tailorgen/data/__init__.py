"""Data layer: the schema, the Parquet store, dataset adapters, filtering and splits.

Writers anywhere in tailorgen name files after ids with ``id_file_name``/``id_file_stem`` (never
with the id itself), keep paths from data inside their folder with ``resolve_inside``, and replace
an existing output only if ``is_tailorgen_dataset`` (or their own check) says it is theirs.
"""

from tailorgen.data.clean import clean_interactions, clean_items
from tailorgen.data.errors import DataError, ImportReport, InvalidValue, UnknownIdError
from tailorgen.data.ids import OutsideRootError, id_file_name, id_file_stem, normalize_id, plain_name, resolve_inside
from tailorgen.data.schema import INTERACTIONS_SCHEMA, ITEMS_SCHEMA, QUERIES_SCHEMA, SCHEMA_VERSION
from tailorgen.data.store import Dataset, DatasetWriter, is_tailorgen_dataset
from tailorgen.data.validate import validate_dataset

__all__ = [
    "INTERACTIONS_SCHEMA",
    "ITEMS_SCHEMA",
    "QUERIES_SCHEMA",
    "SCHEMA_VERSION",
    "DataError",
    "Dataset",
    "DatasetWriter",
    "ImportReport",
    "InvalidValue",
    "OutsideRootError",
    "UnknownIdError",
    "clean_interactions",
    "clean_items",
    "id_file_name",
    "id_file_stem",
    "is_tailorgen_dataset",
    "normalize_id",
    "plain_name",
    "resolve_inside",
    "validate_dataset",
]
