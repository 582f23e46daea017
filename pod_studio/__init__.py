"""POD Studio: generate print-on-demand designs on ComfyUI and publish them to marketplaces."""

__version__ = "0.1.0"
APP_NAME = "POD Studio"
