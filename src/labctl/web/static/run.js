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

  // time ticks with their unit: seconds below 2 h of visible span, else hours (a 1000 h run: 0 h, 100 h ...),
  // at 1-2-5 steps of that unit, about one per 110 px
  function inHours(u) { return u.scales.x.max - u.scales.x.min > 7200; }
  function timeSplits(u, axisIdx, min, max) {
    const unit = inHours(u) ? 3600 : 1;
    const want = Math.max(2, Math.floor(u.bbox.width / devicePixelRatio / 110));
    const raw = (max - min) / unit / want, p = Math.pow(10, Math.floor(Math.log10(raw || 1)));
    const step = ([1, 2, 5, 10].find(m => m * p >= raw) || 10) * p * unit;
    const out = [];
    for (let v = Math.ceil(min / step) * step; v <= max; v += step) out.push(v);
    return out;
  }
  function timeTicks(u, splits) {
    const [f, unit] = inHours(u) ? [3600, "h"] : [1, "s"];
    return splits.map(v => `${(+(v / f).toPrecision(12)).toLocaleString("en")} ${unit}`);
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
        axes: [{label: "time since the run started", splits: timeSplits, values: timeTicks},
               {label: "voltage", values: voltTicks, size: 80}],
        series: [{label: "t", value: (u, v) => v == null ? "--" : `${(+v.toPrecision(10)).toLocaleString("en")} s`},
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
    if (d.x.length) el.dataset.lastT = String(d.x[d.x.length - 1]);
    show(d);
  }

  function live() {
    const since = full && full[0].length ? full[0][full[0].length - 1] : -1e308;
    const es = new EventSource(`/runs/${run}/live?after=${since}`);
    es.addEventListener("points", ev => {
      const d = JSON.parse(ev.data);
      full = [full[0].concat(d.x), full[1].concat(d.y)];
      if (full[0].length > 8 * width()) { load(); return; }  // let the server cut it down again
      if (!zoomed) {
        plot.setData(full);
        if (d.x.length) el.dataset.lastT = String(d.x[d.x.length - 1]);  // newest point drawn (tests read it)
      }
      info.textContent = `${full[0].length} points shown (live)`;
    });
    es.addEventListener("state", ev => {
      const s = document.getElementById("run-state");
      const state = JSON.parse(ev.data);
      s.textContent = state; s.className = "state " + state;
    });
    es.addEventListener("end", () => {
      es.close();
      load().finally(() => document.body.dispatchEvent(new CustomEvent("labctl-ended")));  // draws the report
    });
  }

  // the report section (HTMX) is fetched once the plot is drawn, so its figures do not compete with it
  const plotted = () => document.body.dispatchEvent(new CustomEvent("labctl-plotted"));
  load().then(() => { plotted(); if (el.dataset.live === "true") live(); })
        .catch(err => { info.textContent = String(err); plotted(); });
})();
