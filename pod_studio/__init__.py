"""POD Studio: generate print-on-demand designs on ComfyUI and publish them to marketplaces.

The version is set here only: the build reads it (pyproject.toml), and ``--version``, the About
box, the self test and the User-Agent of every request use it.
"""

__version__ = "0.1.0"
APP_NAME = "POD Studio"
USER_AGENT = f"POD-Studio/{__version__}"
"""Sent with every HTTP request and websocket handshake to ComfyUI and the marketplaces."""
