"""Build glue: ``resources/`` (top level in the checkout) ships inside the wheel as
``pod_studio.resources``.

pyproject.toml cannot both discover the ``pod_studio*`` packages and add one mapped from
another folder, so the package list is computed here; everything else is in pyproject.toml.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["pod_studio", "pod_studio.*"]), "pod_studio.resources"],
    package_dir={"pod_studio.resources": "resources"},
)
