"""`tailorgen world ...`."""
