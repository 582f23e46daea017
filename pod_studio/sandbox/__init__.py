"""Sandbox servers: stand-ins that speak the real ComfyUI and marketplace protocols on 127.0.0.1.

Written independently of ``pod_studio.adapters``: nothing here imports the rest of the package.
"""
