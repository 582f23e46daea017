"""Adapters layer data: the files POD Studio ships (default workflow, product templates, style
sheet, icons).

Kept at the top of the checkout; the build installs this folder as ``pod_studio.resources``
(see setup.py), read through ``pod_studio.adapters.storage.resources``.
"""
