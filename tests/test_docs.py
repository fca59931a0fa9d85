"""The documentation book (mkdocs.yml, docs/): `mkdocs build --strict` succeeds from the repository's
root with no network, every page of the nav is built, the generated configuration reference is in
it, and the benchmarks page carries the results file that docs/hooks.py includes (read from
bench/results/ at test time, so the check follows the file). The include hook is also checked on
its own: a missing file stops the build, headings are demoted so that they nest."""

import html
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parent.parent
RESULTS = ROOT / "bench" / "results" / "2026-12-03.md"
PAGES = ["index.md", "concepts.md", "cluster.md", "security.md", "operations.md", "console.md",
         "cli.md", "migrating.md", "compatibility.md", "configuration.md", "benchmarks.md"]


def nav_pages():
    """The Markdown files of mkdocs.yml's nav, in order (the hooks' !!python tags are not used)."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    return [next(iter(entry.values())) if isinstance(entry, dict) else entry for entry in config["nav"]]


def built_page(site, page):
    """Where `mkdocs build` (use_directory_urls) writes a page."""
    return site / "index.html" if page == "index.md" else site / Path(page).stem / "index.html"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    p = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    # --strict fails on warnings; make sure none slipped through as a lower level either.
    assert "WARNING" not in p.stderr, p.stderr
    return out


def test_every_nav_page_is_built(site):
    assert nav_pages() == PAGES
    for page in PAGES:
        assert (ROOT / "docs" / page).is_file(), page
        out = built_page(site, page)
        assert out.is_file(), f"{page} was not built at {out}"
        # Each page starts with its own title.
        first = (ROOT / "docs" / page).read_text().lstrip().splitlines()[0]
        assert first.startswith("# "), f"{page} does not start with a # title: {first!r}"
    # The hook module is configuration, not content.
    assert not (site / "hooks.py").exists()


def test_configuration_reference_is_in_the_book(site):
    text = built_page(site, "configuration.md").read_text()
    for key in ("log.retention.ms", "min.insync.replicas", "auto.create.topics.enable",
                "controller.quorum.voters"):
        assert f"<code>{key}</code>" in text, key


def test_benchmarks_page_includes_the_results(site):
    text = built_page(site, "benchmarks.md").read_text()
    assert "<!-- include:" not in text
    lines = RESULTS.read_text().splitlines()
    # The results file's title becomes a second-level heading of the page.
    title = next(x[2:].strip() for x in lines if x.startswith("# "))
    assert re.search(r"<h2[^>]*>\s*" + re.escape(html.escape(title, quote=False)) + r"\s*</h2>", text), title
    # Its first figure row, cell by cell (name and Runnel's figure), is in the page's HTML table.
    row = next(x for x in lines if x.startswith("| ") and not x.startswith("| figure") and "---" not in x)
    name, runnel = [c.strip() for c in row.strip("|").split("|")][:2]
    assert f"<td>{html.escape(name, quote=False)}</td>" in text, name
    assert f"<td>{runnel}</td>" in text, runnel
    # And the other included results files are there too.
    for other in ("2026-12-03-cluster.md", "2026-12-03-scale.md", "2026-12-03-scale-row1-after-fixes.md"):
        other_title = next(x[2:].strip() for x in (ROOT / "bench" / "results" / other).read_text().splitlines()
                           if x.startswith("# "))
        assert html.escape(other_title, quote=False) in text, other


def load_hooks():
    spec = importlib.util.spec_from_file_location("runnel_docs_hooks", ROOT / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_include_hook_demotes_headings_and_refuses_missing_files(tmp_path):
    from mkdocs.exceptions import PluginError

    hooks = load_hooks()
    (tmp_path / "docs").mkdir()
    (tmp_path / "part.md").write_text("# Part\n\ntext\n\n```sh\n# a comment, not a heading\n```\n\n## Sub\n")
    config = {"docs_dir": str(tmp_path / "docs")}
    out = hooks.on_page_markdown("# Page\n\n<!-- include: part.md -->\n", None, config, None)
    assert "## Part" in out and "### Sub" in out and "\n# a comment, not a heading\n" in out
    assert "\n# Part" not in out and "<!-- include" not in out
    two = hooks.on_page_markdown("<!-- include: part.md demote=2 -->\n", None, config, None)
    assert "### Part" in two and "#### Sub" in two
    with pytest.raises(PluginError, match="missing.md"):
        hooks.on_page_markdown("<!-- include: missing.md -->\n", None, config, None)
    with pytest.raises(PluginError, match="leaves the repository"):
        hooks.on_page_markdown("<!-- include: ../outside.md -->\n", None, config, None)
