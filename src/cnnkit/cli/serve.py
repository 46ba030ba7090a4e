"""``cnnkit serve``: a local web page to try a trained run (draw a digit, upload a picture)."""

from __future__ import annotations

import typer

from cnnkit.cli.console import out
from cnnkit.cli.params import Device, Engine, RunDir


def serve_command(
    run: RunDir,
    host: str = typer.Option(
        "127.0.0.1",
        "--host",
        help="Address to listen on (not loopback: needs --allow-remote).",
    ),
    port: int = typer.Option(
        8000, "--port", "-p", min=0, max=65535, help="Port; 0 picks a free one."
    ),
    allow_remote: bool = typer.Option(
        False, "--allow-remote", help="Allow a --host other machines can reach (no login!)."
    ),
    allowed_hosts: list[str] = typer.Option(
        [], "--allowed-host", help="Another name the Host header may carry (repeatable)."
    ),
    max_upload_mb: float = typer.Option(
        4.0, "--max-upload-mb", min=0.01, help="Largest upload accepted, in MiB."
    ),
    max_concurrent: int = typer.Option(
        2, "--max-concurrent", min=1, help="Predictions in flight at once; more get 503."
    ),
    top_k: int = typer.Option(5, "--top-k", "-k", min=1, help="Classes shown."),
    device: Device = "auto",
    engine: Engine = "auto",
) -> None:
    """Serve a page that predicts drawn or uploaded images with a run, with Grad-CAM.

    Listens on 127.0.0.1 only, unless --host and --allow-remote say otherwise. Uploads are
    capped, decoded in memory by content (never by name or declared type) and never stored.
    """
    import logging

    from rich.markup import escape

    from cnnkit.predict import Predictor
    from cnnkit.serve.app import ServeSettings, create_app
    from cnnkit.serve.server import bind_socket, check_bind, make_server, settings_for, url_of

    logging.getLogger("cnnkit.serve.requests").setLevel(logging.INFO)  # one line per request
    check_bind(host, allow_remote=allow_remote)
    settings = settings_for(
        host,
        ServeSettings(
            max_upload_bytes=int(max_upload_mb * (1 << 20)),
            max_concurrent=max_concurrent,
            top_k=top_k,
        ),
        allowed_hosts,
    )
    predictor = Predictor(run, device=device, engine=engine)
    sock = bind_socket(host, port)
    out.print(
        f"serving [bold]{escape(predictor.run.path.name)}[/] ({predictor.engine}) at "
        f"[bold]{url_of(sock)}[/] "
        "(Ctrl-C stops it)",
        highlight=False,
    )
    try:
        make_server(create_app(predictor, settings)).run(sockets=[sock])
    finally:
        sock.close()
