"""Adapters layer: the ComfyUI REST + websocket client (implements ``ImageGenerator``)."""
