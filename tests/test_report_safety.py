"""report.html is safe to open whatever the sweep or CSV it was made from: what the page did not write itself is
escaped (text and attributes), links go only to http(s) URLs, anchors and relative paths inside the sweep, and no
script, event handler or javascript: URL reaches the parsed page."""

from __future__ import annotations

import csv
from html.parser import HTMLParser
from pathlib import Path

import pytest

from sweep.analysis.main import main
from sweep.analysis.report.html import render, safe_href

PAYLOADS = ['"><script>alert(1)</script>', "<img src=x onerror=alert(1)>", "' onmouseover='alert(1)",
            "[click](javascript:alert(1))", "[click](JavaScript:alert`1`)", "[up](../../../etc/passwd)",
            "[abs](/etc/passwd)", "[data](data:text/html;base64,PHNjcmlwdD4=)"]


class PageAudit(HTMLParser):
    """Every tag, and the findings an attacker would want: script elements, on* attributes, unsafe URLs."""

    def __init__(self):
        super().__init__()
        self.findings: list[str] = []
        self.text: list[str] = []
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "iframe", "object", "embed"):
            self.findings.append(f"<{tag}>")
        for name, value in attrs:
            if name.lower().startswith("on"):
                self.findings.append(f"<{tag} {name}=...>")
            if name.lower() in ("href", "src", "action", "formaction", "xlink:href"):
                url = (value or "").strip().lower()
                if url.startswith(("javascript:", "vbscript:")) or (url.startswith("data:")
                                                                   and not url.startswith("data:image/png")):
                    self.findings.append(f"<{tag} {name}={value!r}>")
                if tag == "a":
                    self.hrefs.append(value or "")

    def handle_data(self, data):
        self.text.append(data)


def audit(page: str) -> PageAudit:
    parser = PageAudit()
    parser.feed(page)
    parser.close()
    return parser


def hostile_markdown() -> str:
    p = " ".join(PAYLOADS)
    return "\n".join([f"# Report {p}", "", f"A paragraph {p} with **bold {p}** and *it {p}* and `code {p}`.", "",
                      f"- a list item {p}", f"- [a fine link](isoflop.png) then {p}", "",
                      "| run | error |", "|---|---|", f"| {PAYLOADS[0]} | {PAYLOADS[1]} {PAYLOADS[3]} |", "",
                      f"![{PAYLOADS[0]}]({PAYLOADS[1]})", f"*{PAYLOADS[2]}*"])


def test_hostile_markdown_renders_inert_and_keeps_the_text_visible():
    page = render(hostile_markdown(), {}, {}, title=PAYLOADS[0])
    found = audit(page)
    assert found.findings == []
    assert found.hrefs == ["isoflop.png"]  # the one safe link kept; every hostile one shown as its text
    text = "".join(found.text)
    assert "<script>alert(1)</script>" in text and "onerror=alert(1)" in text  # shown as text, not as markup


@pytest.mark.parametrize("url,ok", [("https://arxiv.org/abs/2203.15556", True), ("HTTP://a.org", True),
                                    ("isoflop.png", True), ("#fig-isoflop", True), ("plots/fit_nd.svg", True),
                                    ("javascript:alert(1)", False), ("JAVASCRIPT:alert(1)", False),
                                    ("data:text/html,x", False), ("/etc/passwd", False), ("../x.png", False),
                                    ("a/../../b", False), ("//evil.org/x", False), ("file:///etc/passwd", False),
                                    ("\\\\host\\share", False)])
def test_links_only_to_http_anchors_and_paths_inside_the_sweep(url, ok):
    assert (safe_href(url) == url) is ok


def test_report_from_a_hostile_csv_has_no_script(tmp_path: Path, capsys):
    name = '"><img src=x onerror=alert(1)> javascript:alert(1)'
    path = tmp_path / f"{name}.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["n_params", "tokens", "loss", "group"])
        for i, n in enumerate([1e6, 2e6, 4e6, 8e6]):
            w.writerow([n, 20 * n, 3.0 - 0.1 * i, PAYLOADS[0]])
    out = tmp_path / "out"
    assert main(["--csv", str(path), "--out", str(out), "--wandb", "off", "--bootstrap", "5"]) == 0
    assert "onerror=alert(1)" in (out / "report.md").read_text()  # the payload did reach the report
    found = audit((out / "report.html").read_text())
    assert found.findings == []
    assert "onerror=alert(1)" in "".join(found.text)
