// Referral commissions by month, one stacked bar per program. Amounts arrive as decimal strings
// (never floats in our JSON); tooltips show the server's formatted amounts.
(function () {
  const source = document.getElementById("referral-chart-data");
  const canvas = document.getElementById("commissions-by-month");
  if (!source || !canvas || typeof Chart === "undefined") return;
  const data = JSON.parse(source.textContent);
  const accent = getComputedStyle(document.documentElement).getPropertyValue("--accent").trim() || "#7c3aed";
  const colours = [accent, "#0ea5e9", "#f59e0b", "#64748b"];
  new Chart(canvas, {
    type: "bar",
    data: {
      labels: data.labels,
      datasets: data.datasets.map((set, i) => ({ label: set.label, data: set.values, backgroundColor: colours[i % colours.length] })),
    },
    options: {
      plugins: { tooltip: { callbacks: { label: (ctx) => ctx.dataset.label + ": " + data.datasets[ctx.datasetIndex].display[ctx.dataIndex] } } },
      scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { callback: (value) => "$" + value } } },
    },
  });
})();
