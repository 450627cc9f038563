"""Hydra configs, shipped as package data so `sweep` finds them when installed."""
