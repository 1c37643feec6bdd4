"""Baselines the benchmark compares against (``srnn bench``)."""
