"""A strict-enough HTML check for generated pages: html.parser plus balanced tags, unique ids, alt
text on images and no external resources (the report must be self-contained)."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
# Elements whose end tag HTML lets the parser infer; the templates close them anyway.
OPTIONAL_END = {"p", "li", "dt", "dd", "tr", "td", "th", "thead", "tbody"}


class Checker(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, tuple]] = []
        self.errors: list[str] = []
        self.ids: dict[str, int] = {}
        self.images: list[dict] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids[a["id"]] = self.ids.get(a["id"], 0) + 1
        if tag == "img":
            self.images.append(a)
            if not a.get("alt"):
                self.errors.append(f"img without alt at {self.getpos()}")
        for key in ("src", "href"):
            v = a.get(key)
            if v and not v.startswith(("data:", "#")):
                self.errors.append(f"external resource {key}={v[:60]!r} at {self.getpos()}")
        if tag not in VOID:
            self.stack.append((tag, self.getpos()))

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        if tag in VOID:
            self.errors.append(f"end tag for void element {tag} at {self.getpos()}")
            return
        if not self.stack:
            self.errors.append(f"unexpected </{tag}> at {self.getpos()}")
            return
        open_tag, pos = self.stack.pop()
        if open_tag != tag:
            self.errors.append(f"</{tag}> at {self.getpos()} closes <{open_tag}> opened at {pos}")

    def handle_data(self, data):
        self.text.append(data)


def check_html(page: str) -> Checker:
    c = Checker()
    c.feed(page)
    c.close()
    assert page.lstrip().lower().startswith("<!doctype html>")
    assert not c.errors, c.errors[:10]
    assert not c.stack, f"unclosed: {c.stack[:5]}"
    dup = {k: v for k, v in c.ids.items() if v > 1}
    assert not dup, f"duplicate ids {dup}"
    return c


def text_of(page: str) -> str:
    """The page's visible text, whitespace collapsed."""
    c = Checker()
    c.feed(re.sub(r"<style.*?</style>", "", page, flags=re.DOTALL))
    return " ".join(" ".join(c.text).split())


def figure_svg(page: str, figure_id: str) -> str:
    """The SVG inside <figure id=figure_id> (decoded from its data URI)."""
    m = re.search(
        rf'<figure id="{figure_id}"[^>]*>.*?<img src="data:image/svg\+xml;base64,([^"]+)"',
        page,
        flags=re.DOTALL,
    )
    assert m, f"no figure {figure_id}"
    return base64.b64decode(m.group(1)).decode("utf-8")


def row_cells(page: str, paramcd: str) -> tuple[str, list[str]]:
    """(class, cell texts) of the primary-table row for paramcd."""
    m = re.search(rf'<tr class="([^"]*)" data-paramcd="{paramcd}">(.*?)</tr>', page, flags=re.DOTALL)
    assert m, f"no row for {paramcd}"
    cells = re.findall(r"<td[^>]*>(.*?)</td>", m.group(2), flags=re.DOTALL)
    return m.group(1), [" ".join(re.sub(r"<[^>]+>", " ", c).split()) for c in cells]
