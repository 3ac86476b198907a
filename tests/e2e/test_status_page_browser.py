"""The status page in a real headless browser: Debian's chromium and chromedriver, driven by selenium.

.ci/run installs ``chromium`` and ``chromium-driver`` with apt; selenium is
told where both are (it never downloads a browser or driver of its own).  The
test watches a download appear on the page with its four steps, a failed one
with its SGP.22 code, and (with orders, ``--es2-port``) an order appear and
become ``Installed`` after its download; each saves a screenshot in the
test's temporary folder (the path is printed; ``pytest -s`` shows it).
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterator

import pytest

from smdpp.euicc.client import DownloadError

from .conftest import RunningServer
from .test_admin import CODE, admin_url, one_download

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in the [test] extra")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("Debian's chromium and chromium-driver are not installed; .ci/run installs them")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    # as root, in a container, with no network: no sandbox, no GPU, nothing fetched
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-extensions",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1400,1800"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log")),
                              options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)


def test_status_page_shows_a_download_with_its_steps(server_factory, browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    server: RunningServer = server_factory(None, "--admin-port", "0")
    url = admin_url(server) + "/"
    browser.get(url)
    assert browser.title == "smdpp status: testsmdpplus1.example.com"
    assert "No ES9+ call yet" in browser.find_element(By.ID, "sessions").find_element(
        By.XPATH, "following-sibling::p").text
    profile_row = browser.find_element(By.ID, "profile-table").find_elements(By.TAG_NAME, "tr")[1]
    assert CODE in profile_row.text
    qr = profile_row.find_element(By.TAG_NAME, "img")
    assert browser.execute_script("return arguments[0].naturalWidth", qr) > 100  # the PNG decoded

    eid = one_download(server)
    with pytest.raises(DownloadError):
        one_download(server, "NOT-HERE")
    browser.refresh()  # "refreshed by reload"
    sessions = browser.find_elements(By.CSS_SELECTOR, "#session-table tr.session")
    assert len(sessions) == 2
    failed, installed = sessions  # newest first
    cells = installed.find_elements(By.XPATH, "./td")
    assert cells[2].text == eid and cells[3].text == "SMDPP-TEST-1"
    assert cells[4].text == "89000123456789012341" and cells[5].text == "installed"
    steps = [row.find_elements(By.TAG_NAME, "td")[1].text
             for row in cells[6].find_elements(By.TAG_NAME, "tr")]
    assert steps == ["initiateAuthentication", "authenticateClient", "getBoundProfilePackage",
                     "handleNotification"]
    failed_cells = failed.find_elements(By.XPATH, "./td")
    assert failed_cells[2].text == eid and failed_cells[3].text == "NOT-HERE"  # who asked what
    outcome = failed_cells[5]
    assert outcome.text == "failed at authenticateClient: 8.2.6/3.8"
    assert "163, 21, 21" in outcome.value_of_css_property("color")  # shown as a failure (red)
    assert "no profile for matchingId 'NOT-HERE'" in failed.text
    roles = [row.find_elements(By.TAG_NAME, "td")[0].text for row in
             browser.find_elements(By.CSS_SELECTOR, "#certificate-table tr")[1:]]
    assert {"CI", "DPauth", "DPpb"} <= set(roles)
    # no script on the page, and none would run (the Content-Security-Policy forbids it)
    assert browser.find_elements(By.TAG_NAME, "script") == []

    shot = tmp_path / "status-page.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    print(f"status page screenshot: {shot}")


def test_status_page_shows_an_order_change_state(tmp_path: Path, browser) -> None:
    """With orders (--es2-port): the pool, then an order appearing and installed after its
    download, its matchingId masked; a screenshot of the page with the order."""
    from selenium.webdriver.common.by import By

    from tests.orders_fixtures import PROFILE_TYPE, write_pool

    from .conftest import start_server
    from .test_orders import card, dl, es2_client, register

    data_dir = tmp_path / "smdpp-data"
    write_pool(data_dir / "pool", range(1, 4))
    server = start_server(data_dir, "--es2-port", "0", "--admin-port", "0")
    try:
        register(data_dir, "op1")
        url = admin_url(server) + "/"
        browser.get(url)
        assert "No order yet" in browser.find_element(By.ID, "orders").find_element(
            By.XPATH, "following-sibling::p").text
        euicc = card(server)
        with es2_client(server) as es2:
            iccid = es2.download_order(profile_type=PROFILE_TYPE)
            matching_id = es2.confirm_order(iccid, release=True)["matchingId"]
        browser.refresh()

        def order_cells() -> list[str]:
            row = browser.find_elements(By.CSS_SELECTOR, "#order-table tr.order")[0]
            return [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]

        cells = order_cells()
        assert cells[:2] == [iccid, "Released"] and cells[5] == matching_id[:4] + "..."
        assert matching_id not in browser.page_source
        dl(server, euicc, matching_id)
        for _ in range(50):
            browser.refresh()
            cells = order_cells()
            if cells[1] == "Installed":
                break
        assert cells[1] == "Installed" and cells[3] == euicc.eid
        assert cells[-1] == "installed on the eUICC"
        assert matching_id not in browser.page_source  # nor in the session's row
        session = browser.find_elements(By.CSS_SELECTOR, "#session-table tr.session")[0]
        assert session.find_elements(By.XPATH, "./td")[3].text == matching_id[:4] + "..."
        pool = browser.find_elements(By.CSS_SELECTOR, "#pool-table tr")
        assert [cell.text for cell in pool[0].find_elements(By.TAG_NAME, "th")][2:] == [
            "Available", "Installed", "total"]
        shot = tmp_path / "status-page-orders.png"
        assert browser.save_screenshot(str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
        print(f"status page with orders, screenshot: {shot}")
    finally:
        server.stop()
