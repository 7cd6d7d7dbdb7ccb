"""Small utilities every stage may use: atomic writes, hashing, manifests, seeding.

This package imports nothing else from tailorgen, so any stage can depend on it.
"""

from tailorgen.common.atomic import atomic_dir, atomic_write_bytes, atomic_write_text
from tailorgen.common.hashing import component_hashes, hash_bytes, hash_file, hash_tree
from tailorgen.common.manifest import environment_versions, read_json, write_json

__all__ = [
    "atomic_dir",
    "atomic_write_bytes",
    "atomic_write_text",
    "component_hashes",
    "environment_versions",
    "hash_bytes",
    "hash_file",
    "hash_tree",
    "read_json",
    "write_json",
]
