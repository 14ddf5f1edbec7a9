// Serverless pages. The live parts ([data-live-poll]) are server-rendered partials that htmx
// polls (hx-trigger "every Ns, refresh"); this script pauses them while the tab is hidden and
// refreshes them at once when it is shown again, and draws requests per minute from the JSON
// the live partial carries (json_script: data, never code, so the CSP needs no inline script).
// On the endpoint form it shows only the fields of the chosen compute (GPU or CPU).
(function () {
  "use strict";

  document.body.addEventListener("htmx:beforeRequest", (event) => {
    if (document.hidden && event.detail.elt.closest("[data-live-poll]")) event.preventDefault();
  });

  document.addEventListener("visibilitychange", () => {
    if (document.hidden) return;
    document.querySelectorAll("[data-live-poll]").forEach((element) => htmx.trigger(element, "refresh"));
  });

  const compute = document.getElementById("id_compute");
  function showCompute() {
    document.querySelectorAll("[data-compute]").forEach((element) => {
      element.hidden = element.dataset.compute !== compute.value;
    });
  }
  if (compute) {
    compute.addEventListener("change", showCompute);
    showCompute();
  }

  const canvas = document.getElementById("endpoint-rpm-chart");
  if (!canvas || typeof Chart === "undefined") return;
  const accent = getComputedStyle(document.documentElement).getPropertyValue("--accent").trim() || "#7c3aed";

  function source() {
    const element = document.getElementById("endpoint-rpm-data");
    return element ? element.textContent : '{"labels": [], "values": []}';
  }

  // The total on the canvas (for tests), and a sentence instead of empty axes when it is 0.
  const empty = document.getElementById("endpoint-rpm-empty");
  function showTotal(values) {
    const sum = values.reduce((total, value) => total + value, 0);
    canvas.dataset.total = String(sum);
    if (empty) empty.hidden = sum > 0;
  }

  let shown = source();
  const first = JSON.parse(shown);
  const chart = new Chart(canvas, {
    type: "bar",
    data: { labels: first.labels, datasets: [{ label: "Requests", data: first.values, backgroundColor: accent }] },
    options: {
      animation: false,
      maintainAspectRatio: false,
      plugins: { legend: { display: false } },
      scales: { y: { beginAtZero: true, ticks: { precision: 0 } }, x: { ticks: { maxTicksLimit: 12 } } },
    },
  });
  showTotal(first.values);

  // After each poll of the live partial: redraw only when the series changed.
  document.body.addEventListener("htmx:afterSettle", () => {
    const text = source();
    if (text === shown) return;
    shown = text;
    const next = JSON.parse(text);
    chart.data.labels = next.labels;
    chart.data.datasets[0].data = next.values;
    chart.update();
    showTotal(next.values);
  });
})();
