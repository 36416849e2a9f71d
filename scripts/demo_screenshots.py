"""Screenshots of the web UI on the results of `lockgate demo`, for the README.

    make demo && .venv/bin/python scripts/demo_screenshots.py lockgate-demo

Creates a token in the demo project, starts `lockgate server` there on a free
loopback port, logs in with Debian's headless Chromium (Playwright, no browser
download) and saves docs/img/demo-*.png: the runs, the promoted fine-tune run's
graph, its reliability record, and the model's versions. Stops the server after.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCKGATE = str(Path(sys.executable).with_name("lockgate"))
CHROMIUM = "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    demo = Path(sys.argv[1] if len(sys.argv) > 1 else "lockgate-demo").resolve()
    if not (demo / "lockgate.toml").is_file():
        sys.exit(f"{demo} is not a demo project; run `make demo` first")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKGATE_")}
    env["LOCKGATE_CONFIG"] = str(demo / "lockgate.toml")
    token = subprocess.run(
        [LOCKGATE, "token", "create", "screenshots"],
        cwd=demo,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    runs = json.loads(
        subprocess.run(
            [LOCKGATE, "runs", "--json"], cwd=demo, env=env, capture_output=True, check=True
        ).stdout
    )
    promoted = next(
        r["run_id"]
        for r in runs
        if r["pipeline"] == "weekly_finetune" and r["status"] == "succeeded"
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [LOCKGATE, "server", "--port", str(port)],
        cwd=demo,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/healthz", timeout=1).close()  # noqa: S310
                break
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit("lockgate server did not start")
                time.sleep(0.2)
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.goto(f"{url}/login?next=/")
            page.fill("input[name=token]", token)
            page.click("form.login button[type=submit]")
            page.wait_for_url(f"{url}/")
            shots = {
                "demo-runs": "/",
                "demo-finetune-run": f"/runs/{promoted}",
                "demo-finetune-record": f"/runs/{promoted}/record",
                "demo-model": "/models/ticket-router",
            }
            for name, path in shots.items():
                page.goto(url + path)
                page.wait_for_load_state("networkidle")
                target = ROOT / "docs" / "img" / f"{name}.png"
                page.screenshot(path=str(target), full_page=False)
                print(target)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
