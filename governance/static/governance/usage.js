// Usage page: draws the per-day and per-workflow session-second charts from the JSON the page
// embeds (#usage-data, made by governance/pages.py) with Chart.js (vendor/chartjs, from npm).
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("usage-data").textContent);
  const draw = (id, result, label) => {
    const canvas = document.getElementById(id);
    if (!canvas || typeof Chart === "undefined") return;
    const groups = result.groups;
    canvas.chart = new Chart(canvas, {
      type: "bar",
      data: {
        labels: groups.map((g) => label(g.key)),
        datasets: [{ label: "session-seconds", data: groups.map((g) => g.session_s), backgroundColor: "#6366f1" }],
      },
      options: {
        animation: false,
        responsive: true,
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { afterLabel: (ctx) => `cost ${groups[ctx.dataIndex].cost} · ${groups[ctx.dataIndex].executions} executions` } },
        },
        scales: { y: { beginAtZero: true, title: { display: true, text: "session-seconds" } } },
      },
    });
    canvas.dataset.drawn = String(groups.length);
  };
  draw("chart-day", data.day, (k) => k);
  draw("chart-workflow", data.workflow, (k) => (k === null ? "—" : `#${k}`));
})();
