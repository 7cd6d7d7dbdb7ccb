"""`tailorgen data stats|split|fetch-images` (filled in by the splits/downloader work)."""
