"""End-to-end fixtures: a real stack (Redis, gateway, generator, trainer worker) and headless Chromium.

Why real processes: the web client only talks HTTP to the gateway, so the honest test is the
browser against the same commands docker-compose runs (``gdgan serve gateway|generator``,
``gdgan worker trainer|evaluator``, started by ``svcstack.start_stack``), on loopback
ports, with a ``tiny`` GDGAN and ACGAN trained beforehand on a phantom dataset in a temporary
file store. The API token is switched on, so every page is
exercised the way a protected deployment serves it (and the 401 path is real).

Chromium: Debian's package at /usr/bin/chromium (``make chromium`` installs it as root), driven
by Playwright's Python package; Playwright's own browser download is not used. Without the
binary the browser tests skip with the command that installs it.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts" / "web"
DOCS_IMG = REPO_ROOT / "docs" / "img"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CSP_BLOCKED = "Content Security Policy"  # how Chromium's console reports what the CSP blocked
TOKEN_KEY = "gdgan.apiToken"  # sessionStorage key used by services/gateway/web/js/api.js


@dataclass
class WebStack:
    """What the tests need to know about the running stack."""

    url: str
    generator_url: str
    token: str
    store_dir: Path
    dataset_id: str
    model_id: str
    model_ids: dict[str, str]
    import_dir: Path | None = None  # GDGAN_IMPORT_DIR: what POST /v1/datasets may read

    def api(self, path: str, method: str = "GET", **kw) -> httpx.Response:
        """Call the gateway directly (to check what the page shows against the API)."""
        headers = {"Authorization": f"Bearer {self.token}", **kw.pop("headers", {})}
        return httpx.request(method, self.url + path, headers=headers, timeout=120, **kw)


def _train_fixture_model(store_dir: Path) -> tuple[str, str, dict[str, str]]:
    """Phantom dataset + tiny GDGAN and ACGAN, written straight into the store the services read."""
    import torch
    from gdgan.data.phantom import PhantomConfig, make_phantom
    from gdgan.store.local import LocalStore
    from gdgan.training.api import train

    # Defaults are the fast test setting; the README screenshots are refreshed with a better model,
    # e.g. E2E_UPDATE_DOCS=1 E2E_MODEL_STEPS=300, or E2E_MODEL_PRESET=demo E2E_DATASET_SIZE=64.
    preset = os.environ.get("E2E_MODEL_PRESET", "tiny")
    size = int(os.environ.get("E2E_DATASET_SIZE", "32"))
    n = int(os.environ.get("E2E_DATASET_N", "600"))
    steps = os.environ.get("E2E_MODEL_STEPS")  # override the preset's generator updates per stage
    overrides = {"steps": int(steps)} if steps else None
    torch.set_num_threads(int(os.environ.get("E2E_TORCH_THREADS", "1")))
    store = LocalStore(store_dir, cache_dir=store_dir.parent / "cache")
    # Cardiomegaly at 8 %: enough positives for a tiny model to learn the label mix from, yet still
    # below the evaluation's target share, so the augmentation strategies really change the sets.
    ds = make_phantom(PhantomConfig(n=n, size=size, seed=0, prevalence={"Cardiomegaly": 0.08}))
    manifest = ds.save(store)
    result = train("gdgan", manifest.id, store=store, preset=preset, overrides=overrides, device="cpu")
    assert result.status == "succeeded", result
    acgan = train("acgan", manifest.id, store=store, preset=preset, overrides=overrides, device="cpu")
    assert acgan.status == "succeeded", acgan
    return manifest.id, result.model_id, {**result.model_ids, "acgan": acgan.model_id}


@pytest.fixture(scope="package")
def web_stack(redis_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebStack]:
    """The services engineer's test stack (``svcstack.start_stack``: ``gdgan serve gateway``,
    ``gdgan serve generator``, ``gdgan worker trainer`` and ``evaluator`` on free loopback ports)
    with the API token on, over a store that already holds a tiny GDGAN and ACGAN. Package-scoped:
    the browser modules share one stack (its models take minutes to train), and it stops when the
    e2e package is done, before other test packages run."""
    from svcstack import start_stack

    base = tmp_path_factory.mktemp("e2e")
    store_dir = base / "store"
    dataset_id, model_id, model_ids = _train_fixture_model(store_dir)
    token = "e2e-" + secrets.token_hex(8)
    # A database of its own on the session's Redis, so other tests' jobs never show up here.
    redis_url = redis_server.rsplit("/", 1)[0] + "/7"
    env = {
        "GDGAN_API_TOKEN": token,
        # every training step is a progress event, so the browser sees the bar move on a tiny run
        "GDGAN_JOB_PROGRESS_INTERVAL_S": "0",
        # a live sample grid every 5 steps, so a 30-step tiny run shows several per phase
        "GDGAN_JOB_PREVIEW_EVERY_STEPS": "5",
        "GDGAN_IMPORT_DIR": str(base / "imports"),
    }
    (base / "imports").mkdir()
    stack = start_stack(base / "home", redis_url=redis_url, env=env, store_url=store_dir.resolve().as_uri())
    try:
        yield WebStack(
            url=stack.cfg.gateway_url,
            generator_url=stack.cfg.generator_url,
            token=token,
            store_dir=store_dir,
            dataset_id=dataset_id,
            model_id=model_id,
            model_ids=model_ids,
            import_dir=base / "imports",
        )
    finally:
        stack.stop()
        # keep the service logs with the screenshots (CI uploads test-artifacts/)
        logs = ARTIFACTS / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        for log in stack.logs.glob("*.log"):
            shutil.copyfile(log, logs / log.name)


# --- browser -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Module-scoped: Playwright's sync API keeps an event loop running while it is open, which
    would break asyncio.run() in the test modules that follow."""
    if not Path(CHROMIUM).exists():
        pytest.skip(
            f"Chromium not found at {CHROMIUM}: install Debian's package (`make chromium` as root, or "
            "`apt-get install chromium`), or point CHROMIUM_PATH at a Chromium binary"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def _new_page(browser, stack: WebStack, token: str | None, viewport: dict[str, int]):
    context = browser.new_context(viewport=viewport, accept_downloads=True, base_url=stack.url)
    if token:
        # What the token field stores; set before any page script runs.
        context.add_init_script(f"sessionStorage.setItem({TOKEN_KEY!r}, {token!r});")
    page = context.new_page()
    page.errors = []  # type: ignore[attr-defined]
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))  # type: ignore[attr-defined]
    # The gateway's Content-Security-Policy is on for every test: anything it blocks (an inline
    # script or style the client still used) is a failure, as a broken page would be. So tests
    # pass wait_for_function a function ("() => ..."), never an expression string: Playwright
    # eval()s those in the page, which the policy (rightly) refuses.
    page.on("console", lambda m: page.errors.append(m.text) if CSP_BLOCKED in m.text else None)  # type: ignore[attr-defined]
    page.set_default_timeout(30_000)
    return context, page


@pytest.fixture
def open_page(browser, web_stack: WebStack) -> Iterator[object]:
    """Factory: ``open_page(token=..., viewport=...)`` -> a fresh tab (own sessionStorage).
    Each tab fails the test at teardown if its page threw an uncaught JavaScript error."""
    opened: list[tuple[object, object]] = []

    def make(token: str | None = web_stack.token, viewport: dict[str, int] | None = None):
        context, pg = _new_page(browser, web_stack, token, viewport or {"width": 1280, "height": 900})
        opened.append((context, pg))
        return pg

    yield make
    errors = [e for _, pg in opened for e in pg.errors]  # type: ignore[attr-defined]
    for context, _ in opened:
        context.close()
    assert not errors, f"uncaught JavaScript errors or CSP violations: {errors}"


@pytest.fixture
def page(open_page) -> object:
    """A fresh tab with the API token already entered."""
    return open_page()


@pytest.fixture
def anon_page(open_page) -> object:
    """A fresh tab without a token (for the 401 path)."""
    return open_page(token=None)


@pytest.fixture
def shot():
    """``shot(page, name, docs=False)``: see :func:`screenshot`."""
    return screenshot


def screenshot(page, name: str, *, docs: bool = False) -> Path:
    """Save a full-page screenshot under test-artifacts/web/. With ``docs`` and the environment
    variable E2E_UPDATE_DOCS=1 it is also copied to docs/img/web_<name>.png for the README (opt-in,
    so a normal test run never rewrites tracked files)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    out = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(out), full_page=True)
    if docs and os.environ.get("E2E_UPDATE_DOCS") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out, DOCS_IMG / f"web_{name}.png")
    return out
