"""``gdgan serve gateway|generator`` and ``gdgan worker trainer|evaluator``: one command per
service, the same commands docker-compose and k8s run. Each starts the service that lives in
``services/<name>`` (an app factory or a worker's wiring); this module only parses options."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(help="Run an HTTP service (gateway :8000, generator :8001).", no_args_is_help=True)
worker_app = typer.Typer(
    help="Run a Celery worker (trainer: queue 'train'; evaluator: queue 'eval').", no_args_is_help=True
)

Host = Annotated[str, typer.Option(help="Interface to bind.")]
Port = Annotated[int | None, typer.Option(help="Port (default: GDGAN_GATEWAY_PORT / GDGAN_GENERATOR_PORT).")]


def _uvicorn(factory: str, host: str, port: int) -> None:
    import uvicorn

    from gdgan.settings import get_settings

    uvicorn.run(
        factory,
        factory=True,
        host=host,
        port=port,
        log_level=get_settings().log_level.lower(),
        timeout_graceful_shutdown=5,
    )


@app.command("gateway")
def gateway(host: Host = "127.0.0.1", port: Port = None) -> None:
    """The public REST API (and the web client) on :8000."""
    from gdgan.settings import get_settings

    _uvicorn("services.gateway.app:create_app", host, port or get_settings().gateway_port)


@app.command("generator")
def generator(host: Host = "127.0.0.1", port: Port = None) -> None:
    """The generation service on :8001."""
    from gdgan.settings import get_settings

    _uvicorn("services.generator.app:create_app", host, port or get_settings().generator_port)


LogLevel = Annotated[str, typer.Option(help="Celery log level.")]


@worker_app.command("trainer")
def trainer(loglevel: LogLevel = "INFO") -> None:
    """Ingest and training tasks (queue 'train'), one at a time (services/trainer)."""
    from services.trainer.worker import main

    main(loglevel)


@worker_app.command("evaluator")
def evaluator(loglevel: LogLevel = "INFO") -> None:
    """Evaluation parts, reports and large generation jobs (queue 'eval'), one at a time
    (services/evaluator)."""
    from services.evaluator.worker import main

    main(loglevel)
