// Billing charts. Amounts arrive as decimal strings (never floats in our JSON); Chart.js only
// turns them into numbers to draw; tooltips show the server's formatted amounts.
(function () {
  const source = document.getElementById("billing-chart-data");
  if (!source || typeof Chart === "undefined") return;
  const data = JSON.parse(source.textContent);
  const accent = getComputedStyle(document.documentElement).getPropertyValue("--accent").trim() || "#7c3aed";

  new Chart(document.getElementById("spend-by-day"), {
    type: "bar",
    data: { labels: data.days.labels, datasets: [{ label: "Spend", data: data.days.values, backgroundColor: accent }] },
    options: {
      plugins: { legend: { display: false }, tooltip: { callbacks: { label: (ctx) => data.days.display[ctx.dataIndex] } } },
      scales: { y: { beginAtZero: true, ticks: { callback: (value) => "$" + value } } },
    },
  });

  const byKind = document.getElementById("spend-by-kind");
  if (!byKind) return;
  new Chart(byKind, {
    type: "doughnut",
    data: {
      labels: data.kinds.labels,
      datasets: [{ data: data.kinds.values, backgroundColor: [accent, "#0ea5e9", "#f59e0b"] }],
    },
    options: {
      plugins: { tooltip: { callbacks: { label: (ctx) => ctx.label + ": " + data.kinds.display[ctx.dataIndex] } } },
    },
  });
})();
