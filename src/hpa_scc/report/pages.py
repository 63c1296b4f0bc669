"""Self-contained HTML pages."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Sequence

from hpa_scc.core.classes import CLASSES
from hpa_scc.core.files import atomic_write_text
from hpa_scc.report.pictures import label_colours


def write_html(path: str | Path, title: str, sections: Sequence[tuple[str, str]]) -> Path:
    """A self-contained HTML page: `sections` are (heading, HTML body) pairs; images by relative path."""
    body = "\n".join(f"<h2>{html.escape(heading)}</h2>\n{content}" for heading, content in sections)
    page = (f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}img{max-width:100%}"
            "td,th{padding:2px 8px;text-align:left}</style></head>\n"
            f"<body><h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n")

    atomic_write_text(path, page)
    return Path(path)


def legend_html() -> str:
    """HTML table of the class colours used by `top_label_overlay`."""
    cells = "".join(f"<tr><td style='background:rgb{c}'>&nbsp;&nbsp;&nbsp;</td><td>{k.index}</td><td>{k.name}</td></tr>"
                    for k, c in zip(CLASSES, label_colours()))
    return f"<table>{cells}</table>"
