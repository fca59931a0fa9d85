"""MkDocs hooks of Runnel's book (mkdocs.yml: `hooks: [docs/hooks.py]`).

`on_page_markdown` replaces every line of the form

    <!-- include: bench/results/NAME.md -->

with the contents of that file, its path taken from the repository's root (the parent of
docs_dir), so that a page can show results that live outside docs/ without copying them. The
included file's headings are demoted by one level (`# T` becomes `## T`) so that they nest under
the including page's title; `<!-- include: PATH demote=2 -->` demotes by two. Headings inside
fenced code blocks are left alone. A missing file, or a path that leaves the repository, stops
the build with an error naming the page and the path.
"""

import re
from pathlib import Path

from mkdocs.exceptions import PluginError

INCLUDE = re.compile(r"^[ \t]*<!--\s*include:\s*(?P<path>\S+?)(?:\s+demote=(?P<demote>[12]))?\s*-->[ \t]*$")
FENCE = re.compile(r"^[ \t]*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})(?=\s|$)")


def demote_headings(text, levels):
    """Adds `levels` to every ATX heading outside fenced code blocks (at most level 6)."""
    out = []
    fence = None
    for line in text.splitlines():
        m = FENCE.match(line)
        if m:
            if fence is None:
                fence = m.group(1)
            elif m.group(1) == fence:
                fence = None
        elif fence is None:
            h = HEADING.match(line)
            if h:
                line = "#" * min(6, len(h.group(1)) + levels) + line[len(h.group(1)):]
        out.append(line)
    return "\n".join(out)


def include_files(markdown, root, page_name="(page)"):
    """The page's Markdown with every include line replaced by the file it names."""
    root = Path(root).resolve()
    out = []
    for line in markdown.splitlines():
        m = INCLUDE.match(line)
        if not m:
            out.append(line)
            continue
        path = (root / m.group("path")).resolve()
        if root not in path.parents:
            raise PluginError(f"{page_name}: include of {m.group('path')!r} leaves the repository")
        if not path.is_file():
            raise PluginError(f"{page_name}: included file {m.group('path')!r} does not exist ({path})")
        levels = int(m.group("demote") or 1)
        # Blank lines around it so that its first heading or table starts a block of its own.
        out.extend(["", demote_headings(path.read_text(encoding="utf-8"), levels), ""])
    return "\n".join(out) + ("\n" if markdown.endswith("\n") else "")


def on_page_markdown(markdown, page, config, files):
    root = Path(config["docs_dir"]).resolve().parent
    name = getattr(getattr(page, "file", None), "src_uri", "(page)")
    return include_files(markdown, root, name)
