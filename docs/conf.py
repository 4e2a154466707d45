"""Sphinx configuration for pycnn's documentation.

Build (warnings are errors, as in CI)::

    pip install ".[docs]"
    sphinx-build -W --keep-going -b html docs docs/_build/html
    sphinx-build -W --keep-going -b doctest docs docs/_build/doctest
"""

import pycnn

project = "pycnn"
author = "the pycnn developers"
copyright = "2026, the pycnn developers"
release = pycnn.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",  # numpydoc-style sections (Parameters, Returns, Shape, Examples)
    "sphinx.ext.doctest",  # `-b doctest` runs the >>> examples of these pages and docstrings
]

napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_custom_sections = [("Shape", "params_style")]
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": False}

# every doctest starts from the same imports
doctest_global_setup = """
import numpy as np
import pycnn
from pycnn import functional as F, reference as R
"""

exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path: list[str] = []
html_title = f"pycnn {release}"
