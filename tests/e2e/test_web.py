"""The web client in headless Chromium against the real gateway, generator, trainer and evaluator.

Each test drives the page the way a person would (labelled controls, keyboard, buttons) and
checks what appears against what the REST API itself answers, so a page that shows the wrong
images, labels or progress fails here.
"""

from __future__ import annotations

import base64
import csv
import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

SEED = 1234


def _png_pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("L"))


def _card_pngs(page) -> list[bytes]:
    """The PNG bytes behind each image card's download link (data: URLs)."""
    hrefs = page.eval_on_selector_all("#gen-grid .card a[download]", "els => els.map(a => a.href)")
    return [base64.b64decode(h.split(",", 1)[1]) for h in hrefs]


def _generate(page, n: int, seed: int | None = SEED, **selects: str) -> None:
    form = page.locator("#gen-form")
    form.get_by_label("Number of images (N)").fill(str(n))
    for label, value in selects.items():
        form.get_by_label(label, exact=True).select_option(value)
    form.get_by_label("Seed", exact=True).fill("" if seed is None else str(seed))
    form.get_by_role("button", name="Generate", exact=True).click()


def _wait_cards(page, n: int, timeout: float = 60_000) -> None:
    """Wait until the grid holds ``n`` cards; if the page shows an error instead, fail with its text."""
    page.wait_for_function(
        "n => document.querySelectorAll('#gen-grid .card').length === n"
        " || !document.querySelector('#gen-error').hidden",
        arg=n,
        timeout=timeout,
    )
    err = page.locator("#gen-error")
    assert err.is_hidden(), f"the page shows an error instead of {n} images: {err.inner_text()}"


def test_generate_8_cardiomegaly_images(page, web_stack, shot) -> None:
    page.goto("/")
    # Landing page is Generate, with the model's findings (from GET /v1/models) and Cardiomegaly preselected.
    expect(page.locator("#gen-form").get_by_label("Finding", exact=True)).to_have_value("Cardiomegaly")
    assert page.get_by_label("Number of images (N)").input_value() == "16"
    _generate(page, 8)
    _wait_cards(page, 8)
    cards = page.locator("#gen-grid .card")
    assert cards.count() == 8
    labels = page.locator("#gen-grid .card .labels").all_inner_texts()
    assert all(t.startswith("Cardiomegaly · ") for t in labels), labels
    assert page.locator("#gen-seed-used").inner_text() == str(SEED)
    # The images really decode in the browser (no broken <img>).
    widths = page.eval_on_selector_all("#gen-grid img", "els => els.map(e => e.complete && e.naturalWidth)")
    assert len(widths) == 8 and all(w and w > 0 for w in widths), widths

    # Same labels and pixels as the API gives for the same request.
    api = web_stack.api(
        "/v1/generate",
        "POST",
        json={
            "model": "gdgan",
            "n": 8,
            "finding": "Cardiomegaly",
            "seed": SEED,
            "stage": 2,
            "format": "json",
        },
    )
    assert api.status_code == 200, api.text
    body = api.json()
    expected = [f"{im['finding_labels']} · {im['gender']} · {im['view']}" for im in body["images"]]
    assert labels == expected
    shown = _card_pngs(page)
    for got, im in zip(shown, body["images"]):
        assert np.array_equal(_png_pixels(got), _png_pixels(base64.b64decode(im["png"])))
    assert page.locator(".model-id").inner_text() == body["model_id"] == web_stack.model_id
    shot(page, "generate", docs=True)


def test_labels_follow_the_form(page) -> None:
    """Gender/view choices reach the API: every image carries the chosen labels."""
    page.goto("/")
    _generate(page, 4, seed=7, Gender="F", **{"View position": "AP"})
    _wait_cards(page, 4)
    labels = page.locator("#gen-grid .card .labels").all_inner_texts()
    assert labels == ["Cardiomegaly · F · AP"] * 4
    # "No finding" from the schema list.
    _generate(page, 3, seed=7, Finding="__none__")
    _wait_cards(page, 3)
    labels = page.locator("#gen-grid .card .labels").all_inner_texts()
    assert all(t.startswith("No Finding · ") for t in labels), labels


def test_zip_download_holds_8_pngs_and_labels(page, tmp_path) -> None:
    page.goto("/")
    _generate(page, 8)
    _wait_cards(page, 8)
    shown = _card_pngs(page)
    with page.expect_download() as dl_info:
        page.get_by_role("button", name="Download ZIP").click()
    path = tmp_path / "images.zip"
    dl_info.value.save_as(path)
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pngs = sorted(n for n in names if n.endswith(".png"))
        assert len(pngs) == 8, names
        assert "labels.csv" in names
        rows = list(csv.DictReader(io.StringIO(zf.read("labels.csv").decode())))
        zipped = [zf.read(n) for n in pngs]
    assert len(rows) == 8
    assert all("Cardiomegaly" in r["finding_labels"] for r in rows), rows
    # The ZIP holds the very images on screen (same seed, same request).
    for a, b in zip(shown, zipped):
        assert np.array_equal(_png_pixels(a), _png_pixels(b))


def test_stage1_and_stage2_side_by_side(page, shot) -> None:
    page.goto("/")
    page.get_by_label("Show stage 1 and stage 2 side by side (GDGAN)").check()
    assert page.get_by_label("Stage (GDGAN)").is_disabled()
    _generate(page, 6)
    _wait_cards(page, 6)
    assert page.locator("#gen-grid.compare").count() == 1
    pairs = page.locator("#gen-grid .card .pair")
    assert pairs.count() == 6
    assert page.locator("#gen-grid .card .pair img").count() == 12
    srcs = page.eval_on_selector_all(
        "#gen-grid .card .pair", "els => els.map(p => [...p.querySelectorAll('img')].map(i => i.src))"
    )
    # stage 2 refines stage 1: same seed, different image
    assert all(s1 != s2 for s1, s2 in srcs)
    shot(page, "generate_compare", docs=True)


def test_job_progress_bar_advances_to_done(page, web_stack, shot) -> None:
    page.goto("/#/jobs")
    page.get_by_text("Train a model").click()
    form = page.locator("#job-train-form")
    page.wait_for_function(
        "id => [...document.querySelectorAll('#tr-dataset option')].some(o => o.value === id)",
        arg=web_stack.dataset_id,
    )
    form.get_by_label("Dataset", exact=True).select_option(web_stack.dataset_id)
    # ACGAN: one training phase, so one bar from 0 to 1 (a GDGAN job runs stage 1, then stage 2)
    form.get_by_label("Model", exact=True).select_option("acgan")
    form.get_by_label("Preset", exact=True).select_option("tiny")
    # Record every value the job rows' progress bars take, as the SSE events arrive.
    page.evaluate(
        """() => {
        window.__progress = [];
        new MutationObserver(ms => ms.forEach(m => {
          if (m.target.tagName === 'PROGRESS') {
            const tr = m.target.closest('tr');
            window.__progress.push([tr && tr.dataset.jobId, m.target.getAttribute('value')]);
          }
        })).observe(document.querySelector('#jobs-table tbody'),
                    {subtree: true, attributes: true, attributeFilter: ['value']});
      }"""
    )
    form.get_by_role("button", name="Start training").click()
    info = page.locator("#jobs-error")
    info.wait_for()
    match = re.search(r"job (job-train-\S+?)[ .]", info.inner_text())
    assert match, info.inner_text()
    job_id = match.group(1)
    row = page.locator(f'tr[data-job-id="{job_id}"]')
    row.wait_for()
    shot(page, "jobs_running")
    page.wait_for_selector(f'tr[data-job-id="{job_id}"][data-status="succeeded"]', timeout=240_000)
    values = [float(v) for jid, v in page.evaluate("window.__progress") if jid == job_id and v is not None]
    assert any(0 < v < 1 for v in values), f"progress never advanced between 0 and 1: {values}"
    assert values == sorted(values), f"progress went backwards: {values}"
    assert row.locator("progress").get_attribute("value") == "1"
    assert "100 %" in row.locator(".progress-text").inner_text()
    # the API agrees, and the result links to the new model
    rec = web_stack.api(f"/v1/jobs/{job_id}").json()
    assert rec["status"] == "succeeded"
    assert row.get_by_role("link").filter(has_text=re.compile(r"^acgan-\d")).count() >= 1
    assert row.get_by_role("button", name=re.compile("Cancel")).is_hidden()
    shot(page, "jobs_done")


def test_cancel_a_queued_job(page, web_stack) -> None:
    """Cancel from the list: a job queued behind another on the one trainer ends 'cancelled' (the
    API agrees, and a second cancel is refused in words: 409)."""
    page.goto("/#/jobs")
    page.get_by_text("Train a model").click()
    form = page.locator("#job-train-form")
    page.wait_for_function(
        "id => [...document.querySelectorAll('#tr-dataset option')].some(o => o.value === id)",
        arg=web_stack.dataset_id,
    )
    form.get_by_label("Dataset", exact=True).select_option(web_stack.dataset_id)
    form.get_by_label("Preset", exact=True).select_option("tiny")
    info = page.locator("#jobs-error")
    ids = []
    for _ in range(2):  # the first keeps the single trainer busy, the second waits in the queue
        form.get_by_role("button", name="Start training").click()
        page.wait_for_function(
            "ids => { const t = document.querySelector('#jobs-error').innerText;"
            " const m = t.match(/job (job-train-[^ .]+)/); return m && !ids.includes(m[1]); }",
            arg=ids,
        )
        m = re.search(r"job (job-train-\S+?)[ .]", info.inner_text())
        assert m and m.group(1) not in ids, info.inner_text()
        ids.append(m.group(1))
    first, queued = ids
    page.get_by_role("button", name=f"Cancel job {queued}").click()
    page.wait_for_selector(f'tr[data-job-id="{queued}"][data-status="cancelled"]', timeout=120_000)
    assert web_stack.api(f"/v1/jobs/{queued}").json()["status"] == "cancelled"
    # cancelling a job that already ended: the API's 409, in words
    r = web_stack.api(f"/v1/jobs/{queued}/cancel", "POST")
    assert r.status_code == 409
    page.wait_for_selector(
        f'tr[data-job-id="{first}"]:is([data-status="succeeded"], [data-status="cancelled"])', timeout=240_000
    )


def test_422_names_the_field(page, shot) -> None:
    page.goto("/")
    _generate(page, 0)
    err = page.locator("#gen-error")
    err.wait_for()
    text = err.inner_text()
    assert "“n”" in text and "greater than or equal to 1" in text, text
    assert page.get_by_role("alert").count() >= 1
    assert page.get_by_label("Number of images (N)").get_attribute("aria-invalid") == "true"
    # over the cap: the server's own limit, in words
    _generate(page, 100000)
    page.wait_for_function("() => document.querySelector('#gen-error').innerText.includes('at most')")
    assert "“n”" in err.inner_text()
    assert page.locator("#gen-form").is_visible()  # never a blank page
    shot(page, "error_422")
    # the Jobs forms too: a phantom dataset needs at least 16 images
    page.goto("/#/jobs")
    page.locator("#job-dataset-form").get_by_label("Images", exact=True).fill("5")
    page.get_by_role("button", name="Create dataset").click()
    page.wait_for_function("() => document.querySelector('#jobs-error').innerText.includes('“n”')")
    assert "greater than or equal to 16" in page.locator("#jobs-error").inner_text()


def test_401_asks_for_the_token_then_works(anon_page, web_stack, shot) -> None:
    page = anon_page
    page.goto("/")
    _generate(page, 2)
    err = page.locator("#gen-error")
    err.wait_for()
    assert "needs a token" in err.inner_text() and "401" in err.inner_text()
    shot(page, "error_401")
    # The Jobs page says the same instead of an empty table.
    page.goto("/#/jobs")
    page.wait_for_function("() => document.querySelector('#jobs-error').innerText.includes('token')")
    # Enter the token in the labelled field (it opened itself) and retry.
    page.get_by_role("link", name="Generate", exact=True).click()
    if page.locator("#token-panel").get_attribute("open") is None:
        page.locator("#token-panel summary").click()
    page.get_by_label("Bearer token (kept for this tab only)").fill(web_stack.token)
    page.get_by_role("button", name="Save").click()
    assert page.evaluate("sessionStorage.getItem('gdgan.apiToken')") == web_stack.token
    _generate(page, 2)
    _wait_cards(page, 2)
    # A wrong token is called out as such.
    page.evaluate("sessionStorage.setItem('gdgan.apiToken', 'wrong')")
    _generate(page, 2)
    page.wait_for_function("() => document.querySelector('#gen-error').innerText.includes('did not accept')")


def test_models_page(page, web_stack, shot) -> None:
    page.goto(f"/#/models/{web_stack.model_id}")
    detail = page.locator("#model-detail")
    detail.get_by_role("heading", name=re.compile(web_stack.model_id)).wait_for()
    page.wait_for_function(
        "() => { const i = document.querySelector('#model-samples');"
        " return i && i.complete && i.naturalWidth > 0; }"
    )
    lineage = detail.locator(".lineage").inner_text()
    assert web_stack.model_ids["stage1"] in lineage and web_stack.model_ids["stage2"] in lineage
    assert web_stack.dataset_id in lineage
    assert detail.get_by_text("Configuration (model and training settings)").is_visible()
    assert detail.get_by_role("heading", name="Final losses").is_visible()
    assert page.locator("#models-list").get_by_text(web_stack.model_id).is_visible()
    shot(page, "models_before_evaluation")
    # lineage links lead to the parent model's page
    detail.get_by_role("link", name=web_stack.model_ids["stage1"]).click()
    detail.get_by_role("heading", name=re.compile(web_stack.model_ids["stage1"])).wait_for()
    # "Generate with this model" preselects it
    page.goto(f"/#/models/{web_stack.model_id}")
    page.get_by_role("link", name="Generate with this model").click()
    page.wait_for_function(f"() => document.querySelector('#gen-model').value === {web_stack.model_id!r}")


def test_evaluate_job_report_on_reports_page(page, web_stack, shot) -> None:
    """Evaluation through the UI (real evaluator worker, fan-out parts), then its report page."""
    page.goto("/#/jobs")
    page.get_by_text("Evaluate (Tables 1–2)").click()
    form = page.locator("#job-eval-form")
    page.wait_for_function(
        "id => [...document.querySelectorAll('#ev-acgan option')].some(o => o.value === id)",
        arg=web_stack.model_ids["acgan"],
    )
    form.get_by_label("Dataset", exact=True).select_option(web_stack.dataset_id)
    form.get_by_label("GDGAN model", exact=True).select_option(web_stack.model_id)
    form.get_by_label("ACGAN model", exact=True).select_option(web_stack.model_ids["acgan"])
    form.get_by_label("Repeats (splits)", exact=True).fill("1")
    form.get_by_label("Preset", exact=True).select_option("tiny")
    form.get_by_role("button", name="Start evaluation").click()
    info = page.locator("#jobs-error")
    page.wait_for_function("() => document.querySelector('#jobs-error').innerText.includes('job-evaluate-')")
    job_id = re.search(r"job (job-evaluate-\S+?)[ .]", info.inner_text()).group(1)
    row = page.locator(f'tr[data-job-id="{job_id}"]')
    try:  # a picture of the list with this job half-way, for the README
        page.wait_for_function(
            "id => { const r = document.querySelector(`tr[data-job-id='${id}']`);"
            " const v = r && Number(r.querySelector('progress').getAttribute('value'));"
            " return r && r.dataset.status === 'running' && v > 0.15 && v < 0.9; }",
            arg=job_id,
            timeout=240_000,
        )
        shot(page, "jobs", docs=True)
    except PlaywrightTimeout:
        pass  # finished between two polls; the end state is checked below
    page.wait_for_selector(f'tr[data-job-id="{job_id}"][data-status="succeeded"]', timeout=480_000)
    rec = web_stack.api(f"/v1/jobs/{job_id}").json()
    report_id = next(v for v in rec["result"].values() if isinstance(v, str) and v.startswith("report-"))
    # the job's result links to its report
    row.get_by_role("link", name=report_id).first.click()
    page.locator("#report-auc-table").wait_for()
    report = web_stack.api(f"/v1/reports/{report_id}").json()
    # Table 2 shows every strategy with the report's own AUC
    rows = page.locator("#report-auc-table tbody tr")
    assert rows.count() == len(report["table2"]["rows"]) == 5
    none_auc = report["table2"]["rows"]["none"]["auc_mean"]
    assert page.locator("#report-auc-table tbody tr").first.inner_text().startswith("None (as is)")
    assert f"{none_auc:.4f}".rstrip("0").rstrip(".") in rows.first.inner_text()
    # and the service's full HTML report (ROC figure included) is embedded, inert
    page.wait_for_function(
        "() => { const h = document.querySelector('#report-embed');"
        " return h && h.shadowRoot && h.shadowRoot.querySelectorAll('img').length > 0; }"
    )
    assert (
        page.evaluate("document.querySelector('#report-embed').shadowRoot.querySelectorAll('script').length")
        == 0
    )
    # its CSS still applies under the page's CSP (no inline <style>): constructed style sheets
    assert page.evaluate("document.querySelector('#report-embed').shadowRoot.adoptedStyleSheets.length") >= 2
    assert page.locator("#reports-list").get_by_text(report_id).is_visible()
    shot(page, "reports", docs=True)
    # the model page now finds its fidelity metrics in this report
    page.goto(f"/#/models/{web_stack.model_id}")
    page.locator("#model-detail").get_by_role("link", name=report_id).wait_for()
    fid = page.locator("#model-detail").inner_text()
    lf = report["quality"]["label_fidelity"]["gdgan"]
    assert "finding AUC (label fidelity)" in fid and f"{lf['finding_auc']:.4f}".rstrip("0").rstrip(".") in fid
    shot(page, "models", docs=True)


def test_unknown_report_is_a_readable_404(page) -> None:
    page.goto("/#/reports")
    page.get_by_role("heading", name="Evaluation reports").wait_for()
    page.get_by_label("Report id").fill("report-20260101-0123456789")
    page.get_by_role("button", name="Open").click()
    page.wait_for_function("() => document.querySelector('#reports-error').innerText.includes('Not found')")
    assert "report-20260101-0123456789" in page.locator("#reports-error").inner_text()


def test_keyboard_and_labels(page) -> None:
    page.goto("/")
    # Every form control on every page has a label (or an aria-label).
    for route in ("#/generate", "#/jobs", "#/models", "#/reports"):
        page.goto("/" + route)
        unlabelled = page.evaluate(
            """() => [...document.querySelectorAll(
                   '.page:not([hidden]) input, .page:not([hidden]) select, header input')]
                 .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
                 .map(e => e.id || e.name)"""
        )
        assert unlabelled == [], (route, unlabelled)
    # Generate with the keyboard only: type N, Enter submits.
    page.goto("/")
    page.get_by_label("Number of images (N)").focus()
    page.keyboard.press("Control+A")
    page.keyboard.type("3")
    page.keyboard.press("Enter")
    _wait_cards(page, 3)
    # Tab from the grid's first download link reaches the next one (links are focusable).
    page.locator("#gen-grid a[download]").first.focus()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.matches('#gen-grid a[download]')")


def test_narrow_window(open_page, web_stack, shot) -> None:
    page = open_page(viewport={"width": 390, "height": 844})
    if True:
        for route in ("#/generate", "#/jobs", "#/models", "#/reports"):
            page.goto("/" + route)
            page.wait_for_timeout(300)
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, f"{route} scrolls sideways by {overflow}px on a narrow window"
        # a model's page with its loss charts drawn, and the comparison form open
        page.goto(f"/#/models/{web_stack.model_id}")
        page.locator('#model-curves .loss-chart[data-phase="stage2"]').wait_for()
        page.get_by_text("Compare two models side by side").click()
        assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 1
        page.goto("/")
        _generate(page, 4)
        _wait_cards(page, 4)
        assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 1
        shot(page, "generate_narrow", docs=True)


def test_error_messages_in_plain_words(page) -> None:
    """The page's own error wording for each status the API uses (run in the browser)."""
    page.goto("/")
    msgs = page.evaluate(
        """async () => {
          const m = await import('/js/api.js');
          return [
            m.describeError(503, {detail: 'generation queue full; retry shortly'}, '3').message,
            m.describeError(422, {detail: [{loc: ['body', 'phantom', 'n'],
                                            msg: 'Input should be greater than or equal to 16'}]}).message,
            m.describeError(404, {detail: "no model 'gdgan-20260101-0123456789'"}).message,
            m.describeError(409, {detail: "job 'job-x' already succeeded"}).message,
            m.describeError(413, {detail: 'request body larger than 1000000 bytes'}).message,
            m.describeError(500, {detail: 'internal error (KeyError); see the service log'}).message,
          ];
        }"""
    )
    assert msgs[0] == (
        "The service is busy or not ready (503). generation queue full; retry shortly. Try again in 3 s."
    )
    assert msgs[1] == "Please check the field — “n”: Input should be greater than or equal to 16."
    assert msgs[2] == "Not found: no model 'gdgan-20260101-0123456789'"
    assert msgs[3] == "job 'job-x' already succeeded"
    assert msgs[4] == "request body larger than 1000000 bytes"
    assert msgs[5].startswith("The server hit an error (500).")


def test_busy_generator_is_retried(page) -> None:
    """503 + Retry-After: the page waits and retries by itself; if it stays busy, a Retry button.
    (The 503 is injected in the browser; every other answer comes from the real services.)"""
    calls = {"n": 0, "busy_until": 1}

    def handle(route) -> None:
        calls["n"] += 1
        if calls["n"] <= calls["busy_until"]:
            route.fulfill(
                status=503,
                headers={"Retry-After": "1", "Content-Type": "application/json"},
                body='{"detail": "generation queue full; retry shortly"}',
            )
        else:
            route.continue_()

    page.route("**/v1/generate", handle)
    page.goto("/")
    _generate(page, 2)
    _wait_cards(page, 2)
    assert calls["n"] == 2  # one busy answer, one automatic retry
    # Busy for longer than the automatic retries: the message and a Retry button.
    calls.update(n=0, busy_until=99)
    _generate(page, 2)
    page.wait_for_function("() => !document.querySelector('#gen-error').hidden", timeout=30_000)
    assert "busy" in page.locator("#gen-error").inner_text()
    assert calls["n"] == 3
    calls["busy_until"] = 0
    page.locator("#gen-error").get_by_role("button", name="Retry").click()
    _wait_cards(page, 2)


def test_any_registered_model(page, web_stack) -> None:
    """The model list offers the latest aliases and every registered model; the stage controls
    follow what the chosen model can do."""
    page.goto("/")
    form = page.locator("#gen-form")
    model = form.get_by_label("Model", exact=True)
    page.wait_for_function(
        "id => [...document.querySelectorAll('#gen-model option')].some(o => o.value === id)",
        arg=web_stack.model_ids["acgan"],
    )
    # ACGAN: one stage, so no stage choice and no side-by-side view
    model.select_option(web_stack.model_ids["acgan"])
    assert form.get_by_label("Stage (GDGAN)").is_disabled()
    assert form.get_by_label("Show stage 1 and stage 2 side by side (GDGAN)").is_disabled()
    _generate(page, 2)
    _wait_cards(page, 2)
    assert page.locator(".model-id").inner_text() == web_stack.model_ids["acgan"]
    # a stage-1 model: stage 1 is the only choice
    model.select_option(web_stack.model_ids["stage1"])
    assert form.get_by_label("Stage (GDGAN)").input_value() == "1"
    _generate(page, 2)
    _wait_cards(page, 2)
    assert page.locator(".model-id").inner_text() == web_stack.model_ids["stage1"]
    assert "stage 1" in page.locator(".result-summary").inner_text()


# --- training you can watch: one bar across phases, loss curves, comparison, accessibility ----
def _canvas_painted(page, selector: str) -> bool:
    """True when the chart's canvas has drawn pixels of a series colour (not only axes/grid)."""
    return page.evaluate(
        """sel => { const c = document.querySelector(sel + ' canvas'); if (!c) return false;
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let coloured = 0;  // a saturated pixel: a curve, not the grey axes or grid
        for (let i = 0; i < d.length; i += 4)
          if (d[i + 3] > 0
              && Math.max(d[i], d[i+1], d[i+2]) - Math.min(d[i], d[i+1], d[i+2]) > 60) coloured++;
        return coloured > 20; }""",
        selector,
    )


def test_gdgan_job_one_bar_across_phases_with_live_curves(page, web_stack, shot) -> None:
    """A GDGAN job (stage 1, then stage 2) has one bar that never goes back, with the phase beside
    the overall percentage and an ETA; its loss curves grow and its sample grid changes while it
    trains."""
    page.goto("/#/jobs")
    page.get_by_text("Train a model").click()
    form = page.locator("#job-train-form")
    page.wait_for_function(
        "id => [...document.querySelectorAll('#tr-dataset option')].some(o => o.value === id)",
        arg=web_stack.dataset_id,
    )
    form.get_by_label("Dataset", exact=True).select_option(web_stack.dataset_id)
    form.get_by_label("Model", exact=True).select_option("gdgan")
    form.get_by_label("Preset", exact=True).select_option("tiny")
    # Record every (bar value, text, ETA, points in the stage-1 chart) the row shows.
    page.evaluate(
        """() => {
        window.__seen = [];
        const tbody = document.querySelector('#jobs-table tbody');
        new MutationObserver(() => {
          for (const tr of tbody.querySelectorAll('tr[data-job-id]')) {
            const below = `tr[data-curves-of='${tr.dataset.jobId}']`;
            const c = tbody.querySelector(`${below} .loss-chart[data-phase='stage1']`);
            const pv = tbody.querySelector(`${below} .job-preview img`);
            window.__seen.push([tr.dataset.jobId, tr.querySelector('progress').getAttribute('value'),
              tr.querySelector('.progress-text').textContent, tr.children[4].textContent,
              c ? Number(c.dataset.points) : 0,
              pv && pv.complete && pv.naturalWidth ? pv.closest('figure').dataset.phase + ' '
                + pv.closest('figure').dataset.step : '']);
          }
        }).observe(tbody, {subtree: true, childList: true, characterData: true, attributes: true});
      }"""
    )
    form.get_by_role("button", name="Start training").click()
    info = page.locator("#jobs-error")
    page.wait_for_function("() => document.querySelector('#jobs-error').innerText.includes('job-train-')")
    job_id = re.search(r"job (job-train-\S+?)[ .]", info.inner_text()).group(1)
    curves = page.locator(f'tr[data-curves-of="{job_id}"]')
    try:  # the picture for the docs: stage 2 under way, both charts drawn
        page.wait_for_function(
            "id => { const r = document.querySelector(`tr[data-job-id='${id}']`);"
            " return r && r.dataset.status === 'running' && r.innerText.includes('Stage 2')"
            " && Number(r.querySelector('progress').getAttribute('value')) >= 0.8; }",
            arg=job_id,
            timeout=240_000,
        )
        shot(page, "jobs_training", docs=True)
    except PlaywrightTimeout:
        pass
    page.wait_for_selector(f'tr[data-job-id="{job_id}"][data-status="succeeded"]', timeout=300_000)
    seen = [s for s in page.evaluate("window.__seen") if s[0] == job_id]
    values = [float(v) for _, v, *_ in seen if v is not None]
    assert values == sorted(values), f"the bar went backwards: {values}"
    assert any(0.05 < v < 0.5 for v in values) and any(0.5 < v < 1 for v in values), values
    texts = [t for _, _, t, *_ in seen]
    assert any("Stage 1 (1 of 2)" in t for t in texts), texts[:5]
    assert any("Stage 2 (2 of 2)" in t for t in texts), texts[-5:]
    # an ETA in words while it ran (the whole job's, not stage 1's)
    assert any(re.search(r"\d+ (s|min)", s[3]) for s in seen), {s[3] for s in seen}
    # the live sample grid appeared and changed, every 5 steps of each phase
    shown = list(dict.fromkeys(s[5] for s in seen if s[5]))
    assert len(shown) >= 3 and any(p.startswith("stage1 ") for p in shown), shown
    assert all(int(p.split()[1]) % 5 == 0 for p in shown), shown
    # the last grid is the one the stage-2 model keeps (same EMA weights, same fixed seeds)
    last = web_stack.api(f"/v1/jobs/{job_id}/preview.png")
    assert (last.headers["X-GDGAN-Phase"], last.headers["X-GDGAN-Step"]) == ("stage2", "30")
    stage2 = web_stack.api(f"/v1/jobs/{job_id}").json()["result"]["model_ids"]["stage2"]
    assert last.content == web_stack.api(f"/v1/models/{stage2}/samples.png").content
    # the stage-1 curve grew while the job ran, and both phases are drawn at the end
    points = [s[4] for s in seen]
    assert len({p for p in points if p > 0}) >= 3, f"stage-1 curve never grew live: {sorted(set(points))}"
    for phase in ("stage1", "stage2"):
        chart = curves.locator(f'.loss-chart[data-phase="{phase}"]')
        chart.wait_for()
        assert int(chart.get_attribute("data-points")) >= 2
        assert _canvas_painted(page, f'tr[data-curves-of="{job_id}"] .loss-chart[data-phase="{phase}"]'), (
            phase
        )
    assert web_stack.api(f"/v1/jobs/{job_id}").json()["progress"]["phases"] == ["stage1", "stage2"]
    # opened later, the finished job keeps its curves behind a toggle: the stored ones, in full
    page.reload()
    toggle = page.get_by_role("button", name=f"Loss curves of job {job_id}")
    toggle.click()
    assert toggle.get_attribute("aria-expanded") == "true"
    model = web_stack.api(f"/v1/jobs/{job_id}").json()["result"]["model_id"]
    stored = web_stack.api(f"/v1/models/{model}/losses").json()["phases"]
    for phase in ("stage1", "stage2"):
        chart = curves.locator(f'.loss-chart[data-phase="{phase}"]')
        chart.wait_for()
        assert int(chart.get_attribute("data-points")) == len(stored[phase]["step"])
    toggle.click()
    curves.wait_for(state="detached")


def test_models_page_loss_curves_match_the_api(page, web_stack, shot) -> None:
    stored = web_stack.api(f"/v1/models/{web_stack.model_id}/losses").json()["phases"]
    assert set(stored) == {"stage1", "stage2"}
    page.goto(f"/#/models/{web_stack.model_id}")
    box = page.locator("#model-curves")
    for phase, curves in stored.items():
        chart = box.locator(f'[data-phase="{phase}"]')
        chart.wait_for()
        assert int(chart.get_attribute("data-points")) == len(curves["step"])
        # every recorded loss term is a series in the legend
        legend = chart.locator(".u-legend").inner_text()
        assert all(name in legend for name in curves if name != "step"), (legend, list(curves))
        assert _canvas_painted(page, f'#model-curves [data-phase="{phase}"]'), phase
    # an ACGAN has one phase
    page.goto(f"/#/models/{web_stack.model_ids['acgan']}")
    box.locator('[data-phase="acgan"]').wait_for()
    assert box.locator(".loss-chart").count() == 1


def test_compare_two_models_side_by_side(page, web_stack, shot) -> None:
    gd, ac = web_stack.model_id, web_stack.model_ids["acgan"]
    page.goto("/#/models")
    page.get_by_text("Compare two models side by side").click()
    page.wait_for_function(
        "ids => ids.every(id => [...document.querySelectorAll('#cmp-b option')].some(o => o.value === id))",
        arg=[gd, ac],
    )
    form = page.locator("#compare-form")
    form.get_by_label("Model A").select_option(gd)
    form.get_by_label("Model B").select_option(ac)
    form.get_by_label("Finding").select_option("Cardiomegaly")
    form.get_by_label("Gender").select_option("M")
    form.get_by_label("View").select_option("AP")
    form.get_by_label("Images each").fill("6")
    form.get_by_label("Seed (both)").fill("77")
    form.get_by_role("button", name="Compare").click()
    page.locator("#compare-grid").wait_for(timeout=60_000)
    sides = page.locator("#compare-grid .compare-side")
    assert sides.count() == 2
    assert [sides.nth(i).get_attribute("data-model") for i in range(2)] == [gd, ac]
    labels = [sides.nth(i).locator(".card .labels").all_inner_texts() for i in range(2)]
    assert len(labels[0]) == len(labels[1]) == 6
    assert labels[0] == labels[1] == ["Cardiomegaly · M · AP"] * 6
    # each side shows exactly what the API gives that model for the same seed and labels
    for i, model in enumerate((gd, ac)):
        body = {"model": model, "n": 6, "seed": 77, "finding": "Cardiomegaly", "gender": "M", "view": "AP"}
        api = web_stack.api("/v1/generate", "POST", json={**body, "format": "json"}).json()["images"]
        shown = sides.nth(i).locator(".card img").evaluate_all("els => els.map(e => e.src.split(',')[1])")
        assert [_png_pixels(base64.b64decode(s)).tolist() for s in shown] == [
            _png_pixels(base64.b64decode(a["png"])).tolist() for a in api
        ]
    # each side carries its model's quality figures, from the newest report that sampled it
    reports = web_stack.api("/v1/reports").json()
    for i, model in enumerate((gd, ac)):
        q = sides.nth(i).locator(".compare-quality")
        q.get_by_role("heading", name="Quality figures").wait_for()
        if reports:  # the evaluation test (earlier in this module) scored both models
            q.get_by_role("link", name=re.compile(r"^report-")).wait_for()
            assert "finding AUC (label fidelity)" in q.inner_text(), model
        else:
            assert "No evaluation report has sampled this model yet" in q.inner_text()
    shot(page, "models_compare", docs=True)


AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"  # axe-core 4.14.1, MPL-2.0


def _axe_violations(page) -> list[dict]:
    # evaluated through the DevTools protocol: the page's CSP (rightly) refuses an injected <script>
    page.evaluate(AXE.read_text())
    result = page.evaluate(
        "async () => (await axe.run(document, {runOnly: {type: 'tag', values:"
        " ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}})).violations"
        ".map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}))"
    )
    return [v for v in result if v["impact"] in ("serious", "critical")]


@pytest.mark.parametrize("route", ["generate", "jobs", "models", "reports"])
def test_no_serious_accessibility_violations(page, web_stack, route) -> None:
    """axe-core (vendored) on every page, with its content loaded: keyboard, labels, contrast."""
    page.goto(f"/#/{route}")
    page.locator(f"#page-{route}").wait_for()
    if route == "generate":
        _generate(page, 4)
        _wait_cards(page, 4)
    elif route == "jobs":
        page.wait_for_selector("#jobs-table tbody tr", timeout=30_000)
    elif route == "models":
        page.goto(f"/#/models/{web_stack.model_id}")
        page.locator('#model-curves [data-phase="stage1"]').wait_for()
        page.get_by_text("Compare two models side by side").click()
    elif route == "reports":
        page.wait_for_timeout(1000)  # the list (possibly empty) and the first report load
    violations = _axe_violations(page)
    assert not violations, violations


def test_preview_and_curve_routes_refuse_bad_input_in_words(web_stack) -> None:
    """The routes behind the live grid and the curves: clear 4xx, never a 5xx."""
    r = web_stack.api("/v1/jobs/job-train-20260101-0000000000/preview.png")
    assert r.status_code == 404, r.text
    # a job that never trains has no preview, and says so
    job = web_stack.api("/v1/datasets", "POST", json={"source": "phantom", "n": 300, "size": 32}).json()
    r = web_stack.api(f"/v1/jobs/{job['job_id']}/preview.png")
    assert r.status_code == 404 and "no preview yet" in r.json()["detail"], r.text
    r = web_stack.api("/v1/models/gdgan-20260101-0000000000/losses")
    assert r.status_code == 404
    r = web_stack.api(f"/v1/models/{web_stack.model_id}/losses", params={"max_points": 1})
    assert r.status_code == 422 and "max_points" in r.text
    few = web_stack.api(f"/v1/models/{web_stack.model_id}/losses", params={"max_points": 5}).json()
    assert all(len(c["step"]) == 5 for c in few["phases"].values())


def test_models_page_draws_the_harness_quality_curves(page, web_stack) -> None:
    """A model whose run the quality harness scored (its ``quality_curve.json``, planted here as a
    copy of the fixture's stage-1 model plus a curve) shows those curves beside its losses."""
    from gdgan.store.local import LocalStore
    from gdgan.training.loss_curves import QUALITY_CURVE_FILE

    store = LocalStore(web_stack.store_dir, cache_dir=web_stack.store_dir.parent / "cache-q")
    src = store.manifest(web_stack.model_ids["stage1"])
    points = [
        {"step": s, "phase": "stage1", "relative_fd": 4.0 / s, "recall": s / 40, "cpu_s": 1.0}
        for s in (10, 20, 30)
    ]
    with store.writer(src.kind) as w:
        for name in src.files:
            w.put_bytes(name, store.get_bytes(src.id, name))
        w.put_json(QUALITY_CURVE_FILE, [{"phase": "stage1", "every": 10, "points": points}])
        m = w.commit(config=src.config, parents=src.parents, meta=src.meta)
    api = web_stack.api(f"/v1/models/{m.id}/losses").json()
    assert api["quality"]["stage1"]["recall"] == [0.25, 0.5, 0.75]
    page.goto(f"/#/models/{m.id}")
    chart = page.locator('#model-curves .quality-chart[data-quality-phase="stage1"]')
    chart.wait_for()
    assert chart.get_attribute("data-points") == "3"
    legend = chart.locator(".u-legend").inner_text()
    assert "relative_fd" in legend and "recall" in legend and "cpu_s" not in legend
    assert _canvas_painted(page, '#model-curves .quality-chart[data-quality-phase="stage1"]')
    # the loss chart of the same phase is still there, separately
    page.locator('#model-curves .loss-chart[data-phase="stage1"]').wait_for()


def test_a_model_with_another_label_schema_serves_its_own_labels(page, web_stack) -> None:
    """A GDGAN trained on data with only a view and three findings of its own: the page offers
    exactly that model's findings, hides gender, and the images carry the model's labels."""
    import torch
    from gdgan.data.dataset import ImageDataset
    from gdgan.data.phantom import PhantomConfig, make_phantom
    from gdgan.labels import LabelSchema
    from gdgan.store.local import LocalStore
    from gdgan.training.api import train

    torch.set_num_threads(1)
    store = LocalStore(web_stack.store_dir, cache_dir=web_stack.store_dir.parent / "cache-schema")
    base = make_phantom(PhantomConfig(n=64, size=32, seed=5))
    schema = LabelSchema(general=("view",), findings=("Opacity", "Tube", "Wire"))
    rng = np.random.default_rng(0)
    labels = {**base.labels, "findings": (rng.random((64, 3)) < 0.3).astype(np.uint8)}
    ds = ImageDataset(np.asarray(base.images), labels, config={"source": "test"}, schema=schema)
    ds.save(store)
    fast = {"steps": 4, "checkpoint_every": 2, "batch_size": 8, "ngf": 8, "ndf": 8}
    model_id = train("gdgan", ds.id, store=store, preset="tiny", overrides=fast, device="cpu").model_id
    assert model_id

    page.goto("/")
    form = page.locator("#gen-form")
    form.get_by_label("Model", exact=True).select_option(model_id)
    finding = form.get_by_label("Finding", exact=True)
    expect(finding).to_have_value("Opacity")  # the model's first finding; it has no Cardiomegaly
    values = finding.evaluate("s => [...s.options].map(o => o.value)")
    assert values == ["Opacity", "Tube", "Wire", "__none__"]
    expect(page.locator("#gen-gender")).to_be_hidden()
    expect(page.locator("#gen-view")).to_be_visible()
    _generate(page, 3, seed=3, Finding="Tube", **{"View position": "AP"})
    _wait_cards(page, 3)
    assert page.locator("#gen-grid .card .labels").all_inner_texts() == ["Tube · AP"] * 3
    # the NIH models still offer NIH's findings
    form.get_by_label("Model", exact=True).select_option("acgan")
    assert "Cardiomegaly" in finding.evaluate("s => [...s.options].map(o => o.value)")
    expect(page.locator("#gen-gender")).to_be_visible()


def test_new_dataset_form_offers_every_source_the_api_accepts(page, web_stack) -> None:
    """The "New dataset" form lists the sources and fields of GET /v1/datasets/sources (no copy in
    the page): a folder of PNGs without sex or view becomes a dataset through it, and a path
    outside the import folder is the server's 422, shown on that field."""
    import byo_layouts as L

    assert web_stack.import_dir is not None
    L.folder(web_stack.import_dir / "tree")
    api = web_stack.api("/v1/datasets/sources").json()["sources"]
    page.goto("/#/jobs")
    form = page.locator("#job-dataset-form")
    source = form.get_by_label("Source", exact=True)
    page.wait_for_function("() => document.querySelectorAll('#ds-source option').length > 1")
    offered = source.evaluate("s => [...s.options].map(o => o.value)")
    assert offered == [s["source"] for s in api]
    assert {"phantom", "nih", "chexpert", "mimic", "padchest", "vindr", "csv", "folder"} <= set(offered)
    # each source's fields are its request schema's properties, choices from its enums
    source.select_option("vindr")
    vindr = next(s for s in api if s["source"] == "vindr")["json_schema"]
    names = form.locator("#ds-fields [name]").evaluate_all("els => els.map(e => e.name)")
    assert names == [k for k in vindr["properties"] if k != "source"]
    merge = form.get_by_label("Merge", exact=True).evaluate("s => [...s.options].map(o => o.value)")
    assert merge == vindr["properties"]["merge"]["enum"]
    # a folder dataset through the form
    source.select_option("folder")
    form.get_by_label("Root", exact=True).fill("../../etc")
    form.get_by_label("Size", exact=True).select_option("32")
    page.get_by_role("button", name="Create dataset").click()
    page.wait_for_function("() => document.querySelector('#jobs-error').innerText.includes('import folder')")
    assert form.get_by_label("Root", exact=True).get_attribute("aria-invalid") == "true"
    before = {d["id"] for d in web_stack.api("/v1/datasets").json()}
    form.get_by_label("Root", exact=True).fill("tree")
    page.get_by_role("button", name="Create dataset").click()
    page.wait_for_function(
        "() => document.querySelector('#jobs-error').innerText.includes('Dataset started')"
    )
    text = page.locator("#jobs-error").inner_text()
    dataset_id = re.search(r"dataset (dataset-[\w-]+)", text).group(1)  # type: ignore[union-attr]
    assert dataset_id not in before
    for _ in range(120):
        got = {d["id"]: d for d in web_stack.api("/v1/datasets").json()}
        if dataset_id in got:
            break
        page.wait_for_timeout(500)
    d = got[dataset_id]
    assert d["config"]["source"] == "folder" and d["size"] == 32 and d["n"] == 18
    assert d["labels"]["general"] == [] and d["labels"]["findings"] == ["Cardiomegaly", "Effusion"]


def test_a_model_with_an_age_band_offers_its_bands(page, web_stack) -> None:
    """A GDGAN whose schema has an age band: the page offers exactly its bands (from the API), the
    images carry the asked band, and models without one hide the control."""
    import torch
    from gdgan.data.dataset import ImageDataset
    from gdgan.data.phantom import PhantomConfig, make_phantom
    from gdgan.labels import LabelSchema
    from gdgan.store.local import LocalStore
    from gdgan.training.api import train

    torch.set_num_threads(1)
    store = LocalStore(web_stack.store_dir, cache_dir=web_stack.store_dir.parent / "cache-age")
    base = make_phantom(PhantomConfig(n=64, size=32, seed=6))
    schema = LabelSchema(
        general=("gender", "view", "age_band"), findings=("Opacity", "Tube"), age_edges=(30, 70)
    )
    rng = np.random.default_rng(1)
    labels = {
        **base.labels,
        "age": np.resize(np.array([20, 50, 80], np.int16), 64),
        "findings": (rng.random((64, 2)) < 0.4).astype(np.uint8),
    }
    ds = ImageDataset(np.asarray(base.images), labels, config={"source": "test"}, schema=schema)
    ds.save(store)
    fast = {"steps": 4, "checkpoint_every": 2, "batch_size": 8, "ngf": 8, "ndf": 8}
    model_id = train("gdgan", ds.id, store=store, preset="tiny", overrides=fast, device="cpu").model_id
    assert model_id
    listed = {m["id"]: m for m in web_stack.api("/v1/models").json()["models"]}[model_id]
    assert listed["labels"]["values"]["age_band"] == ["0-29", "30-69", "70+"]

    page.goto("/")
    form = page.locator("#gen-form")
    form.get_by_label("Model", exact=True).select_option(model_id)
    age = form.get_by_label("Age band", exact=True)
    expect(age).to_be_visible()
    assert age.evaluate("s => [...s.options].map(o => o.value)") == ["", "0-29", "30-69", "70+"]
    _generate(page, 3, seed=5, Finding="Tube", Gender="F", **{"Age band": "70+"})
    _wait_cards(page, 3)
    req = {"model": model_id, "n": 3, "finding": "Tube", "gender": "F", "age_band": "70+", "seed": 5}
    body = web_stack.api("/v1/generate", "POST", json={**req, "format": "json"}).json()
    assert {im["age_band"] for im in body["images"]} == {"70+"}
    # the page shows what the API answers for the same request (the view is drawn from the mix)
    want = [f"Tube · F · {im['view']} · 70+" for im in body["images"]]
    assert page.locator("#gen-grid .card .labels").all_inner_texts() == want
    bad = web_stack.api("/v1/generate", "POST", json={"model": model_id, "n": 1, "age_band": "90+"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][-1] == "age_band"
    assert "0-29, 30-69, 70+" in bad.json()["detail"][0]["msg"]
    # an NIH-schema model has no age band: the control goes away
    form.get_by_label("Model", exact=True).select_option("acgan")
    expect(page.locator("#gen-age-band")).to_be_hidden()
