"""The web client's side of the security review (OWASP API8, API2), in headless Chromium against
the real gateway: a strict Content-Security-Policy that the page works under and that really
blocks injected script; the token sent as a header only, never in a URL, kept in
sessionStorage (this tab) and never in localStorage or a cookie; nothing loaded from another
origin. Every other browser test runs under the same CSP and fails on any violation
(``conftest._new_page``)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e


def test_pages_work_under_the_csp_and_send_the_token_as_a_header_only(open_page, web_stack) -> None:
    page = open_page()
    requests: list[tuple[str, dict[str, str]]] = []
    page.on("request", lambda r: requests.append((r.url, r.headers)))
    response = page.goto("/")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "'unsafe-inline'" not in csp and "frame-ancestors 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    # the Generate page fills its findings from the API (the latest model's own labels), then
    # draws images (data:/blob: URLs)
    expect(page.locator("#gen-form").get_by_label("Finding", exact=True)).not_to_have_value("")
    page.get_by_label("Number of images (N)").fill("2")
    page.locator("#gen-form").get_by_role("button", name="Generate", exact=True).click()
    page.wait_for_function("() => document.querySelectorAll('#gen-grid .card img').length === 2")
    widths = page.eval_on_selector_all("#gen-grid img", "els => els.map(e => e.complete && e.naturalWidth)")
    assert all(w and w > 0 for w in widths), widths
    # the Models page draws its uPlot loss chart (vendored, same origin) under the same policy
    page.goto(f"/#/models/{web_stack.model_id}")
    page.locator('#model-curves [data-phase="stage1"] canvas').wait_for()
    page.goto("/#/jobs")
    page.wait_for_function(
        "() => document.querySelectorAll('#jobs-table tbody tr').length > 0"
        " || !document.querySelector('#jobs-empty').hidden"
    )

    origin = urlsplit(web_stack.url).netloc
    api_calls = [(u, h) for u, h in requests if urlsplit(u).path.startswith("/v1/")]
    assert api_calls, requests
    for url, _ in requests:
        assert web_stack.token not in url, url  # no token in any URL (query, fragment or path)
        if url.startswith(("data:", "blob:")):
            continue
        assert urlsplit(url).netloc == origin, f"a request left the gateway's origin: {url}"
    assert all(h.get("authorization") == f"Bearer {web_stack.token}" for _, h in api_calls)
    # where the token lives: this tab's sessionStorage only
    assert page.evaluate("sessionStorage.getItem('gdgan.apiToken')") == web_stack.token
    assert page.evaluate("Object.keys(localStorage).length") == 0
    assert page.context.cookies() == []


def test_the_csp_blocks_injected_script(open_page) -> None:
    """What an XSS would try: an inline <script> and an inline event handler put into the page.
    The CSP refuses both (and Chromium reports it), so neither runs."""
    page = open_page()
    page.goto("/")
    page.locator("#gen-form").wait_for()
    page.evaluate(
        """() => {
        window.__ran = [];
        document.addEventListener('securitypolicyviolation',
            (e) => window.__ran.push('blocked:' + e.violatedDirective));
        const s = document.createElement('script');
        s.textContent = "window.__ran.push('inline script')";
        document.body.append(s);
        const img = document.createElement('img');
        img.setAttribute('onerror', "window.__ran.push('handler')");
        img.src = 'data:,not-an-image';
        document.body.append(img);
    }"""
    )
    page.wait_for_function("() => window.__ran.filter(x => x.startsWith('blocked:')).length >= 2")
    ran = page.evaluate("window.__ran")
    assert "inline script" not in ran and "handler" not in ran, ran
    assert all(d.startswith("blocked:script-src") for d in ran), ran
    page.errors.clear()  # the violations were the point here, not a page defect


def test_reports_open_directly_are_sandboxed(web_stack) -> None:
    """Without the page around it, a report is served with a sandboxing CSP: an opaque origin that
    cannot script or read the gateway's storage."""
    r = web_stack.api("/v1/reports")
    assert r.status_code == 200
    csp = r.headers["content-security-policy"]
    assert csp.endswith("sandbox") and "default-src 'none'" in csp


def test_scope_and_quota_answers_in_plain_words(page) -> None:
    """A 403 (a scope the token lacks) and a 429 (a spent quota) say what happened and when to
    retry, in the server's own words."""
    page.goto("/")
    msgs = page.evaluate(
        """async () => {
          const m = await import('/js/api.js');
          return [
            m.describeError(403, {detail: "this token lacks the 'train' scope (it has: read)"}).message,
            m.describeError(429, {detail: 'rate limit: this token may use 2048 images per 60 s'},
                            '12').message,
          ];
        }"""
    )
    assert msgs[0] == "This token may not do that (403): this token lacks the 'train' scope (it has: read)."
    assert msgs[1] == (
        "This token's quota is used up for now (429). rate limit: this token may use 2048 images per 60 s."
        " Try again in 12 s."
    )
