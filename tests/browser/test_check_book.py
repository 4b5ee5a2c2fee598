"""The browser check must catch what it promises: each defect injected into a small page fails it.

Needs Chromium + ChromeDriver (``apt-get install chromium chromium-driver``; CI installs them) and
selenium (``pip install -e .[browser]``); skipped, with the reason, where either is missing. The
page loads the MathJax copy that the book ships (``sphinx-mathjax-offline``), so it runs offline.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import check_book  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("selenium") is None,
                       reason="selenium is not installed (pip install -e '.[browser]')"),
    pytest.mark.skipif(not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()),
                       reason=f"{CHROMIUM} / {CHROMEDRIVER} not found (apt-get install chromium chromium-driver)"),
]

PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><script defer src="mathjax/tex-chtml.js"></script></head>
<body><article class="bd-article"><h1>A page</h1><p id="here">A formula
<span class="math notranslate nohighlight">\\(f(r) = \\sum_s m_s m_{{s+r}}\\)</span> and a
<a class="reference internal" href="#here">link</a>.</p>{snippet}</article></body></html>"""


def _cell(output: str, tags: str = "", source: str = "x = 1") -> str:
    return (f'<div class="cell {tags} docutils container"><div class="cell_input"><pre>{source}</pre></div>'
            f'<div class="cell_output docutils container">{output}</div></div>')


DEFECTS = {
    "math-error": ('<p><span class="math notranslate nohighlight">\\(a}\\)</span></p>', "could not render"),
    "undefined-macro": ('<p><span class="math notranslate nohighlight">\\(\\notamacro x\\)</span></p>', "undefined"),
    "raw-tex": ('<p><span class="math notranslate nohighlight">\\(\\frac{a\\)</span></p>', "raw TeX"),
    "missing-file": ('<p><a class="reference internal" href="elsewhere.html">x</a></p>', "broken link"),
    "missing-anchor": ('<p><a class="reference internal" href="#nowhere">x</a></p>', "broken link"),
    "role-as-text": ("<p>as shown by {cite}`robertson2023`</p>", "roles left as text"),
    "unresolved-citation": ('<p><span class="problematic">[nobody2099]</span></p>', "unresolved"),
    "raw-table": ("<p>| a | b |\n|---|---|\n| 1 | 2 |</p>", "raw text"),
    "warning-output": (_cell('<div class="output stderr"><pre>UserWarning: careful</pre></div>'), "error or warning"),
    "traceback-output": (_cell('<div class="output traceback"><pre>ValueError</pre></div>'), "error or warning"),
    "widget-alone": (_cell('<script type="application/vnd.jupyter.widget-view+json">{"model_id": "m"}</script>'),
                     "static fallback"),
    "printed-table": (_cell('<div class="output stream"><pre>| a | b |\n|---|---|\n</pre></div>'), "raw text"),
    "broken-image": ('<p><img src="missing.png"></p>', "did not load"),
}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    folder = tmp_path_factory.mktemp("site")
    spec = importlib.util.find_spec("sphinx-mathjax-offline")
    if spec is None or spec.origin is None:
        pytest.fail("sphinx-mathjax-offline is not installed (it is in the book's dependencies)")
    (folder / "mathjax").symlink_to(Path(spec.origin).parent / "static" / "mathjax", target_is_directory=True)
    return folder


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    browser = check_book.open_browser(str(tmp_path_factory.mktemp("profile")))
    yield browser
    browser.quit()


def _page(site: Path, name: str, snippet: str) -> Path:
    page = site / f"{name}.html"
    page.write_text(PAGE.format(snippet=snippet), encoding="utf-8")
    return page


def test_a_clean_page_passes(site, driver):
    passed = check_book.run_checks(driver, _page(site, "clean", ""), chapter=False)
    assert any("1 formulas typeset" in line for line in passed), passed


def test_a_warning_shown_on_purpose_passes(site, driver):
    snippet = _cell('<div class="output stderr"><pre>UserWarning: expected</pre></div>', tags="tag_shows-warning")
    check_book.run_checks(driver, _page(site, "on-purpose", snippet), chapter=False)


@pytest.mark.parametrize("name", sorted(DEFECTS))
def test_each_defect_fails_the_page(site, driver, name):
    snippet, message = DEFECTS[name]
    with pytest.raises(check_book.CheckFailed, match=message):
        check_book.run_checks(driver, _page(site, name, snippet), chapter=False)


def test_a_chapter_without_exercises_or_figures_fails(site, driver):
    with pytest.raises(check_book.CheckFailed, match="no figure"):
        check_book.run_checks(driver, _page(site, "07_chapter", ""))


def test_the_book_ships_its_own_mathjax():
    config = (check_book.ROOT / "_config.yml").read_text()
    assert "sphinx-mathjax-offline" in config
