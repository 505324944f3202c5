"""Client verbs over the REST API: ``gdgan jobs ...`` and ``gdgan generate``.

Progress bars are fed by the job's server-sent events (GET /v1/jobs/{id}/events), so the CLI
shows exactly what the web client and curl see. Errors are one line on stderr, exit code 2.
"""

from __future__ import annotations

import io
import json
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

app = typer.Typer(help="Jobs on a running gateway (see 'gdgan up').", no_args_is_help=True)

TERMINAL = ("succeeded", "failed", "cancelled")


class ClientError(RuntimeError):
    pass


def _detail(resp: httpx.Response) -> str:
    try:
        d = resp.json().get("detail")
    except ValueError:
        return resp.text[:300]
    if isinstance(d, list):
        return "; ".join(
            f"{'.'.join(str(x) for x in e.get('loc', [])[1:2] or e.get('loc', []))}: {e.get('msg')}"
            for e in d
        )
    return str(d)


class GatewayClient:
    """A thin typed wrapper of the gateway's REST API (used by the CLI verbs and the demo)."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        timeout: float = 60.0,
        say: Callable[[str], None] | None = None,
    ) -> None:
        from gdgan.settings import get_settings

        s = get_settings()
        self.url = (url or s.gateway_url).rstrip("/")
        self.reconnects = s.client_reconnects
        self.reconnect_interval_s = s.client_reconnect_interval_s
        self.say = say or (lambda msg: print(msg, file=sys.stderr, flush=True))
        tok = s.api_token.get_secret_value() if token is None else token
        headers = {"Authorization": f"Bearer {tok}"} if tok else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            resp = self.http.request(method, path, **kw)
        except httpx.TransportError as exc:
            raise ClientError(
                f"cannot reach the gateway at {self.url} ({exc}); is the stack up? ('gdgan up')"
            ) from None
        if resp.status_code >= 400:
            raise ClientError(f"{method} {path}: HTTP {resp.status_code}: {_detail(resp)}")
        return resp

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw).json()

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.request("POST", path, json=body or {}).json()

    def events(self, job_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """(event, data) pairs until the job ends. A dropped connection is retried with
        Last-Event-ID (no event lost), at most GDGAN_CLIENT_RECONNECTS times in a row,
        GDGAN_CLIENT_RECONNECT_INTERVAL_S apart, each attempt said on stderr; then ClientError.
        The job itself runs on: the error says how to look at it again."""
        last: str | None = None
        failures = 0
        while True:
            headers = {"Last-Event-ID": last} if last else {}
            ended = False
            try:
                with self.http.stream(
                    "GET",
                    f"/v1/jobs/{job_id}/events",
                    headers=headers,
                    timeout=httpx.Timeout(60.0, read=120.0),
                ) as resp:
                    if resp.status_code >= 400:
                        resp.read()
                        raise ClientError(f"events of {job_id}: HTTP {resp.status_code}: {_detail(resp)}")
                    event, data = "message", ""
                    if failures:
                        self.say(f"reconnected to {self.url}; following job {job_id} again")
                        failures = 0
                    for line in resp.iter_lines():
                        if line.startswith("event:"):
                            event = line[6:].strip()
                        elif line.startswith("data:"):
                            data += line[5:].strip()
                        elif line.startswith("id:"):
                            last = line[3:].strip()
                        elif line == "" and data:
                            payload = json.loads(data)
                            yield event, payload
                            if (event == "status" and payload.get("status") in TERMINAL) or (
                                event == "job" and payload.get("status") in TERMINAL
                            ):
                                ended = True
                            event, data = "message", ""
                    ended = True  # the server closes the stream when the job ended
            except httpx.TransportError as exc:  # RemoteProtocolError is one too
                failures += 1
                if failures > self.reconnects:
                    raise ClientError(
                        f"lost the gateway at {self.url} while following job {job_id} "
                        f"({type(exc).__name__}: {exc}); gave up after {self.reconnects} reconnection "
                        f"attempts. The job itself may still be running: 'gdgan jobs show {job_id}'"
                    ) from None
                self.say(
                    f"connection to {self.url} lost ({type(exc).__name__}); reconnecting in "
                    f"{self.reconnect_interval_s:g} s (attempt {failures}/{self.reconnects})"
                )
                time.sleep(self.reconnect_interval_s)
                continue
            if ended:
                return

    def wait(self, job_id: str, show: bool = True, label: str | None = None) -> dict[str, Any]:
        """Follow a job with a progress bar on stderr; returns the final record."""
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        console = Console(stderr=True)
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>5.1f}%"),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not show,
            transient=False,
        ) as bar:
            task = bar.add_task(label or job_id, total=1.0, info="queued")
            for event, data in self.events(job_id):
                if event == "job":
                    p = data.get("progress") or {}
                    bar.update(task, completed=float(p.get("fraction") or 0.0), info=data.get("status", ""))
                elif event == "progress":
                    frac = data.get("fraction")
                    if frac is None and data.get("total"):
                        frac = data.get("step", 0) / data["total"]
                    info = f"{data.get('phase', '')} {data.get('step', '')}/{data.get('total', '')}"
                    bar.update(task, completed=float(frac or 0.0), info=info.strip())
                elif event == "status":
                    bar.update(task, info=data.get("status", ""))
                    if data.get("status") == "succeeded":
                        bar.update(task, completed=1.0)
        return self.get(f"/v1/jobs/{job_id}")


# --------------------------------------------------------------------------------------------
# CLI plumbing
Url = Annotated[str | None, typer.Option("--url", help="Gateway URL (default GDGAN_GATEWAY_URL).")]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
Wait = Annotated[bool, typer.Option("--wait/--no-wait", help="Follow progress until the job ends.")]


def _die(msg: str) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(2)


def _client(url: str | None) -> GatewayClient:
    return GatewayClient(url)


def _finish(
    c: GatewayClient, job_id: str, wait: bool, as_json: bool, extra: dict[str, Any] | None = None
) -> None:
    rec: dict[str, Any] = {"id": job_id, "job_id": job_id, **(extra or {})}
    if wait:
        final = c.wait(job_id, show=True)
        rec.update(status=final["status"], result=final.get("result"), error=final.get("error"))
    if as_json:
        typer.echo(json.dumps(rec))
    else:
        typer.echo(f"job {job_id}" + (f": {rec['status']}" if "status" in rec else " queued"))
        if rec.get("result"):
            typer.echo(json.dumps(rec["result"], indent=1))
        if rec.get("error"):
            typer.echo(f"error: {rec['error']}", err=True)
    if wait and rec.get("status") != "succeeded":
        raise typer.Exit(1)


def _submit(
    url: str | None, path: str, body: dict[str, Any], wait: bool, as_json: bool, extra: tuple[str, ...] = ()
) -> None:
    """POST a job-creating request, then report (and follow) the job like every verb does."""
    try:
        c = _client(url)
        r = c.post(path, body)
        _finish(c, r["job_id"], wait, as_json, {k: r[k] for k in extra})
    except ClientError as exc:
        _die(str(exc))


@app.command("list")
def list_jobs(
    url: Url = None,
    type: Annotated[str | None, typer.Option(help="ingest|train|evaluate|generate")] = None,
    status: Annotated[str | None, typer.Option(help="queued|running|succeeded|failed|cancelled")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: Json = False,
) -> None:
    """Recent jobs, newest first."""
    params: dict[str, Any] = {"limit": limit}
    if type:
        params["type"] = type
    if status:
        params["status"] = status
    try:
        jobs = _client(url).get("/v1/jobs", params=params)["jobs"]
    except ClientError as exc:
        _die(str(exc))
    if as_json:
        typer.echo(json.dumps({"jobs": jobs}))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table("id", "type", "status", "progress", "created", "result / error")
    for j in jobs:
        p = j.get("progress") or {}
        res = j.get("error") or ", ".join(
            f"{k}={v}" for k, v in (j.get("result") or {}).items() if isinstance(v, str)
        )
        t.add_row(
            j["id"], j["type"], j["status"], f"{100 * (p.get('fraction') or 0):.0f}%", j["created"][:19], res
        )
    Console().print(t)


@app.command("show")
def show_job(
    job_id: str, url: Url = None, follow: Annotated[bool, typer.Option(help="Follow progress.")] = False
) -> None:
    """One job's record (JSON)."""
    try:
        c = _client(url)
        rec = c.wait(job_id) if follow else c.get(f"/v1/jobs/{job_id}")
    except ClientError as exc:
        _die(str(exc))
    typer.echo(json.dumps(rec, indent=1))


@app.command("cancel")
def cancel_job(job_id: str, url: Url = None, as_json: Json = False) -> None:
    """Ask a job to stop (it keeps its last checkpoint)."""
    try:
        rec = _client(url).post(f"/v1/jobs/{job_id}/cancel")
    except ClientError as exc:
        _die(str(exc))
    typer.echo(json.dumps(rec) if as_json else f"job {job_id}: {rec['status']} (cancel requested)")


@app.command("ingest")
def ingest(
    source: Annotated[
        str, typer.Option(help="phantom, nih, chexpert, mimic, padchest, vindr, csv or folder")
    ] = "phantom",
    n: Annotated[int, typer.Option(help="Phantom images.")] = 8000,
    size: Annotated[int, typer.Option(help="Image side: 32, 64, 128 or 256.")] = 64,
    seed: Annotated[int, typer.Option(help="Phantom seed.")] = 0,
    csv: Annotated[str | None, typer.Option(help="NIH: Data_Entry CSV inside GDGAN_IMPORT_DIR.")] = None,
    images: Annotated[str | None, typer.Option(help="NIH: image folder inside GDGAN_IMPORT_DIR.")] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option",
            help="Another field of the source's request, KEY=VALUE (VALUE may be JSON), repeatable; "
            "e.g. --option merge=majority --option root=xrays",
        ),
    ] = None,
    url: Url = None,
    wait: Wait = True,
    as_json: Json = False,
) -> None:
    """Create a dataset (POST /v1/datasets)."""
    body: dict[str, Any] = {"source": source, "size": size}
    if source == "phantom":
        body.update(n=n, seed=seed)
    elif source == "nih":
        body.update(csv=csv, images=images)
    else:  # the bring-your-own sources: paths and options as the REST request names them
        body.update({k: v for k, v in (("csv", csv), ("images", images)) if v is not None})
    for item in option or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            _die(f"--option expects KEY=VALUE, got {item!r}")
        try:
            body[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            body[key.strip()] = value
    _submit(url, "/v1/datasets", body, wait, as_json, extra=("dataset_id",))


@app.command("train")
def train(
    dataset: Annotated[str, typer.Option("--dataset", help="Dataset id.")],
    model: Annotated[str, typer.Option(help="gdgan, stage1, stage2 or acgan")] = "gdgan",
    preset: Annotated[str, typer.Option(help="tiny, demo or paper")] = "demo",
    split_seed: Annotated[int, typer.Option(help="Patient-wise split seed.")] = 0,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a config field: key=value.")
    ] = None,
    stage1_model: Annotated[str | None, typer.Option(help="Stage-1 model for model=stage2.")] = None,
    nproc_per_node: Annotated[
        int, typer.Option("--nproc-per-node", min=1, help="DDP ranks on the trainer's machine (one per GPU).")
    ] = 1,
    url: Url = None,
    wait: Wait = True,
    as_json: Json = False,
) -> None:
    """Train a model (POST /v1/jobs/train)."""
    overrides: dict[str, str] = {}
    for pair in set_ or []:
        if "=" not in pair:
            _die(f"--set expects key=value, got {pair!r}")
        k, v = pair.split("=", 1)
        overrides[k.strip()] = v.strip()
    body: dict[str, Any] = {
        "dataset_id": dataset,
        "model": model,
        "preset": preset,
        "split_seed": split_seed,
        "overrides": overrides,
    }
    if stage1_model:
        body["stage1_model"] = stage1_model
    if nproc_per_node > 1:
        body["nproc_per_node"] = nproc_per_node
    _submit(url, "/v1/jobs/train", body, wait, as_json)


@app.command("evaluate")
def evaluate(
    dataset: Annotated[str, typer.Option("--dataset", help="Dataset id.")],
    gdgan: Annotated[str | None, typer.Option(help="GDGAN model id (default: train per split).")] = None,
    acgan: Annotated[str | None, typer.Option(help="ACGAN model id (default: train per split).")] = None,
    repeats: Annotated[int, typer.Option(min=1, max=10)] = 3,
    preset: Annotated[str, typer.Option(help="tiny, demo or paper")] = "demo",
    finding: Annotated[str, typer.Option(help="The rare finding.")] = "Cardiomegaly",
    url: Url = None,
    wait: Wait = True,
    as_json: Json = False,
) -> None:
    """Evaluate the five augmentation strategies (POST /v1/jobs/evaluate)."""
    body: dict[str, Any] = {
        "dataset_id": dataset,
        "repeats": repeats,
        "preset": preset,
        "finding": finding,
        "gdgan": gdgan,
        "acgan": acgan,
    }
    _submit(url, "/v1/jobs/evaluate", body, wait, as_json)


ZIP_SLACK_BYTES = 1 << 20
"""What unpacked files may add to a zip's own size: the service stores PNGs (no compression), so
an archive that unpacks to much more than it weighs is not one it made (a zip bomb)."""


def save_images(content: bytes, out: Path) -> list[Path]:
    """Unpack a zip response (PNGs + labels.csv) into ``out``, bounded: at most the archive's own
    size plus ZIP_SLACK_BYTES is written, whatever its headers claim."""
    out.mkdir(parents=True, exist_ok=True)
    budget = len(content) + ZIP_SLACK_BYTES
    written = []
    with zipfile.ZipFile(io.BytesIO(content)) as zf:
        claimed = sum(i.file_size for i in zf.infolist())
        if claimed > budget:
            raise ClientError(f"the zip would unpack to {claimed} bytes from {len(content)}: refused")
        for info in zf.infolist():
            safe = Path(info.filename).name  # never write outside `out`
            if not safe:
                continue
            with zf.open(info) as src:
                data = src.read(budget + 1)  # a header that lies about the size is caught too
            budget -= len(data)
            if budget < 0:
                raise ClientError("the zip unpacks to more than it weighs: refused")
            (out / safe).write_bytes(data)
            written.append(out / safe)
    return written


def generate(
    out: Annotated[Path, typer.Option("--out", help="Folder for the PNGs and labels.csv.")] = Path(
        "generated"
    ),
    n: Annotated[int, typer.Option("--n", help="Number of images.")] = 16,
    finding: Annotated[list[str] | None, typer.Option(help="Finding(s); none = No Finding.")] = None,
    gender: Annotated[str | None, typer.Option(help="M or F (default: the finding's real mix).")] = None,
    view: Annotated[str | None, typer.Option(help="PA or AP (default: the finding's real mix).")] = None,
    age_band: Annotated[
        str | None, typer.Option(help="An age band of the model (e.g. 40-59; default: the real mix).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed (same seed, same images).")] = None,
    model: Annotated[str, typer.Option(help="gdgan, acgan or a model id.")] = "gdgan",
    stage: Annotated[int, typer.Option(help="GDGAN stage (1 or 2).")] = 2,
    grid: Annotated[bool, typer.Option(help="Also save a labelled grid (grid.png).")] = True,
    url: Url = None,
    as_json: Json = False,
) -> None:
    """Generate images through the gateway (POST /v1/generate) into a folder."""
    fnd: Any = None if not finding else (finding[0] if len(finding) == 1 else finding)
    body: dict[str, Any] = {
        "model": model,
        "n": n,
        "finding": fnd,
        "gender": gender,
        "view": view,
        "age_band": age_band,
        "seed": seed,
        "stage": stage,
        "format": "zip",
    }
    try:
        c = _client(url)
        resp = c.request("POST", "/v1/generate", json=body, timeout=600)
        files = save_images(resp.content, out)
        used_seed = int(resp.headers.get("x-gdgan-seed", -1))
        model_id = resp.headers.get("x-gdgan-model-id", "")
        if grid:
            g = c.request(
                "POST", "/v1/generate", json={**body, "seed": used_seed, "format": "png"}, timeout=600
            )
            (out / "grid.png").write_bytes(g.content)
    except ClientError as exc:
        _die(str(exc))
    summary = {
        "id": model_id,
        "model_id": model_id,
        "seed": used_seed,
        "n": n,
        "out": str(out.resolve()),
        "files": len(files),
    }
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        print(f"{n} images from {model_id} (seed {used_seed}) in {out.resolve()}", file=sys.stderr)
