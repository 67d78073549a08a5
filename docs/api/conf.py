"""Sphinx configuration of the API reference, generated from the docstrings.

Build it against the installed package (the compiled shim is part of it):

    sphinx-build -W --keep-going -b html docs/api build/docs-api
"""

from __future__ import annotations

import importlib.metadata

project = "eventfd_ext"
author = "the eventfd_ext developers"
copyright = "2026, the eventfd_ext developers"
release = importlib.metadata.version("eventfd_ext")
version = release

extensions = ["sphinx.ext.autodoc"]

# The reference is for what the package exports: eventfd_ext.__all__.
autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_preserve_defaults = True

html_theme = "alabaster"
html_title = f"eventfd_ext {release} API"
exclude_patterns = ["_build"]
