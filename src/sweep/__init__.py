"""sweep: train grids of small GPT models and fit scaling laws to them."""

__version__ = "0.1.0"
