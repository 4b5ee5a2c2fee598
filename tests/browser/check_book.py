"""Real-browser check of the built book: open one chapter page in headless Chromium and look at it.

Run after ``make book`` (this is what ``make browser-check`` does)::

    .venv/bin/python tests/browser/check_book.py [_build/html/book/02_gaussian_random_fields.html]

It opens the page through ``file://`` with Debian's Chromium and ChromeDriver (``apt-get install
chromium chromium-driver``; other paths through ``$CHROMIUM`` and ``$CHROMEDRIVER``), driven by
selenium, and checks what a reader would see:

* the chapter's heading is there;
* the figures the notebook produced are in the article and have loaded (``naturalWidth > 0``);
* the header's launch menu opens and offers this chapter on Colab;
* exercise solutions (cells tagged ``solution`` + ``hide-cell``) start collapsed.

With ``--screenshot PATH`` it also saves a 1280 x 900 picture of the page, scrolled to the first
figure of ``--section``, with the launch menu open (the README's screenshot; the page loads MathJax
from its CDN, so take it on a machine that is online).

A build that lost its figures, its launch buttons or its hidden solutions fails here. The script
exits 1 on the first failed check and prints ``browser-check: N passed, 0 failed`` otherwise. It is
not a pytest module (pytest's unit runs need no browser); imports of selenium happen in ``main``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PAGE = ROOT / "_build" / "html" / "book" / "02_gaussian_random_fields.html"
COLAB_PREFIX = "https://colab.research.google.com/github/lgtutorial/lgtutorial/blob/main/book/"
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

# Every <img> of the article with whether it has loaded; http(s) images (the Colab badge) are
# reported but not required, since the check must pass offline.
IMAGES_SCRIPT = """
return Array.from(document.querySelectorAll("article.bd-article img")).map(img => ({
    src: img.getAttribute("src"), complete: img.complete, width: img.naturalWidth,
}));
"""


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
    return driver


def run_checks(driver, page: Path, *, min_solutions: int = 1) -> list[str]:
    """Load ``page`` and run every check; return one line per passed check."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    passed = []
    driver.get(page.as_uri())

    heading = driver.find_elements(By.CSS_SELECTOR, "article.bd-article h1")
    check(bool(heading) and heading[0].text.strip() != "", f"no chapter heading (<h1>) in the article of {page.name}")
    passed.append(f"heading: {heading[0].text.strip()!r}")

    images = driver.execute_script(IMAGES_SCRIPT)
    local = [image for image in images if not str(image["src"]).startswith(("http://", "https://"))]
    loaded = [image for image in local if image["complete"] and image["width"] > 0]
    check(len(loaded) >= 1, f"no figure of {page.name} has loaded ({len(local)} local <img> in the article)")
    broken = [image["src"] for image in local if image not in loaded]
    check(not broken, f"figures that did not load: {broken}")
    passed.append(f"figures: {len(loaded)} of {len(local)} local images loaded (naturalWidth > 0)")

    colab_url = COLAB_PREFIX + page.with_suffix(".ipynb").name
    toggles = driver.find_elements(By.CSS_SELECTOR, ".dropdown-launch-buttons button.dropdown-toggle")
    check(bool(toggles) and toggles[0].is_displayed(), "no launch (rocket) button is displayed in the page header")
    toggle = toggles[0]
    toggle.click()
    selector = f'.dropdown-launch-buttons a[href="{colab_url}"]'
    try:
        link = WebDriverWait(driver, 10).until(expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, selector)))
    except Exception as error:  # selenium's TimeoutException, or the link is missing altogether
        raise CheckFailed(f"the launch menu shows no Colab link to {colab_url}") from error
    passed.append(f"launch menu: {link.text.strip() or 'link'} -> {link.get_attribute('href')}")

    solutions = driver.find_elements(By.CSS_SELECTOR, "div.cell.tag_solution")
    check(len(solutions) >= min_solutions, f"{len(solutions)} solution cells on the page, at least {min_solutions} expected")
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
    parser.add_argument("page", nargs="?", type=Path, default=DEFAULT_PAGE, help="built HTML page of a chapter")
    parser.add_argument("--min-solutions", type=int, default=1, help="collapsed solution cells the page must have")
    parser.add_argument("--screenshot", type=Path, help="also save a screenshot of the page here (PNG)")
    parser.add_argument("--section", default="the-known-weakness-pseudo-amorphous-wrongly-connected-features",
                        help="id of the section whose first figure the screenshot shows")
    args = parser.parse_args(argv)
    page = args.page.resolve()
    if not page.is_file():
        print(f"browser-check: {page} does not exist; build the book first (`make book`)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="lgtutorial-chromium-") as profile:
        driver = open_browser(profile)
        try:
            passed = run_checks(driver, page, min_solutions=args.min_solutions)
            if args.screenshot:
                save_screenshot(driver, args.screenshot, args.section)
                passed.append(f"screenshot: {args.screenshot}")
        except CheckFailed as failure:
            print(f"browser-check FAILED on {page}: {failure}", file=sys.stderr)
            print("browser-check: 0 passed, 1 failed")
            return 1
        finally:
            driver.quit()
    for line in passed:
        print(f"  ok  {line}")
    print(f"browser-check: {len(passed)} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
