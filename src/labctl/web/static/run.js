// The run page's voltage plot: the server sends the series cut to the plot's pixel width
// (GET /runs/N/series?width=&t0=&t1=); a zoom asks again for the visible window; a running run's new
// points arrive by server-sent events (GET /runs/N/live) and are appended.
(function () {
  "use strict";
  const el = document.getElementById("plot");
  if (!el) return;
  const run = el.dataset.run;
  const info = document.getElementById("plot-info");
  let plot = null, full = null, zoomed = false;

  // volts with an SI prefix chosen from the visible range: an OCV of a few µV must not read "0"
  const PREFIXES = [[1, "V"], [1e-3, "mV"], [1e-6, "µV"], [1e-9, "nV"]];
  function voltTicks(u, splits) {
    const big = Math.max(...splits.map(Math.abs));
    const [f, unit] = PREFIXES.find(([f]) => big >= f) || PREFIXES[PREFIXES.length - 1];
    const step = splits.length > 1 ? Math.abs(splits[1] - splits[0]) / f : 1;
    const digits = Math.max(0, Math.min(6, -Math.floor(Math.log10(step || 1))));
    return splits.map(v => `${(v / f).toFixed(digits)} ${unit}`);
  }
  function voltValue(u, v) {
    if (v == null) return "--";
    const [f, unit] = PREFIXES.find(([f]) => Math.abs(v) >= f) || PREFIXES[PREFIXES.length - 1];
    return `${(v / f).toPrecision(4)} ${unit}`;
  }

  function width() { return Math.max(300, Math.floor(el.clientWidth || 800)); }

  async function fetchWindow(t0, t1) {
    const q = new URLSearchParams({width: String(width())});
    if (t0 !== undefined) { q.set("t0", String(t0)); q.set("t1", String(t1)); }
    const r = await fetch(`/runs/${run}/series?${q}`, {credentials: "same-origin"});
    if (!r.ok) throw new Error(`series: HTTP ${r.status}`);
    return r.json();
  }

  function show(d) {
    info.textContent = `${d.shown} of ${d.total} points shown`;
    const series = [d.x, d.y];
    if (!plot) {
      plot = new uPlot({
        width: width(), height: 360,
        scales: {x: {time: false}},
        axes: [{label: "t [s]"}, {label: "voltage", values: voltTicks, size: 80}],
        series: [{label: "t [s]"},
                 {label: "voltage", value: voltValue, stroke: "#1f77b4", width: 1, spanGaps: false}],
        cursor: {drag: {x: true, y: false}},
        hooks: {setSelect: [u => {
          if (u.select.width < 2) return;
          const t0 = u.posToVal(u.select.left, "x"), t1 = u.posToVal(u.select.left + u.select.width, "x");
          u.setSelect({left: 0, width: 0}, false);
          zoom(t0, t1);
        }]},
      }, series, el);
      el.addEventListener("dblclick", () => { zoomed = false; if (full) { plot.setData(full); } load(); });
    } else {
      plot.setData(series);
    }
  }

  async function zoom(t0, t1) { zoomed = true; show(await fetchWindow(t0, t1)); }
  async function load() {
    const d = await fetchWindow();
    full = [d.x, d.y];
    show(d);
  }

  function live() {
    const since = full && full[0].length ? full[0][full[0].length - 1] : -1e308;
    const es = new EventSource(`/runs/${run}/live?after=${since}`);
    es.addEventListener("points", ev => {
      const d = JSON.parse(ev.data);
      full = [full[0].concat(d.x), full[1].concat(d.y)];
      if (full[0].length > 8 * width()) { load(); return; }  // let the server cut it down again
      if (!zoomed) plot.setData(full);
      info.textContent = `${full[0].length} points shown (live)`;
    });
    es.addEventListener("state", ev => {
      const s = document.getElementById("run-state");
      const state = JSON.parse(ev.data);
      s.textContent = state; s.className = "state " + state;
    });
    es.addEventListener("end", () => { es.close(); load(); });
  }

  load().then(() => { if (el.dataset.live === "true") live(); })
        .catch(err => { info.textContent = String(err); });
})();
