"""Loaders for the small datasets that ship with fusedrnn (in datasets/data, with attribution)."""
