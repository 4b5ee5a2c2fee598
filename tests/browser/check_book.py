"""Real-browser check of the built book: open every page in headless Chromium and look at it.

Run after ``make book`` (this is what ``make browser-check`` does)::

    .venv/bin/python tests/browser/check_book.py                 # every page of _toc.yml
    .venv/bin/python tests/browser/check_book.py _build/html/book/02_gaussian_random_fields.html

It opens each page through ``file://`` with Debian's Chromium and ChromeDriver (``apt-get install
chromium chromium-driver``; other paths through ``$CHROMIUM`` and ``$CHROMEDRIVER``), driven by
selenium, waits for MathJax (the book carries its own copy, ``sphinx-mathjax-offline``, so this works
offline) and checks what a reader would see. A page fails on:

* no heading (``<h1>``);
* an image that did not load (``naturalWidth == 0``); a chapter (01-09) with no figure at all;
* a formula MathJax could not render: an error node (``mjx-merror``), an undefined macro (shown in
  red), or math left as raw TeX;
* a cell output that shows an error, a traceback or a warning (anything on stderr), unless the cell
  is tagged ``raises-exception`` or ``shows-warning`` on purpose;
* a broken internal link (missing file or anchor), an unresolved reference or citation (docutils'
  ``problematic`` / ``system-message`` nodes, or a ``{cite}`` role left as text);
* a Markdown table rendered as raw pipes (``| --- |`` lines in a paragraph or a text output);
* a widget output with no static fallback (an image in the same output);
* on a chapter page: the header's launch menu must offer that chapter on Colab, the page must have at
  least one exercise solution, and every solution (cells tagged ``solution`` + ``hide-cell``) must
  start collapsed.

With ``--screenshot PATH`` (one page) it also saves a 1280 x 900 picture of the page, scrolled to
the first figure of ``--section``, with the launch menu open (the README's screenshot).

The script prints one line per page and exits 1 if any page failed. It is not a pytest module
(pytest's unit runs need no browser); selenium is imported in ``main``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"
COLAB_PREFIX = "https://colab.research.google.com/github/lgtutorial/lgtutorial/blob/main/book/"
CHAPTER = re.compile(r"^\d\d_")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,900",
)
ON_PURPOSE = ("raises-exception", "shows-warning")

# Every <img> of the article with whether it has loaded; http(s) images (the Colab badge) are
# reported but not required, since the check must pass offline.
IMAGES_SCRIPT = """
return Array.from(document.querySelectorAll("article.bd-article img")).map(img => ({
    src: img.getAttribute("src"), complete: img.complete, width: img.naturalWidth,
}));
"""

# Resolves once MathJax has typeset the page (or at once when the page has no MathJax).
MATHJAX_READY_SCRIPT = """
const done = arguments[arguments.length - 1];
const started = Date.now();
(function wait() {
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
        MathJax.startup.promise.then(() => done("typeset"), e => done("failed: " + e));
    } else if (!document.querySelector("script[src*='mathjax']")) {
        done("no-mathjax");
    } else if (Date.now() - started > 60000) {
        done("MathJax did not start in 60 s");
    } else {
        setTimeout(wait, 100);
    }
})();
"""

MATH_SCRIPT = """
const article = document.querySelector("article.bd-article") || document.body;
const text = el => el.textContent.trim().slice(0, 80);
return {
    errors: Array.from(article.querySelectorAll("mjx-merror")).map(
        el => el.getAttribute("data-mjx-error") + " in " + text(el.closest("mjx-container") || el)),
    undefined_macros: Array.from(article.querySelectorAll("mjx-mtext")).filter(
        el => (el.getAttribute("style") || "").replace(/ /g, "").includes("color:red")).map(text),
    raw: Array.from(article.querySelectorAll(".math")).filter(
        el => !el.querySelector("mjx-container") && /\\\\[(\\[]/.test(el.textContent)).map(text),
};
"""

OUTPUTS_SCRIPT = """
const results = [];
document.querySelectorAll("article.bd-article div.cell").forEach((cell, index) => {
    const tags = Array.from(cell.classList).filter(c => c.startsWith("tag_")).map(c => c.slice(4));
    cell.querySelectorAll(".cell_output").forEach(output => {
        results.push({
            index: index, tags: tags,
            source: (cell.querySelector(".cell_input") || {textContent: ""}).textContent.trim().slice(0, 70),
            stderr: Array.from(output.querySelectorAll(".output.stderr, .output.traceback, .output.error")).map(
                el => el.textContent.trim().slice(0, 160)),
            widgets: output.querySelectorAll(
                "script[type='application/vnd.jupyter.widget-view+json'], .jupyter-widgets").length,
            images: output.querySelectorAll("img").length,
            texts: Array.from(output.querySelectorAll("pre")).map(el => el.textContent),
        });
    });
});
return results;
"""

LINKS_SCRIPT = """
return {
    hrefs: Array.from(document.querySelectorAll("a[href]")).map(a => a.getAttribute("href")),
    problems: Array.from(document.querySelectorAll(".problematic, .system-message")).map(
        el => el.textContent.trim().slice(0, 80)),
    paragraphs: Array.from(document.querySelectorAll("article.bd-article p")).map(p => p.textContent),
};
"""

RAW_TABLE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*\|", re.MULTILINE)


class CheckFailed(AssertionError):
    """One of the page checks did not hold."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def open_browser(user_data_dir: str):
    """A headless Chromium under ChromeDriver, both from fixed paths (selenium-manager never runs)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    chromedriver = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
    for program in (chromium, chromedriver):
        if not Path(program).is_file():
            raise SystemExit(f"browser-check: {program} not found; install it with "
                             "`apt-get install -y chromium chromium-driver` (or set $CHROMIUM / $CHROMEDRIVER)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={user_data_dir}")
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    driver.set_page_load_timeout(120)
    driver.set_script_timeout(90)
    return driver


def toc_pages(html: Path = HTML) -> list[Path]:
    """The built page of every file in _toc.yml, in reading order."""
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", [{"chapters": toc.get("chapters", [])}]):
        for chapter in part.get("chapters", []):
            files.append(chapter["file"])
            files += [section["file"] for section in chapter.get("sections", [])]
    return [html / f"{name}.html" for name in files]


def _anchor_ids(page: Path, cache: dict) -> set:
    if page not in cache:
        cache[page] = set(re.findall(r'\bid="([^"]+)"', page.read_text(encoding="utf-8", errors="replace")))
    return cache[page]


def check_links(page: Path, hrefs: list[str], cache: dict) -> int:
    """Every relative link of ``page`` points at a file that exists and, with ``#anchor``, at an id in it."""
    checked = 0
    for href in dict.fromkeys(hrefs):
        parts = urlsplit(href)
        if parts.scheme or parts.netloc or href.startswith(("mailto:", "javascript:")) or href == "#":
            continue
        target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
        if target.is_dir():
            target = target / "index.html"
        check(target.exists(), f"broken link {href!r}: {target} does not exist")
        if parts.fragment and target.suffix == ".html":
            check(unquote(parts.fragment) in _anchor_ids(target, cache),
                  f"broken link {href!r}: no id {parts.fragment!r} in {target.name}")
        checked += 1
    return checked


def run_checks(driver, page: Path, *, chapter: bool | None = None, anchors: dict | None = None) -> list[str]:
    """Load ``page`` and run every check; return one line per passed check."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    if chapter is None:  # a chapter page: book/NN_*.html (the lab notes, book/lab_notes/NN_*.html, are not)
        chapter = bool(CHAPTER.match(page.stem)) and page.parent.name != "lab_notes"
    passed = []
    driver.get(page.as_uri())

    heading = driver.find_elements(By.CSS_SELECTOR, "article.bd-article h1")
    check(bool(heading) and heading[0].text.strip() != "", f"no heading (<h1>) in the article of {page.name}")
    passed.append(f"heading: {heading[0].text.strip()!r}")

    images = driver.execute_script(IMAGES_SCRIPT)
    local = [image for image in images if not str(image["src"]).startswith(("http://", "https://"))]
    loaded = [image for image in local if image["complete"] and image["width"] > 0]
    broken = [image["src"] for image in local if image not in loaded]
    check(not broken, f"figures that did not load: {broken}")
    check(loaded or not chapter, f"no figure of chapter {page.name} has loaded ({len(local)} local <img>)")
    passed.append(f"figures: {len(loaded)} of {len(local)} local images loaded")

    state = driver.execute_async_script(MATHJAX_READY_SCRIPT)
    check(state in ("typeset", "no-mathjax"), f"MathJax: {state}")
    math = driver.execute_script(MATH_SCRIPT)
    check(not math["errors"], f"formulas MathJax could not render: {math['errors'][:3]}")
    check(not math["undefined_macros"], f"undefined TeX macros (shown in red): {math['undefined_macros'][:3]}")
    check(not math["raw"], f"formulas left as raw TeX: {math['raw'][:3]}")
    n_formulas = len(driver.find_elements(By.CSS_SELECTOR, "article.bd-article mjx-container"))
    passed.append(f"math: {n_formulas} formulas typeset, no errors ({state})")

    outputs = driver.execute_script(OUTPUTS_SCRIPT)
    for output in outputs:
        if output["stderr"] and not set(output["tags"]) & set(ON_PURPOSE):
            raise CheckFailed(f"cell {output['index']} ({output['source']!r}) shows an error or warning: "
                              f"{output['stderr'][0]!r} (fix it, or tag the cell {' / '.join(ON_PURPOSE)})")
        if output["widgets"]:
            check(output["images"] > 0, f"cell {output['index']} ({output['source']!r}) shows a widget with no "
                                        "static fallback (no image in the same output)")
        for text in output["texts"]:
            check(not RAW_TABLE.search(text), f"cell {output['index']} ({output['source']!r}) prints a Markdown "
                                              "table as raw text (display it with IPython.display.Markdown)")
    passed.append(f"outputs: {len(outputs)} cell outputs, no error or warning, tables and widgets rendered")

    links = driver.execute_script(LINKS_SCRIPT)
    check(not links["problems"], f"unresolved references or citations: {links['problems'][:3]}")
    raw_cites = [text[:80] for text in links["paragraphs"] if "{cite}" in text or "{ref}" in text]
    check(not raw_cites, f"roles left as text (e.g. a citation inside math): {raw_cites[:3]}")
    raw_tables = [text[:80] for text in links["paragraphs"] if RAW_TABLE.search(text)]
    check(not raw_tables, f"Markdown tables rendered as raw text: {raw_tables[:3]}")
    n_links = check_links(page, links["hrefs"], {} if anchors is None else anchors)
    passed.append(f"links: {n_links} internal links resolve, no unresolved reference or citation")

    if not chapter:
        return passed
    colab_url = COLAB_PREFIX + page.with_suffix(".ipynb").name
    toggles = driver.find_elements(By.CSS_SELECTOR, ".dropdown-launch-buttons button.dropdown-toggle")
    check(bool(toggles) and toggles[0].is_displayed(), "no launch (rocket) button is displayed in the page header")
    toggles[0].click()
    selector = f'.dropdown-launch-buttons a[href="{colab_url}"]'
    try:
        link = WebDriverWait(driver, 10).until(expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, selector)))
    except Exception as error:  # selenium's TimeoutException, or the link is missing altogether
        raise CheckFailed(f"the launch menu shows no Colab link to {colab_url}") from error
    passed.append(f"launch menu: {link.text.strip() or 'link'} -> {link.get_attribute('href')}")

    solutions = driver.find_elements(By.CSS_SELECTOR, "div.cell.tag_solution")
    check(len(solutions) >= 1, "no exercise solution on this chapter's page (cells tagged 'solution')")
    for solution in solutions:
        code = solution.find_elements(By.CSS_SELECTOR, ".cell_input")
        check(bool(code), "a solution cell has no code in the page")
        check(not code[0].is_displayed(), "a solution cell (tag hide-cell) is shown expanded; it should start collapsed")
    passed.append(f"solutions: {len(solutions)} collapsed")
    return passed


def save_screenshot(driver, path: Path, section: str) -> None:
    """A 1280 x 900 view of the page with the first figure of ``section`` near the top, as a small PNG."""
    from PIL import Image

    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False})
    found = driver.execute_script(
        "const s = document.getElementById(arguments[0]); const img = s && s.querySelector('img');"
        "if (!img) return false; window.scrollTo(0, img.getBoundingClientRect().top + window.scrollY - 300); return true;",
        section)
    check(bool(found), f"no section with id {section!r} and a figure on the page")
    driver.save_screenshot(str(path))
    Image.open(path).convert("RGB").quantize(colors=128).save(path, optimize=True)  # a few hundred KB at most


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="*", type=Path, help="built HTML pages (default: every page of _toc.yml)")
    parser.add_argument("--html", type=Path, default=HTML, help="the built book's HTML folder")
    parser.add_argument("--screenshot", type=Path, help="also save a screenshot of the (one) page here (PNG)")
    parser.add_argument("--section", default="the-known-weakness-pseudo-amorphous-wrongly-connected-features",
                        help="id of the section whose first figure the screenshot shows")
    args = parser.parse_args(argv)
    pages = [page.resolve() for page in args.pages] or toc_pages(args.html.resolve())
    missing = [str(page) for page in pages if not page.is_file()]
    if missing:
        print(f"browser-check: {', '.join(missing)} not found; build the book first (`make book`)", file=sys.stderr)
        return 1
    if args.screenshot and len(pages) != 1:
        parser.error("--screenshot takes exactly one page")
    failed, anchors = [], {}
    with tempfile.TemporaryDirectory(prefix="lgtutorial-chromium-") as profile:
        driver = open_browser(profile)
        try:
            for page in pages:
                try:
                    passed = run_checks(driver, page, anchors=anchors)
                    if args.screenshot:
                        save_screenshot(driver, args.screenshot, args.section)
                        passed.append(f"screenshot: {args.screenshot}")
                except CheckFailed as failure:
                    failed.append(page.name)
                    print(f"FAIL  {page.name}: {failure}")
                    continue
                print(f"ok    {page.name}: " + "; ".join(passed[1:]))
        finally:
            driver.quit()
    print(f"browser-check: {len(pages) - len(failed)} pages passed, {len(failed)} failed"
          + (f" ({', '.join(failed)})" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
