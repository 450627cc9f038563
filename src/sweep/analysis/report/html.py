"""report.html: report.md rendered as one self-contained page (no network, no script): its text through a small
markdown subset (headings, paragraphs, lists, tables, bold, italics, code), its figures embedded as PNG inside an
inline SVG that puts a tooltip on every run's point or curve (the run's name and numbers: hover to read them).
Plots the markdown does not show are added after its last figure.

Everything the page did not write itself (run names, file names, error texts: a received sweep or CSV) is escaped,
in text and in attributes, quotes included; a link is kept only to an http(s) URL, an anchor or a relative path
that stays inside the sweep, else its text is shown without it. Every pattern scans each character a bounded number
of times (no pattern can backtrack over a long field).
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from ...files import write_text_atomic

_IMAGE = re.compile(r"^!\[(?P<alt>[^\]]*)\]\((?P<src>[^)]+)\)$")
STYLE = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; margin: 0; }
main { max-width: 1180px; margin: 0 auto; padding: 1.5em 2em 4em; }
h1 { font-size: 1.6em; border-bottom: 1px solid #ddd; padding-bottom: .3em; }
h2 { font-size: 1.3em; margin-top: 1.8em; border-bottom: 1px solid #eee; }
table { border-collapse: collapse; margin: .8em 0; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; }
th { background: #f6f6f6; }
code { background: #f3f3f3; padding: .1em .3em; border-radius: 3px; font-size: 90%; }
figure { margin: 1.2em 0; }
figure svg, figure img { max-width: 100%; height: auto; }
figcaption { color: #555; font-style: italic; font-size: 13px; }
svg.plot circle { fill: transparent; stroke: none; }
svg.plot polyline { fill: none; stroke: transparent; stroke-width: 6; }
svg.plot circle:hover { fill: rgba(0, 0, 0, .3); }
svg.plot polyline:hover { stroke: rgba(0, 0, 0, .25); }
"""


# ----------------------------------------------------------------------------------------------- figures
def figure_html(name: str, plots, caption: str) -> str:
    """One plot as a <figure>: its PNG inside an inline SVG that lays a transparent mark with a <title> (a hover
    tooltip) over each run's point or line; the plain PNG if there are no marks."""
    data = base64.b64encode(Path(plots[name]).read_bytes()).decode()
    hover = getattr(plots, "hover", {}).get(name) or {}
    alt = html.escape(caption)
    if not hover.get("marks"):
        body = f'<img alt="{alt}" src="data:image/png;base64,{data}">'
    else:
        w, h = hover["width"], hover["height"]
        marks = []
        for m in hover["marks"]:
            title = f"<title>{html.escape(m['label'])}</title>"
            if "line" in m:
                pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in m["line"])
                marks.append(f'<polyline points="{pts}">{title}</polyline>')
            else:
                marks.append(f'<circle cx="{m["xy"][0]:.1f}" cy="{m["xy"][1]:.1f}" r="5">{title}</circle>')
        body = (f'<svg class="plot" viewBox="0 0 {w} {h}" width="100%" style="max-width: {w}px" role="img" '
                f'aria-label="{alt}"><image href="data:image/png;base64,{data}" width="{w}" height="{h}"/>'
                + "".join(marks) + "</svg>")
    return f'<figure id="fig-{html.escape(name)}">{body}<figcaption>{alt}</figcaption></figure>'


# ---------------------------------------------------------------------------------------------- markdown
_BOLD = re.compile(r"\*\*((?:[^*]|\*(?!\*))+?)\*\*")
_ITALIC = re.compile(r"(?<![\w*])\*(?!\s)([^*]+?)(?<!\s)\*(?![\w*])")
_LINK = re.compile(r"\[([^\[\]]+)\]\(([^()\s]+)\)")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def safe_href(url: str) -> str | None:
    """url if a report may link to it: http(s), an anchor, or a relative path that stays inside the sweep (no
    scheme, not absolute, no `..`); else None."""
    if re.match(r"^https?://[^\s]+$", url, re.IGNORECASE):
        return url
    if _SCHEME.match(url) or url.startswith(("/", "\\")) or "\\" in url:
        return None
    return None if ".." in re.split(r"[/#?]", url) else url


def _emphasis(s: str) -> str:
    s = _BOLD.sub(r"<strong>\1</strong>", s)
    return _ITALIC.sub(r"<em>\1</em>", s)


def inline(text: str) -> str:
    """Escape (quotes too), then `code`, **bold**, *italics* and [links](url), a link only to a safe_href."""
    out = []
    for part in re.split(r"(`[^`]*`)", text):
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append(f"<code>{html.escape(part[1:-1])}</code>")
            continue
        pos = 0
        for m in _LINK.finditer(part):  # links found on the raw text, so the URL is checked as written
            out.append(_emphasis(html.escape(part[pos:m.start()])))
            label, href = _emphasis(html.escape(m[1])), safe_href(m[2])
            out.append(f'<a href="{html.escape(href)}">{label}</a>' if href else label)
            pos = m.end()
        out.append(_emphasis(html.escape(part[pos:])))
    return "".join(out)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def markdown_html(text: str, figure) -> str:
    """The markdown subset report.md uses, as HTML; figure(src, alt, caption) renders an image line (with the
    italic line after it as its caption)."""
    lines, out, i = text.splitlines(), [], 0
    while i < len(lines):
        line = lines[i].rstrip()
        if not line.strip():
            i += 1
        elif m := re.match(r"^(#{1,6})\s+(.*)$", line):
            out.append(f"<h{len(m[1])}>{inline(m[2])}</h{len(m[1])}>")
            i += 1
        elif m := _IMAGE.match(line.strip()):
            caption, i = m["alt"], i + 1
            if i < len(lines) and re.fullmatch(r"\*[^*].*\*", lines[i].strip()):
                caption, i = lines[i].strip()[1:-1], i + 1
            out.append(figure(m["src"], m["alt"], caption))
        elif line.lstrip().startswith("|"):
            rows = []
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                rows.append(_cells(lines[i]))
                i += 1
            head, body = rows[0], [r for r in rows[1:] if not all(re.fullmatch(r":?-+:?", c) for c in r)]
            out.append("<table><thead><tr>" + "".join(f"<th>{inline(c)}</th>" for c in head) + "</tr></thead><tbody>"
                       + "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>" for r in body)
                       + "</tbody></table>")
        elif re.match(r"^\s*[-*]\s+", line):
            items = []
            while i < len(lines) and re.match(r"^\s*[-*]\s+", lines[i]):
                items.append(re.sub(r"^\s*[-*]\s+", "", lines[i]))
                i += 1
            out.append("<ul>" + "".join(f"<li>{inline(t)}</li>" for t in items) + "</ul>")
        else:
            para = [line.strip()]  # a line no other block took (e.g. `#tag`, a broken image) is text
            i += 1
            while i < len(lines) and lines[i].strip() and not re.match(r"^(#|\||\s*[-*]\s|!\[)", lines[i]):
                para.append(lines[i].strip())
                i += 1
            out.append(f"<p>{inline(' '.join(para))}</p>")
    return "\n".join(out)


def render(markdown: str, plots, captions: dict[str, str], title: str) -> str:
    """The page: the markdown with its figures inline, then any plot it did not show."""
    shown: list[str] = []

    def figure(src, alt, caption):
        name = Path(src).stem
        if name not in plots:
            return f"<p>{inline(alt)} (figure {html.escape(src)} not available)</p>"
        shown.append(name)
        return figure_html(name, plots, caption)

    body = markdown_html(markdown, figure)
    extra = [figure_html(n, plots, captions.get(n, n)) for n in plots if n not in shown]
    if extra:
        marker = body.rfind("</figure>")
        cut = marker + len("</figure>") if marker >= 0 else len(body)
        head = "" if marker >= 0 else "<h2>Figures</h2>"
        body = body[:cut] + head + "\n".join(extra) + body[cut:]
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>'
            f"<body><main>\n{body}\n</main></body></html>\n")


def write_html(report_md: Path, plots, captions: dict[str, str], out: Path) -> Path:
    """report.html next to report.md, from its text and the plots (a PlotSet: PNG paths and where their points are)."""
    text = Path(report_md).read_text()
    title = next((ln.lstrip("# ").strip() for ln in text.splitlines() if ln.startswith("# ")), "Scaling-law analysis")
    path = Path(out) / "report.html"
    write_text_atomic(path, render(text, plots, captions, title))
    return path
