"""Renders a Markdown file as GitHub renders a comment or a job summary (CommonMark
with GFM's tables, strikethrough and autolinks, raw HTML let through), with
markdown-it-py, and prints what the page holds as one JSON object:

- `tags`: how many of each element;
- `links`: each link's target and text;
- `rows`: each table row, a list of its cells' text;
- `code`: the text of each code span;
- `prose`: the text outside code spans, where GitHub would make mentions and links.

    python3 render_markdown.py FILE.md
"""

import json
import sys
from html.parser import HTMLParser

from markdown_it import MarkdownIt


class Page(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags = {}
        self.links = []
        self.rows = []
        self.code = []
        self.prose = []
        self._code_depth = 0
        self._link = None
        self._row = None
        self._cell = None

    def handle_starttag(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1
        if tag == "code":
            self._code_depth += 1
            self.code.append("")
        elif tag == "a":
            self._link = {"href": dict(attrs).get("href"), "text": ""}
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = ""

    def handle_endtag(self, tag):
        if tag == "code":
            self._code_depth -= 1
        elif tag == "a" and self._link is not None:
            self.links.append(self._link)
            self._link = None
        elif tag in ("td", "th") and self._cell is not None:
            self._row.append(self._cell)
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._code_depth:
            self.code[-1] += data
        else:
            self.prose.append(data)
        if self._link is not None:
            self._link["text"] += data
        if self._cell is not None:
            self._cell += data


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        text = f.read()
    html = MarkdownIt("gfm-like", {"html": True, "linkify": True}).render(text)
    page = Page()
    page.feed(html)
    page.close()
    json.dump(
        {
            "tags": page.tags,
            "links": page.links,
            "rows": page.rows,
            "code": page.code,
            "prose": "".join(page.prose),
            "html": html,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
