"""The dashboard in a real headless browser: Debian's Chromium driven by Playwright.

The page is asserted on as rendered (text the browser shows, elements it laid
out), during a real build on the local stack whose progress must move.
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reembed.read.evaluate import evaluate
from reembed.store import golden

from .conftest import build, flaky, new_family, wait_until
from .test_serve import TOKEN, running_service

pytestmark = pytest.mark.usefixtures("local_stack")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SLOW_PREFIX = "slowdoc: "


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_service(tmp_path_factory.mktemp("dashboard")) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is needed for the dashboard test: apt-get install "
                    "chromium (make install does it where it can)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-gpu"])
        yield chromium
        chromium.close()


def _logged_in(browser: Any, served: str) -> Any:
    page = browser.new_page()
    page.goto(f"{served}/ui")
    assert "/ui/login" in page.url  # no cookie yet: the token is asked for
    page.fill("#token", "wrong")
    page.click("#login")
    assert page.locator("#failed").is_visible()
    page.fill("#token", TOKEN)
    page.click("#login")
    page.wait_for_url(f"{served}/ui")
    return page


def _progress(page: Any, version: str) -> tuple[int, int]:
    text = page.locator(f'tr[data-version="{version}"] .progress').inner_text()
    done, planned = re.fullmatch(r"(\d+)/(\d+)", text.strip()).groups()  # type: ignore[union-attr]
    return int(done), int(planned)


def test_the_family_page_shows_a_build_move(browser: Any, served: str) -> None:
    from reembed.build.start import resolve
    from reembed.tasks import reembed_family

    docs = [{"_id": f"d{i:03d}", "text": f"note {i} about otters and weirs"} for i in range(120)]
    fam = new_family(docs)
    build(fam.name, {"driver": "naive", "dims": 32}, version="fast", flip="auto")
    embed = {**flaky(delay_s=1.0, slow_prefix=SLOW_PREFIX), "document_prefix": SLOW_PREFIX}
    target = resolve(fam.name, "slow", embed)
    reembed_family.apply_async(kwargs={"family": fam.name, "version": "slow",
                                       "embed": target.config.model_dump(mode="json"),
                                       "batch_chunks": 8}, task_id=uuid.uuid4().hex)
    page = _logged_in(browser, served)
    assert page.locator("#families").get_by_role("link", name=fam.name).is_visible()
    page.goto(f"{served}/ui/families/{fam.name}")
    wait_until(lambda: _progress(page, "slow")[1] == 120, "the slow build to be planned",
               timeout=60, poll=0.5)
    first = _progress(page, "slow")[0]
    assert first < 120, "the build ended before the page could watch it"
    wait_until(lambda: _progress(page, "slow")[0] > first, "the bar to move without a reload",
               timeout=60, poll=0.5)
    bar = page.locator('tr[data-version="slow"] .bar > div').evaluate("e => e.style.width")
    assert bar.endswith("%") and float(bar[:-1]) > 0
    assert page.locator('tr[data-version="fast"] .progress').inner_text() == "120/120"
    assert "fast" in page.locator("#history tr").nth(1).inner_text()  # the flip to fast
    wait_until(lambda: _progress(page, "slow")[0] == 120, "the build to finish", timeout=180)


def test_compare_and_eval_pages(browser: Any, served: str) -> None:
    topics = ["otters", "rivers", "weirs", "herons", "salmon", "willows"]
    docs = [{"_id": f"{t}{i}", "text": f"{t} {t} note {i} " + " ".join(topics[:j])}
            for j, t in enumerate(topics) for i in range(3)]
    fam = new_family(docs)
    build(fam.name, {"driver": "naive", "dims": 256}, version="wide", flip="auto")
    build(fam.name, {"driver": "naive", "dims": 16}, version="narrow")
    for t in topics:
        golden.add(fam.name, f"{t} {t}", [f"{t}{i}" for i in range(3)])
    page = _logged_in(browser, served)
    page.goto(f"{served}/ui/families/{fam.name}/compare")
    page.fill("#q", "herons herons")
    page.select_option("#a", "wide")
    page.select_option("#b", "narrow")
    page.click("#go")
    page.wait_for_selector("#overlap")
    left, right = page.locator("#hits-1 li"), page.locator("#hits-2 li")
    assert left.count() == 10 and right.count() == 10
    assert left.first.inner_text().startswith("herons")
    assert "overlap@10" in page.locator("#overlap").inner_text()
    assert page.locator("li.overlap").count() >= 2  # a source both found, in both columns
    page.goto(f"{served}/ui/families/{fam.name}/eval")
    rows = page.locator("#scores tr[data-version]")
    assert rows.count() == 2
    assert rows.first.locator("td").first.inner_text() == "wide"  # the active version first
    wide = evaluate(fam.name, ["wide"])[0]
    assert rows.first.locator("td").nth(3).inner_text() == f"{wide.mrr:.3f}"  # MRR@10
    assert wide.mrr > 0.5
    assert page.locator("#chart rect").count() == 8
    assert page.locator("#thresholds li").first.inner_text().endswith("on narrow")
