"""``gdgan demo`` (= ``make demo``): the whole experiment through the REST API.

Brings the local stack up (or reuses the one running in the demo folder), then, only via HTTP:
phantom dataset -> GDGAN + ACGAN training -> evaluation of the five strategies -> 16 synthetic
Cardiomegaly images. Prints the paper's Tables 1-2, where the report and the images are, and the
web page's URL. The stack keeps running so the web page can be opened; ``gdgan down`` stops it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from gdgan.cli.client import ClientError, GatewayClient, save_images
from gdgan.cli.evaluate import print_tables
from gdgan.localstack.stack import read_state


def _die(msg: str) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(2)


def _say(msg: str) -> None:
    typer.echo(msg, err=True)


def _ensure_stack(home: Path, gateway_port: int, generator_port: int, redis_port: int, workers: int) -> str:
    st = read_state(home)
    if st:
        try:
            GatewayClient(st["gateway"]).get("/readyz")
            _say(f"using the stack already running from {home} ({st['gateway']})")
            return str(st["gateway"])
        except ClientError:
            pass
    cmd = [
        sys.executable,
        "-m",
        "gdgan.cli.main",
        "up",
        "--detach",
        "--home",
        str(home),
        "--gateway-port",
        str(gateway_port),
        "--generator-port",
        str(generator_port),
        "--redis-port",
        str(redis_port),
        "--trainers",
        str(workers),
        "--evaluators",
        str(workers),
    ]
    _say(f"starting the local stack in {home} ...")
    if subprocess.run(cmd).returncode != 0:
        _die(f"the stack did not start; see {home / 'up.log'} and {home / 'logs'}")
    st = read_state(home)
    if not st:
        _die(f"the stack did not record its state in {home}")
    return str(st["gateway"])


def _wait(c: GatewayClient, label: str, job_id: str) -> dict[str, Any]:
    final = c.wait(job_id, label=label)
    if final["status"] != "succeeded":
        _die(f"{label}: job {job_id} {final['status']}: {final.get('error') or ''}")
    return final


def _run(c: GatewayClient, label: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = c.post(path, body)
    return {**_wait(c, label, r["job_id"]), **{k: v for k, v in r.items() if k != "job_id"}}


def report_models(report: dict[str, Any]) -> dict[str, str]:
    """The GDGAN and ACGAN ids the evaluation used for its first split: the models its Table 1
    scores. The demo's images come from these, not from whatever 'latest' is by then (another
    run may have trained a newer model meanwhile)."""
    repeats = (report.get("lineage") or {}).get("repeats") or []
    models = dict(repeats[0].get("models") or {}) if repeats else {}
    missing = [k for k in ("gdgan", "acgan") if not models.get(k)]
    if missing:
        raise ClientError(f"report {report.get('id', '')} names no {' or '.join(missing)} model for split 0")
    return {k: str(models[k]) for k in ("gdgan", "acgan")}


QUALITY_COLUMNS = (
    ("relative_fd", "rel. FD"),
    ("precision", "precision"),
    ("recall", "recall"),
    ("gender_accuracy", "gender acc."),
    ("view_accuracy", "view acc."),
    ("finding_auc_paired", "AUC paired"),
    ("finding_auc_independent", "AUC indep."),
    ("ctr_share_pos", "CTR>0.5 | +"),
    ("ctr_share_neg", "CTR>0.5 | −"),
)


def quality_rows(report: dict[str, Any]) -> list[list[str]]:
    """The harness figures of the report (split 0) as table rows, the real-test ceiling first."""
    h = (report.get("quality") or {}).get("harness") or {}
    if not h.get("available"):
        return []
    c = h.get("ceiling") or {}
    ceiling = {
        "relative_fd": 1.0,
        "gender_accuracy": c.get("gender_accuracy"),
        "view_accuracy": c.get("view_accuracy"),
        "finding_auc_paired": c.get("finding_auc"),
        "finding_auc_independent": c.get("finding_auc"),
        "ctr_share_pos": (c.get("ctr") or {}).get("share_above_pos"),
        "ctr_share_neg": (c.get("ctr") or {}).get("share_above_neg"),
    }
    rows = [["real test (ceiling)", *(_num(ceiling.get(k)) for k, _ in QUALITY_COLUMNS)]]
    for name, m in (h.get("models") or {}).items():
        d, g = m.get("distances") or {}, m.get("gan_test") or {}
        ind = g.get("independent") or {}
        vals = {
            **d,
            **g,
            "finding_auc_paired": (g.get("paired") or {}).get("auc"),
            "finding_auc_independent": ind.get("auc"),
            "ctr_share_pos": (ind.get("ctr") or {}).get("share_above_pos"),
            "ctr_share_neg": (ind.get("ctr") or {}).get("share_above_neg"),
        }
        rows.append(
            [
                {"stage2": "GDGAN", "acgan": "ACGAN"}.get(name, name),
                *(_num(vals.get(k)) for k, _ in QUALITY_COLUMNS),
            ]
        )
    return rows


def _num(v: Any) -> str:
    return "—" if v is None else f"{v:.3f}"


def print_quality(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    rows = quality_rows(report)
    if not rows:
        _say("(no quality-harness figures in this report)")
        return
    t = Table(
        "images",
        *(h for _, h in QUALITY_COLUMNS),
        title="Image quality (judge trained on real images, split 0)",
    )
    for row in rows:
        t.add_row(*row)
    Console(width=None if sys.stdout.isatty() else 200).print(t)


def demo(
    home: Annotated[Path | None, typer.Option(help="Demo folder (default <data_dir>/demo).")] = None,
    n: Annotated[int | None, typer.Option(help="Phantom images (default: the preset's).")] = None,
    size: Annotated[int | None, typer.Option(help="Image side (default: the preset's).")] = None,
    preset: Annotated[str, typer.Option(help="Training and evaluation preset.")] = "demo",
    repeats: Annotated[int | None, typer.Option(help="Splits (default: the preset's).")] = None,
    seed: Annotated[int, typer.Option(help="Phantom seed.")] = 0,
    gateway_port: Annotated[int, typer.Option(help="Gateway port.")] = 8000,
    generator_port: Annotated[int, typer.Option(help="Generator port.")] = 8001,
    redis_port: Annotated[int, typer.Option(help="Redis port.")] = 6379,
    stop: Annotated[bool, typer.Option("--stop/--keep", help="Stop the stack at the end.")] = False,
    workers: Annotated[
        int, typer.Option(min=1, max=8, help="Trainers and evaluators each (they split the CPU cores).")
    ] = 2,
) -> None:
    """Run the paper's experiment end to end through the REST API of a local stack."""
    from gdgan.evaluation.presets import get_eval_preset
    from gdgan.settings import get_settings

    home = (home or get_settings().data_dir / "demo").resolve()
    t0 = time.perf_counter()
    url = _ensure_stack(home, gateway_port, generator_port, redis_port, workers)
    c = GatewayClient(url)
    ep = get_eval_preset(preset)
    reps = repeats or ep.repeats
    n = n or ep.phantom_n
    size = size or ep.phantom_size
    try:
        ds = _run(
            c, "phantom dataset", "/v1/datasets", {"source": "phantom", "n": n, "size": size, "seed": seed}
        )
        dataset_id = ds["result"]["dataset_id"]
        _say(f"dataset {dataset_id}")
        # No model ids: the evaluation trains GDGAN and ACGAN per split on that split's training
        # part only (the paper's protocol without test-patient leakage), as fanned-out train tasks.
        ev = _run(
            c,
            "GAN training per split + evaluation (5 strategies)",
            "/v1/jobs/evaluate",
            {"dataset_id": dataset_id, "repeats": reps, "preset": preset, "finding": "Cardiomegaly"},
        )
        report_id = ev["result"]["report_id"]
        report = c.get(f"/v1/reports/{report_id}")
        used = report_models(report)
        gdgan_id, acgan_id = used["gdgan"], used["acgan"]
        body = {"model": gdgan_id, "n": 16, "finding": "Cardiomegaly", "seed": 0, "format": "zip"}
        out = home / "images"
        resp = c.request("POST", "/v1/generate", json=body, timeout=600)
        save_images(resp.content, out)
        grid = c.request("POST", "/v1/generate", json={**body, "format": "png"}, timeout=600).content
        (out / "grid.png").write_bytes(grid)
    except ClientError as exc:
        _die(str(exc))
    print_tables(report, harness=False)
    print_quality(report)
    st = read_state(home) or {}
    store = str(st.get("store", ""))
    local = (
        store.removeprefix("file://") + f"/artifacts/{report_id}/report.html"
        if store.startswith("file://")
        else ""
    )
    summary = {
        "dataset_id": dataset_id,
        "gdgan_model": gdgan_id,
        "acgan_model": acgan_id,
        "report_id": report_id,
        "report_url": f"{url}/v1/reports/{report_id}/html",
        "report_file": local,
        "images": str(out),
        "web": f"{url}/",
        "seconds": round(time.perf_counter() - t0, 1),
    }
    typer.echo(json.dumps(summary, indent=1))
    _say(f"report: {summary['report_url']}" + (f"  ({local})" if local else ""))
    _say(f"16 synthetic Cardiomegaly images from {gdgan_id} (split 0's GDGAN): {out} (grid.png)")
    if not stop:
        _say(f"web page: {url}/   (stop the stack with: gdgan down --home {home})")
    _say(f"total {summary['seconds']:.0f} s")
    if stop:
        from gdgan.localstack.stack import down

        down(home)
