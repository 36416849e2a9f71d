// lockgate UI: live updates by polling small same-origin endpoints.
// No inline script anywhere (the CSP forbids it); pages opt in with data- attributes.
"use strict";

(function () {
  function poll(fn, everyMs) {
    let busy = false;
    async function tick() {
      if (busy || document.hidden) return;
      busy = true;
      try {
        if ((await fn()) === false) { clearInterval(timer); }
      } catch (err) {
        // A failed poll (server restarting, network blip) is retried at the next tick.
      } finally {
        busy = false;
      }
    }
    const timer = setInterval(tick, everyMs);
    return tick;
  }

  async function get(url, kind) {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: kind } });
    if (!response.ok) throw new Error(url + ": " + response.status);
    return kind === "application/json" ? response.json() : response.text();
  }

  // Runs list: re-render the rows of the first page (filters kept server-side).
  const rows = document.getElementById("run-rows");
  if (rows && rows.dataset.live) {
    poll(async function () {
      rows.innerHTML = await get(rows.dataset.live, "text/html");
    }, 2000);
  }

  // Run page: node states only (never the graph), and the Gantt chart.
  const run = document.getElementById("run");
  if (run && run.dataset.terminal === "false") {
    const id = encodeURIComponent(run.dataset.run);
    const nodes = new Map();
    document.querySelectorAll("svg.dag g.node").forEach(function (g) {
      nodes.set(g.dataset.node, g);
    });
    const badge = document.getElementById("run-status");
    const gantt = document.getElementById("gantt");
    let lastGantt = 0;
    poll(async function () {
      const data = await get("/ui/runs/" + id + "/states", "application/json");
      let changed = false;
      for (const [node, state] of Object.entries(data.nodes)) {
        const g = nodes.get(node);
        if (g && g.dataset.state !== state) {
          changed = true;
          g.dataset.state = state;
          const title = g.querySelector("title");
          if (title) title.textContent = title.textContent.replace(/ · [a-z_]+$/, " · " + state);
        }
      }
      badge.dataset.state = data.status;
      badge.textContent = data.status;
      run.dataset.status = data.status;
      for (const [key, id] of [["queue_time", "queue-time"], ["duration", "duration"]]) {
        const cell = document.getElementById(id);
        if (cell) cell.textContent = data[key];
      }
      const now = Date.now();
      if (gantt && (changed || data.terminal || now - lastGantt > 3000)) {
        lastGantt = now;
        gantt.innerHTML = await get("/ui/runs/" + id + "/gantt", "text/html");
      }
      if (data.terminal) {
        run.dataset.terminal = "true";
        const cancel = document.getElementById("cancel-form");
        if (cancel) cancel.remove();
        return false;
      }
      return true;
    }, 1000)();
  }
})();
