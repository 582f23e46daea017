"""Adapters layer: the outside world (ComfyUI, marketplaces, files) behind domain ports."""
