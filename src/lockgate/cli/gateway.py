"""`lockgate gateway`: serve the model versions behind routes over HTTP."""

from __future__ import annotations

import logging

import click

from lockgate.service.compose import Workspace


def _workspace(ctx: click.Context) -> Workspace:
    from lockgate.cli.main import _workspace as open_workspace

    return open_workspace(ctx)


@click.command()
@click.option("--host", default=None, help="Address to listen on [default: 127.0.0.1].")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="[default: 8788]")
@click.option(
    "--allow-remote",
    is_flag=True,
    default=None,
    help="Allow a non-loopback --host (it also needs an API token to exist) "
    "[default: [gateway] allow_remote, else false].",
)
@click.pass_context
def gateway(
    ctx: click.Context, host: str | None, port: int | None, allow_remote: bool | None
) -> None:
    """Serve routes: POST /v1/routes/ROUTE/predict and /feedback, GET /metrics.

    A process of its own, apart from `lockgate server`, so a slow model and
    the scheduler never share a loop. Settings come from [gateway] in
    lockgate.toml; flags override them. Predict and feedback need a `run`
    token unless [gateway] open = true on loopback. Listening beyond loopback
    needs --allow-remote and an API token. See docs/deploying-models.md.
    """
    from lockgate.cli.main import err
    from lockgate.server.gateway.runner import Gateway

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    served = Gateway(_workspace(ctx), host=host, port=port, allow_remote=allow_remote)
    err.print(f"lockgate gateway on http://{served.host}:{served.port}")
    served.serve()


COMMANDS = [gateway]
