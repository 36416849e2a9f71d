"""`lg.Client`: trigger and follow runs on a `lockgate server` over HTTP.

Standard library only (urllib), so a CI job can trigger the per-PR eval
suite with nothing but `pip install lockgate`:

    client = lg.Client("http://127.0.0.1:8787", token=os.environ["LOCKGATE_TOKEN"])
    run_id = client.trigger("pr_evals", git_sha=sha, pr=1234)
    run = client.wait(run_id, timeout=1800)
    assert run["run"]["status"] == "succeeded"
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from lockgate.errors import ApiError

#: Run states after which nothing changes without someone resuming the run.
_FINAL = {"succeeded", "failed", "gate_failed", "cancelled", "waiting"}


class Client:
    """A client of one `lockgate server`."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:8787",
        token: str | None = None,
        *,
        timeout: float = 30.0,
    ) -> None:
        """Talk to the server at `url` with `token` (default: $LOCKGATE_TOKEN).

        Raises:
            ApiError: the URL is not http(s).
        """
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ApiError(f"{url!r} is not a server URL; expected http://HOST:PORT")
        self.url = url.rstrip("/")
        self.token = token if token is not None else os.environ.get("LOCKGATE_TOKEN")
        self.timeout = timeout

    def trigger(self, pipeline: str, *, key: str | None = None, **params: Any) -> str:
        """Queue a run of `pipeline` with `params`; return its run id.

        Args:
            pipeline: a pipeline the server's lockgate.toml lists.
            key: idempotency key: retrying with the same key returns the same run.
            params: parameter values (JSON types; dates as ISO strings).

        Raises:
            ApiError: rejected (401 bad token, 404 unknown pipeline, 422 bad params)
                or the server is unreachable; `.status` holds the HTTP status.
        """
        body: dict[str, Any] = {"params": params}
        if key is not None:
            body["key"] = key
        path = f"/api/v1/pipelines/{urllib.parse.quote(pipeline, safe='')}/runs"
        return str(self._request("POST", path, body)["run_id"])

    def run(self, run_id: str) -> dict[str, Any]:
        """The run as the server reports it: {"run": {...}, "nodes": [...]}."""
        found: dict[str, Any] = self._request(
            "GET", f"/api/v1/runs/{urllib.parse.quote(run_id, safe='')}"
        )
        return found

    def wait(
        self, run_id: str, *, timeout: float | None = None, interval: float = 0.5
    ) -> dict[str, Any]:
        """Poll until the run ends (or waits for an approval); return it.

        Raises:
            TimeoutError: still going after `timeout` seconds.
            ApiError: the server rejected a request or could not be reached.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            current = self.run(run_id)
            if current["run"]["status"] in _FINAL:
                return current
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"run {run_id} is still {current['run']['status']} after {timeout:g} s"
                )
            time.sleep(interval)

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)  # noqa: S310
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise _api_error(method, path, exc) from None
        except (urllib.error.URLError, OSError) as exc:
            raise ApiError(
                f"cannot reach lockgate server at {self.url} ({exc}); is `lockgate server` "
                "running there?"
            ) from None


def _api_error(method: str, path: str, exc: urllib.error.HTTPError) -> ApiError:
    try:
        payload = json.loads(exc.read() or b"{}")
    except ValueError:
        payload = {}
    detail = payload.get("detail") if isinstance(payload, dict) else None
    if not isinstance(detail, str):
        detail = json.dumps(detail) if detail else exc.reason
    error = ApiError(f"{method} {path}: HTTP {exc.code}: {detail}")
    error.status = exc.code
    return error
