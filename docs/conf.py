"""Sphinx configuration for taskq's documentation (MyST Markdown, furo theme)."""

project = "taskq"
author = "the taskq developers"
copyright = "the taskq developers"
release = "0.1.0"

extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
myst_heading_anchors = 3
exclude_patterns = ["_build"]

html_theme = "furo"
html_title = "taskq"
