"""`tailorgen data import ...` (filled in by the adapters work)."""
