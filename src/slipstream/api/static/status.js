// Draws the status page from status/series and redraws it every few seconds.
"use strict";

(() => {
  const POLL_MS = 2500;
  const KEY_STORAGE = "slipstream.statusKey";
  const HEIGHT = 220;

  // Three significant digits at most, trailing zeros dropped: 460, 2.5, 0.013.
  const short = (v) => (Math.abs(v) >= 1000 ? Math.round(v).toLocaleString("en") : String(+v.toPrecision(3)));
  const number = (v) => (v == null ? "–" : short(v));
  const percent = (v) => (v == null ? "–" : `${short(v * 100)} %`);
  const seconds = (v) => (v == null ? "–" : v < 1 ? `${short(v * 1000)} ms` : `${short(v)} s`);

  // Each chart: its series in the JSON, their labels and colours, and how values read.
  const CHARTS = {
    throughput: {
      format: number,
      unit: "events/s",
      series: [
        // Wide and pale under a narrow line, so both show when they coincide (the usual case).
        { key: "ingested_per_s", label: "ingested/s", stroke: "#93c5fd", width: 5 },
        { key: "written_per_s", label: "written/s", stroke: "#15803d" },
      ],
    },
    freshness: {
      format: seconds,
      series: [
        { key: "freshness_p50", label: "p50", stroke: "#0891b2" },
        { key: "freshness_p99", label: "p99", stroke: "#c2410c" },
      ],
    },
    backlog: {
      format: number,
      unit: "messages",
      series: [{ key: "backlog", label: "backlog", stroke: "#7c3aed", fill: "#7c3aed22" }],
    },
    errors: {
      format: percent,
      emptyTop: 0.01,
      series: [{ key: "error_rate", label: "5xx share", stroke: "#dc2626" }],
    },
    budget: {
      format: percent,
      series: [{ key: "budget_spent", label: "budget spent", stroke: "#b45309" }],
      // A dashed line where the allowance runs out makes "how close" readable at a glance.
      limit: { value: 1, label: "whole budget", stroke: "#6b7280" },
    },
  };

  const plots = {};
  const state = document.getElementById("state");
  const keyForm = document.getElementById("key-form");
  const keyInput = document.getElementById("key");
  const keyError = document.getElementById("key-error");

  // At least the last minute, read from the data itself: for a lone first sample uPlot
  // would otherwise pass a made-up span (a day of milliseconds: years, on a seconds axis).
  const MIN_SPAN_S = 60;
  const recent = (u) => {
    const t = u.data[0];
    const last = t[t.length - 1];
    return [Math.min(t[0], last - MIN_SPAN_S), last];
  };

  // Counts and rates start at zero; a flat zero line still gets a readable scale.
  const zeroBased = (emptyTop) => (u, min, max) => [0, max == null || max <= 0 ? emptyTop : max * 1.15];

  function options(def, width) {
    const series = [{}];
    for (const s of def.series) {
      series.push({
        label: s.label,
        stroke: s.stroke,
        fill: s.fill,
        width: s.width ?? 2,
        points: { size: 4 },
        value: (u, v) => def.format(v),
      });
    }
    if (def.limit) {
      series.push({
        label: def.limit.label,
        stroke: def.limit.stroke,
        width: 1,
        dash: [6, 4],
        points: { show: false },
        value: (u, v) => def.format(v),
      });
    }
    return {
      width,
      height: HEIGHT,
      series,
      scales: { x: { time: true, range: recent }, y: { range: zeroBased(def.emptyTop ?? 1) } },
      axes: [{}, { size: 70, values: (u, ticks) => ticks.map(def.format) }],
      // The headline beside the title carries the latest values; the legend is a colour key.
      legend: { live: false },
    };
  }

  function columns(def, data) {
    const out = [data.t];
    for (const s of def.series) out.push(data.series[s.key]);
    if (def.limit) out.push(data.t.map(() => def.limit.value));
    return out;
  }

  function latest(values) {
    for (let i = values.length - 1; i >= 0; i--) if (values[i] != null) return values[i];
    return null;
  }

  function draw(data) {
    for (const section of document.querySelectorAll("section.chart")) {
      const name = section.dataset.chart;
      const def = CHARTS[name];
      const target = section.querySelector(".plot");
      const cols = columns(def, data);
      if (!plots[name]) plots[name] = new uPlot(options(def, target.clientWidth), cols, target);
      else plots[name].setData(cols);
      const now = def.series.map((s) => `${s.label} ${def.format(latest(data.series[s.key]))}`);
      section.querySelector(".now").textContent = now.join(" · ") + (def.unit ? ` ${def.unit}` : "");
    }
  }

  function describeObjective(objective) {
    const allowance = (1 - objective) * 100;
    for (const el of document.querySelectorAll(".objective")) el.textContent = `${(objective * 100).toPrecision(3)} %`;
    for (const el of document.querySelectorAll(".allowance")) el.textContent = `${allowance.toPrecision(2)} %`;
  }

  function headers() {
    const key = sessionStorage.getItem(KEY_STORAGE);
    return key ? { Authorization: `Bearer ${key}` } : {};
  }

  async function poll() {
    let answer;
    try {
      answer = await fetch("status/series", { headers: headers(), cache: "no-store" });
    } catch (error) {
      state.textContent = `Cannot reach the server (${error.message}); retrying.`;
      state.classList.add("error");
      return;
    }
    if (answer.status === 401 || answer.status === 403) {
      const body = await answer.json().catch(() => ({}));
      keyForm.hidden = false;
      keyError.textContent = sessionStorage.getItem(KEY_STORAGE) ? body?.error?.message ?? "" : "";
      state.textContent = "The data needs an API key with the read scope.";
      state.classList.remove("error");
      return;
    }
    if (!answer.ok) {
      state.textContent = `The server answered ${answer.status}; retrying.`;
      state.classList.add("error");
      return;
    }
    const data = await answer.json();
    keyForm.hidden = true;
    state.classList.remove("error");
    describeObjective(data.availability_objective);
    const minutes = Math.round(data.window_seconds / 60);
    if (data.t.length === 0) {
      state.textContent = `Collecting the first samples (every ${data.step_seconds} s)…`;
      return;
    }
    draw(data);
    const at = new Date(data.t[data.t.length - 1] * 1000).toLocaleTimeString();
    state.textContent = `Last ${minutes} min at a ${data.step_seconds} s step · latest sample ${at}`;
    document.body.dataset.points = String(data.t.length);
    document.body.dataset.rendered = "true";
  }

  keyForm.addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY_STORAGE, keyInput.value.trim());
    keyInput.value = "";
    poll();
  });

  window.addEventListener("resize", () => {
    for (const section of document.querySelectorAll("section.chart")) {
      const plot = plots[section.dataset.chart];
      if (plot) plot.setSize({ width: section.querySelector(".plot").clientWidth, height: HEIGHT });
    }
  });

  // Chained rather than setInterval, so a slow answer never overlaps the next request.
  async function loop() {
    await poll();
    setTimeout(loop, POLL_MS);
  }
  loop();
})();
