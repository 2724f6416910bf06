"""The one-page summary of an evaluation, as Markdown and as standalone HTML.

Both show the same content: model id, benchmark, protocol, tables of the headline metrics with confidence
intervals, the per-label table and links to the plots.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Section:
    """A titled table: `header` and `rows` of already-formatted cells."""

    title: str
    header: Sequence[str]
    rows: list[Sequence[str]] = field(default_factory=list)


def fmt(value: float, ci: tuple[float, float] | None = None) -> str:
    """`0.853 [0.801, 0.897]`; `n/a` for NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    text = f"{value:.3f}"
    if ci is not None and all(math.isfinite(v) for v in ci):
        text += f" [{ci[0]:.3f}, {ci[1]:.3f}]"
    return text


def write_summary(
    out_dir: Path, title: str, facts: Mapping[str, str], sections: Sequence[Section], plots: Sequence[Path]
) -> tuple[Path, Path]:
    """Write `summary.md` and `summary.html` into `out_dir`; plot paths are linked relative to it."""
    md = [f"# {title}", "", "| | |", "|---|---|"]
    md += [f"| {k} | {str(v).replace('|', '/')} |" for k, v in facts.items()]
    for section in sections:
        md += [
            "",
            f"## {section.title}",
            "",
            "| " + " | ".join(section.header) + " |",
            "|" + "---|" * len(section.header),
        ]
        md += ["| " + " | ".join(str(c) for c in row) + " |" for row in section.rows]
    if plots:
        md += ["", "## Plots", ""]
        md += [f"![{p.stem}]({p.relative_to(out_dir).as_posix()})" for p in plots]
    md_path = out_dir / "summary.md"
    md_path.write_text("\n".join(md) + "\n")

    esc = html.escape
    body = [f"<h1>{esc(title)}</h1>", "<table>"]
    body += [f"<tr><th>{esc(k)}</th><td>{esc(str(v))}</td></tr>" for k, v in facts.items()]
    body.append("</table>")
    for section in sections:
        body += [
            f"<h2>{esc(section.title)}</h2>",
            "<table>",
            "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in section.header) + "</tr>",
        ]
        body += ["<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in row) + "</tr>" for row in section.rows]
        body.append("</table>")
    if plots:
        body.append("<h2>Plots</h2>")
        body += [
            f'<figure><img src="{esc(p.relative_to(out_dir).as_posix())}" alt="{esc(p.stem)}">'
            f"<figcaption>{esc(p.stem)}</figcaption></figure>"
            for p in plots
        ]
    style = (
        "body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}img{max-width:32em}"
    )
    html_path = out_dir / "summary.html"
    html_path.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n"
    )
    return md_path, html_path
