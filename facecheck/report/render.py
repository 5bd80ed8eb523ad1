"""report.html from its view model, through the Jinja2 template shipped in report/templates/.

The environment escapes every value by default (autoescape): file names and reasons come from the
scanned folder and are attacker-controlled. Nothing is marked safe: the SVG overlays are drawn by
the template from numbers, and thumbnails are data: URIs, which escaping leaves as they are. A
missing value in the template is an error (StrictUndefined), never a blank on the page.
"""
from __future__ import annotations

from functools import lru_cache

import jinja2

TEMPLATE = "report.html.j2"


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("facecheck.report", "templates"),
                              autoescape=True, undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


def render(view: dict) -> str:
    return environment().get_template(TEMPLATE).render(view)
