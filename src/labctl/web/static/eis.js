// The run page's impedance plots from GET /runs/N/eis (the stored sweeps, frequency ascending):
// Nyquist (Z' against -Z'', uPlot's x-y mode, one series per EIS step) and Bode (|Z| and phase against
// log frequency). The numbers are drawn as measured; the fitted circuit is in the report's figures.
(function () {
  "use strict";
  const box = document.getElementById("eis");
  if (!box) return;
  const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];
  const fmt = (v, unit) => v == null ? "--" : `${Number(v).toPrecision(4)} ${unit}`;

  function width(el) { return Math.max(280, Math.floor(el.clientWidth || 500)); }

  function nyquist(sweeps) {
    const el = document.getElementById("nyquist");
    const series = [{}], data = [null];
    sweeps.forEach((s, i) => {
      series.push({label: `step ${s.step}`, stroke: COLORS[i % COLORS.length], width: 1,
                   points: {show: true, size: 5}, facets: [{scale: "x", auto: true}, {scale: "y", auto: true}],
                   value: (u, v) => fmt(v, "Ω")});
      data.push([s.z_real, s.z_imag.map(z => -z)]);
    });
    return new uPlot({
      mode: 2, width: width(el), height: 340,
      scales: {x: {time: false}, y: {}},
      axes: [{label: "Z' [Ω]"}, {label: "−Z'' [Ω]", size: 70}],
      legend: {live: false},
      series,
    }, data, el);
  }

  function bode(sweeps) {
    const el = document.getElementById("bode");
    const tables = sweeps.map(s => [s.freq,
      s.z_real.map((re, k) => Math.hypot(re, s.z_imag[k])),
      s.z_real.map((re, k) => Math.atan2(s.z_imag[k], re) * 180 / Math.PI)]);
    const data = tables.length === 1 ? tables[0] : uPlot.join(tables);
    const series = [{label: "f [Hz]", value: (u, v) => fmt(v, "Hz")}];
    sweeps.forEach((s, i) => {
      const c = COLORS[i % COLORS.length];
      series.push({label: `|Z| step ${s.step}`, scale: "mag", stroke: c, width: 1.5, points: {show: true, size: 4},
                   value: (u, v) => fmt(v, "Ω"), spanGaps: true});
      series.push({label: `phase step ${s.step}`, scale: "deg", stroke: c, width: 1, dash: [5, 4],
                   value: (u, v) => fmt(v, "°"), spanGaps: true});
    });
    return new uPlot({
      width: width(el), height: 340,
      scales: {x: {time: false, distr: 3}, mag: {distr: 3}, deg: {}},
      axes: [{label: "f [Hz]"}, {scale: "mag", label: "|Z| [Ω]", size: 70},
             {scale: "deg", side: 1, label: "phase [°]", grid: {show: false}}],
      series,
    }, data, el);
  }

  fetch(`/runs/${box.dataset.run}/eis`, {credentials: "same-origin"})
    .then(r => { if (!r.ok) throw new Error(`eis: HTTP ${r.status}`); return r.json(); })
    .then(d => { if (d.sweeps.length) { nyquist(d.sweeps); bode(d.sweeps); } })
    .catch(err => { box.textContent = String(err); });
})();
