"""`tailorgen demo`."""
