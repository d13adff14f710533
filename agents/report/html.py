"""HTML building blocks of the report: escaped tables, inline figures and the page around them.

The page is one self-contained file: system fonts, the stylesheet in a ``<style>`` element,
figures as inline ``<svg>`` (or a saved PNG as a ``data:`` URI), no script and no reference to
another host, so it opens offline, prints and can be e-mailed.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rec_env.agents.evaluation.style import svg_text

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["figure_html", "page", "paragraph", "png_html", "section", "table"]

STYLESHEET = """
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
  "Liberation Sans", sans-serif; color: #1d1d1f; max-width: 1180px; margin: 0 auto;
  padding: 24px 28px 48px; line-height: 1.45; font-size: 15px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 36px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 16px; margin: 22px 0 6px; }
.subtitle { color: #666; margin: 0 0 18px; }
.headline { font-size: 19px; background: #f4f7fb; border-left: 5px solid #1f5fae;
  padding: 14px 18px; margin: 12px 0 8px; }
.headline p { margin: 4px 0; }
nav { font-size: 14px; margin: 10px 0 0; }
nav a { margin-right: 14px; color: #1f5fae; text-decoration: none; }
.scroll { overflow-x: auto; margin: 8px 0 4px; }
table { border-collapse: collapse; font-size: 13.5px; }
th, td { padding: 5px 10px; border-bottom: 1px solid #e4e4e4; text-align: right; }
td { white-space: nowrap; }
th { background: #f6f6f6; font-weight: 600; vertical-align: bottom; max-width: 180px; }
th.text, td.text { text-align: left; }
td.text { white-space: normal; max-width: 420px; }
tr.best td { font-weight: 700; background: #fff7ea; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px;
  margin-right: 6px; vertical-align: baseline; }
figure { margin: 12px 0 18px; }
figure svg, figure img { max-width: 100%; height: auto; }
figcaption, .caption { color: #555; font-size: 13px; }
.note { color: #8a5a00; font-size: 13.5px; }
footer { margin-top: 40px; border-top: 1px solid #ddd; font-size: 12.5px; color: #444; }
footer code, footer td { font-size: 11.5px; word-break: break-all; }
@media print { body { max-width: none; padding: 0; } h2 { break-after: avoid; }
  figure { break-inside: avoid; } nav { display: none; } }
"""


def escape(text: object) -> str:
    """``text`` as HTML text (quotes escaped too)."""
    return html.escape(str(text), quote=True)


def paragraph(text: str, css: str = "") -> str:
    """A ``<p>`` of escaped text."""
    attribute = f' class="{css}"' if css else ""
    return f"<p{attribute}>{escape(text)}</p>"


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    caption: str = "",
    highlight: Iterable[int] = (),
    raw_first: bool = False,
    text_columns: int = 1,
) -> str:
    """An escaped HTML table, numbers right-aligned.

    Args:
        headers: Column headers.
        rows: Cells (escaped; the first one left as HTML with ``raw_first``, for a swatch).
        caption: A note below the table.
        highlight: Row indices drawn as the best (bold, shaded).
        raw_first: Whether the first cell of each row is trusted HTML.
        text_columns: Leading columns of text (left-aligned, wrapped); the rest are numbers.
    """
    marked = set(highlight)

    def css(j: int) -> str:
        return ' class="text"' if j < text_columns else ""

    head = "".join(f"<th{css(j)}>{escape(h)}</th>" for j, h in enumerate(headers))
    body = []
    for i, row in enumerate(rows):
        cells = [str(cell) if j == 0 and raw_first else escape(cell) for j, cell in enumerate(row)]
        mark = ' class="best"' if i in marked else ""
        body.append(
            f"<tr{mark}>" + "".join(f"<td{css(j)}>{c}</td>" for j, c in enumerate(cells)) + "</tr>"
        )
    note = f'<div class="caption">{escape(caption)}</div>' if caption else ""
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>{note}"
    )


def figure_html(fig: Figure, caption: str = "") -> str:
    """A figure as inline SVG in a ``<figure>``, with an optional caption."""
    note = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    return f"<figure>{svg_text(fig)}{note}</figure>"


def png_html(path: str | Path, alt: str, caption: str = "") -> str:
    """A saved PNG inlined as a ``data:`` URI (for pictures saved by other commands)."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    note = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img alt="{escape(alt)}" src="data:image/png;base64,{data}">{note}</figure>'


def section(anchor: str, title: str, body: Sequence[str]) -> str:
    """A titled ``<section>`` with an anchor for the navigation."""
    return f'<section id="{escape(anchor)}"><h2>{escape(title)}</h2>{"".join(body)}</section>'


def page(
    title: str,
    subtitle: str,
    headline: Sequence[str],
    sections: Sequence[tuple[str, str, str]],
    footer: str,
) -> str:
    """The whole HTML document.

    Args:
        title: The page title.
        subtitle: A line below it (what was compared, on how many customers).
        headline: Headline sentences (escaped).
        sections: ``(anchor, title, html)`` of each section, in order.
        footer: The footer's HTML.
    """
    links = "".join(f'<a href="#{escape(a)}">{escape(t)}</a>' for a, t, _ in sections)
    lead = "".join(f"<p>{escape(s)}</p>" for s in headline)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLESHEET}</style></head><body>"
        f"<header><h1>{escape(title)}</h1>"
        f'<p class="subtitle">{escape(subtitle)}</p>'
        + (f'<div class="headline">{lead}</div>' if lead else "")
        + f"<nav>{links}</nav></header><main>"
        + "".join(body for _, _, body in sections)
        + f"</main><footer>{footer}</footer></body></html>\n"
    )
