"""Rendering a digest: the Jinja environment, HTML and text parts, CSS inlined once per issue."""
