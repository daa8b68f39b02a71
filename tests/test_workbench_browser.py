"""The examiner workbench in a real browser (Debian's headless Chromium via Selenium) against
the real Serve application (`python -m jobs.serve_index`, a local Ray instance) on a tiny
synthetic index: the whole flow from loading a photo to the exported PDF, the page's ranking
equal to `/v1/search` for the same inputs, keyboard-only marking, bad input refused with a
message on the page and a 4xx naming the problem (nothing half-written), both screen sizes.
Screenshots of every step go to runs/browser/<test>/."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from pypdf import PdfReader
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from cluster.processes import free_port, stop_pid
from shoematch.cases import audit
from shoematch.cases.models import AuditEntry
from shoematch.cases.records import CaseRecords
from shoematch.data.dataset import open_dataset
from shoematch.data.images import decode_image, encode_png
from tests.browser import Screenshots, chromium
from tests.conftest import REPO
from tests.images_bad import bomb_png
from tests.label_models import random_descriptor_model

TOKENS = {"alice": "alice-token-0123456", "bob": "bob-token-98765432"}
PHOTO_SCALE = 2.0  # the photo shows the print at twice the index's px/cm
PHOTO_TILT = -12.0  # degrees (ccw) the print is turned in the photo
RULER_CM = 10.0
WAIT_S = 60


def auth(user: str = "alice") -> dict:
    return {"Authorization": f"Bearer {TOKENS[user]}"}


def ignore_interrupts() -> None:
    """What a shell does for a job started in the background with `&`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.fixture(scope="module")
def workbench(tiny_refs, random_encoder, tmp_path_factory):
    """The tiny index (with a descriptor model) served with named users and an SQLite case db;
    yields (url, index root, db url, work dir)."""
    work = tmp_path_factory.mktemp("workbench")
    descriptor = random_descriptor_model(str(work / "descriptor"))
    root = str(work / "index")
    built = subprocess.run(
        [sys.executable, "-m", "jobs.reindex", "--model", random_encoder, "--refdb",
         f"{tiny_refs}/references", "--out", root, "--shards", "2", "--local",
         "--descriptor-model", descriptor], cwd=REPO, capture_output=True, text=True,
        timeout=300)
    assert built.returncode == 0, built.stderr
    users = work / "users.txt"
    users.write_text("".join(f"{name} {token}\n" for name, token in TOKENS.items()))
    db_url = f"sqlite:///{work}/cases.sqlite"
    port = free_port()
    log_path = work / "serve.log"
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "SHOEMATCH_DB_URL")}
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "jobs.serve_index", "--index", root, "--slots", "1",
             "--port", str(port), "--set", f"db_url={db_url}", f"users_file={users}",
             "max_upload_bytes=2000000"],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env,
            preexec_fn=ignore_interrupts)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while "examiner workbench:" not in log_path.read_text():
            assert process.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(1)
        assert f"examiner workbench: {url}/" in log_path.read_text()
        yield url, root, db_url, work
    finally:
        # The job's Ctrl-C: Serve and Ray shut down, even though the job was started as a
        # background process would be, with SIGINT ignored (see `ignore_interrupts`).
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            stop_pid(process.pid)
            raise AssertionError("the serve job did not stop on Ctrl-C within 60 s") from None
        assert code == 0, log_path.read_text()[-3000:]


@pytest.fixture(scope="module")
def scene(tiny_refs, tmp_path_factory) -> tuple[Path, tuple[int, int, int, int]]:
    """A crime-scene 'photo' made from a held-out synthetic query print: dark ink on a light,
    noisy ground, twice the index's scale, turned by PHOTO_TILT, with two ruler marks
    RULER_CM apart (JPEG, as a camera writes it). Returns it and the print's bounding box."""
    record = next(open_dataset(f"{tiny_refs}/queries").iter_records())
    ink = decode_image(record["print"], "print")
    px_per_cm = read_px_per_cm(tiny_refs) * PHOTO_SCALE
    scaled = Image.fromarray(255 - ink).resize(
        (round(ink.shape[1] * PHOTO_SCALE), round(ink.shape[0] * PHOTO_SCALE)),
        Image.Resampling.BICUBIC).rotate(PHOTO_TILT, expand=True, fillcolor=255)
    rng = np.random.default_rng(3)
    ground = np.clip(rng.normal(225, 8, (300, 420)), 0, 255).astype(np.uint8)
    canvas = Image.fromarray(ground)
    canvas.paste(Image.fromarray(np.minimum(np.asarray(scaled), ground[:scaled.height,
                                                                        :scaled.width])),
                 (40, 20))
    pixels = np.asarray(canvas).copy()
    marks = [(60, 270), (60 + round(RULER_CM * px_per_cm), 270)]
    for x, y in marks:
        pixels[y - 3:y + 4, x - 3:x + 4] = 0
    path = tmp_path_factory.mktemp("photo") / "scene.jpg"
    Image.fromarray(pixels).save(path, quality=92)
    return path, (40, 20, 40 + scaled.width, 20 + scaled.height)


@pytest.fixture(scope="module")
def photo(scene) -> Path:
    return scene[0]


def read_px_per_cm(tiny_refs: str) -> float:
    from shoematch.cases.preparation import index_px_per_cm

    refs = open_dataset(f"{tiny_refs}/references")
    return index_px_per_cm(refs.manifest.params, refs.canvas.width)


def common_code(root: str) -> str:
    """The descriptor most references carry: a filter that keeps a useful ranking."""
    from shoematch.index.reader import SearchIndex

    counts: Counter[str] = Counter()
    for shard in SearchIndex.load(root).shards:
        for codes in shard.metadata.column("descriptors").to_pylist():
            counts.update(codes or [])
    return counts.most_common(1)[0][0]


# --- page helpers ---------------------------------------------------------------------------
def wait(driver, condition, what: str, timeout: float = WAIT_S):
    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(
        lambda d: condition(d), message=f"waiting for {what}")


def error_text(driver) -> str:
    banner = driver.find_element(By.ID, "error")
    return "" if banner.get_attribute("hidden") is not None else \
        driver.find_element(By.ID, "error-text").text


def wait_error(driver, fragment: str) -> str:
    try:
        wait(driver, lambda d: fragment in error_text(d), f"the page to say {fragment!r}")
    except TimeoutException:
        status = driver.find_element(By.ID, "status").text
        raise AssertionError(f"the page did not say {fragment!r}; it says "
                             f"{error_text(driver)!r} / {status!r}") from None
    return error_text(driver)


def dismiss_error(driver) -> None:
    if error_text(driver):
        driver.find_element(By.ID, "error-close").click()


def click_image_point(driver, x: float, y: float) -> None:
    """Click the original-image viewer at image pixel (x, y)."""
    canvas = driver.find_element(By.ID, "original")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)
    point = driver.execute_script("return window.workbench.imageToClient(arguments[0], "
                                  "arguments[1])", x, y)
    rect = driver.execute_script("return arguments[0].getBoundingClientRect().toJSON()", canvas)
    dx = point["x"] - (rect["left"] + rect["width"] / 2)
    dy = point["y"] - (rect["top"] + rect["height"] / 2)
    ActionChains(driver).move_to_element_with_offset(canvas, round(dx), round(dy)).click() \
        .perform()


def set_field(driver, element_id: str, value: str) -> None:
    field = driver.find_element(By.ID, element_id)
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(value, Keys.TAB)


def sign_in_and_open_case(driver, url: str, case_id: str, user: str = "alice") -> None:
    driver.get(url + "/")
    wait(driver, lambda d: "Sign in" in error_text(d), "the sign-in prompt")
    driver.find_element(By.ID, "token").send_keys(TOKENS[user], Keys.ENTER)
    wait(driver, lambda d: f"signed in as {user}" in d.find_element(By.ID, "user").text,
         "sign-in")
    driver.find_element(By.ID, "case-id").send_keys(case_id)
    driver.find_element(By.ID, "case-title").send_keys("synthetic burglary")
    driver.find_element(By.CSS_SELECTOR, "#case-form button[type=submit]").click()
    wait(driver, lambda d: case_id in d.find_element(By.ID, "case-current").text, "the case")


def load_photo(driver, path: Path) -> None:
    driver.find_element(By.ID, "file").send_keys(str(path))


def page_rows(driver) -> list[dict]:
    return driver.execute_script("return window.workbench.results.rows")


def focus_outline(driver) -> str:
    return driver.execute_script(
        "const s = getComputedStyle(document.activeElement);"
        "return s.outlineStyle + ' ' + s.outlineWidth")


def tab_until(driver, is_target, what: str, limit: int = 40):
    """Press Tab (keyboard only) until the focused element is the target; it must show focus."""
    for _ in range(limit):
        active = driver.switch_to.active_element
        if is_target(active):
            assert not focus_outline(driver).startswith("none"), f"{what} shows no focus"
            return active
        ActionChains(driver).send_keys(Keys.TAB).perform()
    raise AssertionError(f"Tab never reached {what}")


def no_horizontal_overflow(driver) -> bool:
    return driver.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth")


@pytest.fixture
def browser(tmp_path):
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver = chromium(downloads)
    driver.downloads = downloads
    try:
        yield driver
    finally:
        driver.quit()


def drag_on_image(driver, start: tuple[float, float], end: tuple[float, float]) -> None:
    canvas = driver.find_element(By.ID, "original")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)
    rect = driver.execute_script("return arguments[0].getBoundingClientRect().toJSON()", canvas)
    a, b = (driver.execute_script("return window.workbench.imageToClient(arguments[0], "
                                  "arguments[1])", *p) for p in (start, end))
    ActionChains(driver).move_to_element_with_offset(
        canvas, round(a["x"] - rect["left"] - rect["width"] / 2),
        round(a["y"] - rect["top"] - rect["height"] / 2)).click_and_hold() \
        .move_by_offset(round(b["x"] - a["x"]), round(b["y"] - a["y"])).release().perform()


def set_slider(driver, element_id: str, value: float) -> None:
    driver.execute_script("const s = document.getElementById(arguments[0]); s.value = arguments[1];"
                          "s.dispatchEvent(new Event('input'))", element_id, value)


def test_whole_flow_in_the_browser(workbench, scene, browser, tiny_refs):
    url, root, db_url, _ = workbench
    photo, box = scene
    driver = browser
    shots = Screenshots(driver, "whole_flow")
    sign_in_and_open_case(driver, url, "T-001")
    shots.take("signed-in")

    # 1 · load the photo: shown at once with its SHA-256.
    load_photo(driver, photo)
    wait(driver, lambda d: "SHA-256" in d.find_element(By.ID, "original-info").text, "upload")
    sha = driver.execute_script("return window.workbench.state.upload.sha256")
    assert sha == hashlib.sha256(photo.read_bytes()).hexdigest()
    shots.take("loaded")
    scale = driver.execute_script("return window.workbench.viewer.scale")
    driver.find_element(By.ID, "zoom-in").click()
    assert driver.execute_script("return window.workbench.viewer.scale") > scale
    viewer = driver.find_element(By.ID, "original")
    before = driver.execute_script("return window.workbench.viewer.offset.x")
    ActionChains(driver).move_to_element(viewer).click_and_hold().move_by_offset(40, 0) \
        .release().perform()
    assert driver.execute_script("return window.workbench.viewer.offset.x") > before + 20
    driver.find_element(By.ID, "zoom-fit").click()

    # 2 · prepare: rotate back, measure the scale with two clicks on the ruler marks.
    set_field(driver, "rotate-num", str(-PHOTO_TILT))
    driver.find_element(By.CSS_SELECTOR, "[data-view-tool=ruler]").click()
    px_per_cm = read_px_per_cm(tiny_refs) * PHOTO_SCALE
    click_image_point(driver, 60, 270)
    click_image_point(driver, 60 + RULER_CM * px_per_cm, 270)
    set_field(driver, "ruler-cm", str(RULER_CM))
    measured = float(driver.find_element(By.ID, "pxcm").get_attribute("value"))
    assert measured == pytest.approx(px_per_cm, rel=0.03)
    # crop to the print (drag a box), and lift the ground's noise to black with the levels
    driver.find_element(By.CSS_SELECTOR, "[data-view-tool=crop]").click()
    drag_on_image(driver, (box[0] - 8, box[1] - 8), (box[2] + 8, box[3] + 8))
    crop = driver.execute_script("return window.workbench.state.prep.crop")
    assert crop == pytest.approx([box[0] - 8, box[1] - 8, box[2] + 8, box[3] + 8], abs=2)
    set_slider(driver, "black", 70)
    wait(driver, lambda d: d.execute_script(
        "return window.workbench.state.prep.rotate_deg") == -PHOTO_TILT, "rotation")
    time.sleep(1.0)  # the preview is debounced
    shots.take("prepared")

    # 3 · mask: none, then paint the print's middle with the brush.
    driver.find_element(By.ID, "mask-none").click()
    driver.find_element(By.CSS_SELECTOR, "[data-mask-tool=brush]").click()
    set_slider(driver, "brush-size", 30)
    layer = driver.find_element(By.ID, "mask-layer")
    width = layer.size["width"]
    ActionChains(driver).move_to_element_with_offset(layer, -width // 3, 0).click_and_hold() \
        .move_by_offset(width // 3, 10).move_by_offset(width // 3, -10).release().perform()
    visible = driver.execute_script("return window.workbench.mask.visibleCount()")
    assert visible > 0
    driver.find_element(By.ID, "undo").click()
    assert driver.execute_script("return window.workbench.mask.visibleCount()") == 0
    driver.find_element(By.ID, "redo").click()
    assert driver.execute_script("return window.workbench.mask.visibleCount()") == visible
    shots.take("masked")

    # 4 · filter: a suggestion chip adds its code; then keep the most common descriptor.
    chip = wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#suggestions .suggestion"),
                "descriptor suggestions")[0]
    chip_code = chip.get_attribute("data-code")
    chip.click()
    assert chip_code in driver.find_element(By.ID, "codes").get_attribute("value")
    code = common_code(root)
    set_field(driver, "codes", code)
    shots.take("filtered")

    # 5 · search, keyboard only: Tab to the button, Enter. The grid shows the ranking the API
    # gives for the same inputs.
    tab_until(driver, lambda e: e.get_attribute("id") == "search", "the search button")
    ActionChains(driver).send_keys(Keys.ENTER).perform()
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#results .card"), "results")
    rows = page_rows(driver)
    query_id = driver.execute_script("return window.workbench.state.queryId")
    cards = driver.find_elements(By.CSS_SELECTOR, "#results .card")
    # No calibrator passed its gate on this tiny index: the reason is shown, never a number.
    count = driver.find_element(By.ID, "result-count").text
    assert count.startswith(f"{len(rows)} models · uncalibrated: "), count
    assert [c.get_attribute("data-model-id") for c in cards] == \
        [r["model_id"] for r in rows[:20]]
    assert all(code in r["descriptors"] for r in rows)
    recorded = f"{url}/v1/cases/T-001/queries/{query_id}"
    print_png = httpx.get(f"{recorded}/print.png", headers=auth(), timeout=30).content
    mask_png = httpx.get(f"{recorded}/mask.png", headers=auth(), timeout=30).content
    shown_mask = bytes(driver.execute_script(
        "return window.workbench.maskPng().then((a) => Array.from(a))"))
    assert np.array_equal(decode_image(shown_mask, "shown") > 127,
                          decode_image(mask_png, "sent") > 127)
    api = httpx.post(f"{url}/v1/search", headers=auth(), timeout=60, files={
        "print": ("p.png", print_png), "mask": ("m.png", mask_png)},
        data={"k": "100", "filters": json.dumps({"descriptors": [code]})}).json()
    assert [r["model_id"] for r in api["results"]] == [r["model_id"] for r in rows]
    shots.take("results")

    # 6 · compare the first candidate (Tab from the search button reaches it; Enter opens it);
    # move the overlay's opacity slider with the keyboard.
    first = tab_until(driver, lambda e: "card" in (e.get_attribute("class") or ""), "a card")
    assert first.get_attribute("data-index") == "0"
    ActionChains(driver).send_keys(Keys.ENTER).perform()
    wait(driver, lambda d: d.execute_script(
        "const h = document.getElementById('heatmap'); return h.complete && h.naturalWidth > 0"),
        "the heat map")
    slider = driver.find_element(By.ID, "opacity")
    slider.send_keys(Keys.ARROW_RIGHT * 20)
    assert driver.find_element(By.ID, "ov-query").value_of_css_property("opacity") == "0.7"
    shots.take("compare")

    # 7 · decide on two candidates, keyboard only: 1 / 2 mark, → moves on.
    panel = driver.find_element(By.ID, "compare-panel")
    panel.send_keys("1")
    driver.find_element(By.ID, "note").send_keys("toe region agrees")
    driver.find_element(By.ID, "note").send_keys(Keys.TAB, Keys.ENTER)
    wait(driver, lambda d: "saved" in d.find_element(By.ID, "decision-info").text, "decision 1")
    panel.send_keys(Keys.ARROW_RIGHT)
    wait(driver, lambda d: "not marked" in d.find_element(By.ID, "decision-info").text,
         "the next candidate")
    driver.find_element(By.ID, "compare-panel").send_keys("2")
    assert driver.switch_to.active_element.get_attribute("value") == "excluded"
    assert not focus_outline(driver).startswith("none")
    driver.find_element(By.ID, "note").send_keys("heel pattern differs")
    driver.find_element(By.ID, "save-decision").send_keys(Keys.ENTER)
    wait(driver, lambda d: "saved: excluded" in d.find_element(By.ID, "decision-info").text,
         "decision 2")
    badges = [b.text for b in driver.find_elements(By.CSS_SELECTOR, "#results .badge")]
    assert badges == ["possible match", "excluded"]
    shots.take("decided")

    # 8 · the case file: re-run gives the same ranking; export the PDF.
    driver.find_element(By.XPATH, "//table[@id='queries']//button[text()='Re-run']").click()
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#queries .same"), "the re-run")
    rerun = httpx.post(f"{recorded}/rerun", headers=auth("bob"), timeout=60).json()
    assert rerun["same_ranking"] and [r["model_id"] for r in rerun["results"]] == \
        [r["model_id"] for r in rows]
    # the server's placement search: the kept placement is the best of those tried, and a
    # re-run repeats the search exactly
    recorded_prep = json.loads(driver.execute_script(
        "return JSON.stringify(window.workbench.state.prep)"))
    searched = httpx.post(f"{url}/v1/cases/T-001/queries", headers=auth(), timeout=120, data={
        "upload_sha256": sha, "preparation": json.dumps({**recorded_prep, "placement": "search"}),
        "filters": json.dumps({"descriptors": [code]}), "k": "100"},
        files={"mask": ("m.png", mask_png)})
    assert searched.status_code == 200, searched.text
    placement = searched.json()["placement"]
    assert len(placement["tried"]) >= 3
    best = max(placement["tried"], key=lambda t: t["top_score"])
    assert placement["chosen"]["x"] == best["x"]
    assert searched.json()["results"][0]["score"] == best["top_score"]
    again = httpx.post(f"{url}/v1/cases/T-001/queries/{searched.json()['query_id']}/rerun",
                       headers=auth(), timeout=120).json()
    assert again["same_ranking"] and again["placement"]["chosen"] == placement["chosen"]
    assert [t["top_score"] for t in again["placement"]["tried"]] == pytest.approx(
        [t["top_score"] for t in placement["tried"]], rel=1e-5)  # encoder batches differ
    driver.find_element(By.ID, "export-pdf").click()
    pdf_path = driver.downloads / "case-T-001.pdf"
    wait(driver, lambda d: pdf_path.exists() and pdf_path.stat().st_size > 0, "the PDF")
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf_path.read_bytes())).pages)
    flat = text.replace("\n", "")
    assert sha in flat and "toe region agrees" in text and "heel pattern differs" in text
    assert "possible match" in text and "excluded" in text and f"rotate: {-PHOTO_TILT:g}°" in text
    shots.take("exported", full_page=True)
    assert no_horizontal_overflow(driver)

    records = CaseRecords(db_url)
    with records.sessions() as session:
        entries = session.query(AuditEntry).order_by(AuditEntry.id).all()
        assert audit.verify(session).ok
    actions = [(e.user, e.action) for e in entries if e.case_id == "T-001"]
    assert ("alice", "decision.set") in actions and ("bob", "query.rerun") in actions
    assert ("alice", "report.export") in actions

    driver.set_window_size(1920, 1080)
    time.sleep(0.5)
    assert no_horizontal_overflow(driver)
    shots.take("wide-1920x1080")
    shots.take("wide-1920x1080-full", full_page=True)


def test_bad_input_is_refused_with_a_message(workbench, photo, browser, tmp_path):
    url, _, db_url, _ = workbench
    driver = browser
    shots = Screenshots(driver, "bad_input")
    sign_in_and_open_case(driver, url, "T-002", user="bob")
    records = CaseRecords(db_url)

    def counts() -> tuple[int, int]:
        with records.sessions() as session:
            return (session.query(AuditEntry).count(),
                    len(records.case_file("T-002")["queries"]))

    before = counts()
    # dropped on the page (a drop event carrying the file, as a desktop drag delivers it)
    driver.execute_script(
        "const data = new DataTransfer();"
        "data.items.add(new File(['this is not an image'], 'junk.png', {type: 'image/png'}));"
        "document.getElementById('drop').dispatchEvent("
        "  new DragEvent('drop', {dataTransfer: data, bubbles: true, cancelable: true}))")
    assert "junk.png: cannot decode" in wait_error(driver, "cannot decode")
    shots.take("unreadable")
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(bomb_png())
    load_photo(driver, bomb)
    assert "refused before decoding" in wait_error(driver, "refused before decoding")
    shots.take("bomb")
    assert counts() == before  # nothing written, not even an audit entry

    dismiss_error(driver)
    load_photo(driver, photo)
    wait(driver, lambda d: "SHA-256" in d.find_element(By.ID, "original-info").text, "upload")
    set_field(driver, "pxcm", "60")
    assert "outside 2–50 px/cm" in wait_error(driver, "outside")
    shots.take("scale")
    set_field(driver, "pxcm", "8")
    dismiss_error(driver)
    set_field(driver, "codes", "D99")
    driver.find_element(By.ID, "search").click()
    assert "D99" in wait_error(driver, "unknown descriptor code")
    shots.take("unknown-code")
    driver.find_element(By.ID, "mask-none").click()
    driver.find_element(By.ID, "search").click()
    assert "mask is empty" in wait_error(driver, "mask is empty")
    shots.take("empty-mask")
    after_upload = counts()
    assert after_upload[1] == before[1]  # no query recorded by any refused search

    sha = driver.execute_script("return window.workbench.state.upload.sha256")
    canvas = driver.execute_script("return window.workbench.state.config.canvas")
    full = encode_png(np.full((canvas["height"], canvas["width"]), 255, np.uint8))
    base = {"upload_sha256": sha, "preparation": json.dumps({"px_per_cm": 8}), "k": "10"}
    cases = [
        ({"preparation": json.dumps({"px_per_cm": 1})}, full, 400, "px_per_cm must be between"),
        ({"filters": json.dumps({"descriptors": ["D99"]})}, full, 400, "D99"),
        ({}, encode_png(np.zeros((canvas["height"], canvas["width"]), np.uint8)), 400,
         "mask is empty"),
        ({}, encode_png(np.full((10, 10), 255, np.uint8)), 400, "but the print is"),
        ({"upload_sha256": "0" * 64}, full, 404, "no upload with SHA-256"),
    ]
    for extra, mask, status, reason in cases:
        response = httpx.post(f"{url}/v1/cases/T-002/queries", headers=auth("bob"), timeout=60,
                              data={**base, **extra}, files={"mask": ("m.png", mask)})
        assert response.status_code == status, (reason, response.text)
        assert reason in response.json()["error"]
    for name, data, status, reason in [("junk.png", b"not an image", 400, "cannot decode"),
                                       ("bomb.png", bomb_png(), 413, "refused before decoding")]:
        response = httpx.post(f"{url}/v1/cases/T-002/uploads", headers=auth("bob"), timeout=60,
                              files={"image": (name, data)})
        assert response.status_code == status and reason in response.json()["error"]
    assert httpx.get(f"{url}/v1/cases", timeout=30).status_code == 401
    assert httpx.get(f"{url}/v1/cases", timeout=30,
                     headers={"Authorization": "Bearer wrong-token-123456"}).status_code == 401
    assert httpx.get(f"{url}/", timeout=30).status_code == 200  # the page itself is open
    assert counts() == after_upload
    with records.sessions() as session:
        assert audit.verify(session).ok


def _png(grey: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(grey).save(out, format="PNG")
    return out.getvalue()


def _propose(url: str, data: bytes, case_id: str | None = None) -> httpx.Response:
    form = {"case_id": case_id} if case_id else {}
    return httpx.post(f"{url}/v1/prepare", headers=auth(), files={"image": ("p.png", data)},
                      data=form, timeout=120)


def test_prepare_proposes_the_preparation_and_audits_it(workbench, tiny_refs):
    """`POST /v1/prepare` on a synthetic scene photograph: the ruler's scale, the turn that
    lays the sole toe right, the crop and the mask on the canvas, as the case file's
    preparation parameters; the proposal is an audit entry of the case."""
    from tests.synthetic_scene import scene as scene_photo

    url, root, db_url, _ = workbench
    httpx.post(f"{url}/v1/cases", headers=auth(), json={"id": "T-PROP"}, timeout=30)
    answer = _propose(url, _png(scene_photo(20.0, 33.0, seed=1)), "T-PROP")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    prep = body["preparation"]
    assert prep["px_per_cm"] == pytest.approx(20.0, rel=0.02)
    # the scene's sole lies toe right turned 33° ccw: -33° (or +147°, heel first) undoes it
    assert min(abs(prep["rotate_deg"] + 33), abs(prep["rotate_deg"] - 147)) < 8
    rotation = body["rotation"]
    assert rotation["rotate_deg"] == prep["rotate_deg"]
    assert abs((rotation["alternative_deg"] - rotation["rotate_deg"]) % 360 - 180) < 0.01
    assert prep["crop"] == body["crop"]["box"] and body["problems"] == []
    refs = open_dataset(f"{tiny_refs}/references")
    mask = decode_image(base64.b64decode(body["mask"]["canvas_png"]), "mask")
    assert mask.shape == (refs.canvas.height, refs.canvas.width) and mask.any()
    records = CaseRecords(db_url)
    with records.sessions() as session:
        entries = session.query(AuditEntry).filter(AuditEntry.case_id == "T-PROP").all()
        proposed = [json.loads(e.details) for e in entries if e.action == "preparation.propose"]
    assert proposed and proposed[-1]["image_sha256"] == body["image_sha256"]
    assert proposed[-1]["preparation"] == prep
    with records.sessions() as session:
        assert audit.verify(session).ok


@pytest.mark.parametrize(("what", "words", "scale"), [
    ("no ruler", "no ruler found", False),
    ("blank", "blank", False),
    ("ruler only", "no print region", True),
    ("smaller than the stride", "smaller than", False),
])
def test_prepare_says_what_it_could_not_find(workbench, what, words, scale):
    from tests.synthetic_scene import scene as scene_photo

    image = {"no ruler": scene_photo(ruler=False, seed=2),
             "blank": np.full((450, 600), 200, np.uint8),
             "ruler only": scene_photo(print_=False, seed=4),
             "smaller than the stride": np.full((6, 7), 90, np.uint8)}[what]
    answer = _propose(workbench[0], _png(image))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert any(words in problem for problem in body["problems"]), body["problems"]
    assert (body["preparation"] is not None) == scale
    if not scale:
        assert body["scale"]["px_per_cm"] is None and words in " ".join(body["problems"])


def test_prepare_refuses_bytes_that_are_no_image(workbench):
    answer = _propose(workbench[0], b"not an image at all")
    assert answer.status_code == 400 and "image" in answer.json()["error"]


def test_proposal_on_a_scene_original_in_the_browser(workbench, browser, fid300_dir):
    """An FID-300 scene photograph loaded in the page: the preparation is pre-filled from the
    proposal (scale, crop, turn, mask), said to be a proposal to check; screenshot at 1280×800."""
    url = workbench[0]
    driver = browser
    shots = Screenshots(driver, "proposal")
    sign_in_and_open_case(driver, url, "T-ORIG")
    original = fid300_dir / "originals" / "00243.jpg"
    if not original.is_file():
        pytest.skip("no FID-300 originals/ (scene photographs)")
    load_photo(driver, original)
    info = wait(driver, lambda d: "Proposed automatically" in d.find_element(
        By.ID, "proposal-info").text and d.find_element(By.ID, "proposal-info"), "the proposal")
    time.sleep(1.0)  # the preview is debounced
    shots.take("proposal-1280x800")
    proposal = driver.execute_script("return window.workbench.state.proposal")
    assert float(driver.find_element(By.ID, "pxcm").get_attribute("value")) == pytest.approx(
        proposal["scale"]["px_per_cm"], abs=0.01)
    assert driver.execute_script("return window.workbench.state.prep.crop") == \
        proposal["crop"]["box"]
    assert float(driver.find_element(By.ID, "rotate-num").get_attribute("value")) == \
        pytest.approx(proposal["rotation"]["rotate_deg"], abs=0.01)
    assert driver.execute_script("return window.workbench.mask.visibleCount()") > 0
    assert "check each value" in info.text
    driver.execute_script("document.getElementById('mask-panel').scrollIntoView()")
    shots.take("proposal-mask-on-canvas")
    turn = proposal["rotation"]["rotate_deg"]
    driver.find_element(By.ID, "proposal-turn").click()
    turned = float(driver.find_element(By.ID, "rotate-num").get_attribute("value"))
    assert abs((turned - turn) % 360 - 180) < 0.01
