"""`lockgate gateway`: serves the model versions behind routes over HTTP.

    serving.py   loading a target (registry + artifact store) and calling it
    table.py     the routes this gateway serves: snapshots, hot reload, load failures
    background.py the sample writer (batched, scored by online evaluators) and the mirror
    metrics.py   Prometheus series of the gateway
    guard.py     Host check, tokens, JSON only, body limit
    app.py       the FastAPI app: predict, feedback, metrics, health
    runner.py    the process: background threads plus uvicorn

The gateway is its own process, apart from `lockgate server`: a request path
must not share an event loop, a thread pool or a GIL-bound CPU with the
scheduler loop and the UI, so a slow model cannot delay launches and a busy
scheduler cannot add latency to predictions; each scales and restarts on its
own. docs/deploying-models.md documents it.
"""
