// The analytics page's charts (ours, GPL-3.0-or-later), drawn with the vendored Chart.js from
// the JSON the server put in #chart-data. Readable without colour: lines differ by dash and
// point shape, bars are named on their axis, and every chart has its numbers in a table below.
(function () {
  "use strict";
  var source = document.getElementById("chart-data");
  if (!source || typeof Chart === "undefined") { return; }
  var data = JSON.parse(source.textContent);
  Chart.defaults.animation = false;
  Chart.defaults.font.family = "system-ui, sans-serif";
  function line(id, trend) {
    var el = document.getElementById(id);
    if (!el) { return; }
    new Chart(el, {
      type: "line",
      data: {
        labels: trend.labels,
        datasets: [
          { label: el.dataset.satisfaction || "satisfaction %", data: trend.satisfaction,
            borderColor: "#1f5fa8", backgroundColor: "#1f5fa8", pointStyle: "circle",
            pointRadius: 4, spanGaps: true },
          { label: el.dataset.reach || "reach %", data: trend.reach, borderColor: "#8a5a00",
            backgroundColor: "#8a5a00", borderDash: [6, 4], pointStyle: "triangle",
            pointRadius: 5, spanGaps: true }
        ]
      },
      options: {
        maintainAspectRatio: false,
        scales: { y: { min: 0, max: 100, title: { display: true, text: "%" } } },
        plugins: { legend: { labels: { usePointStyle: true } } }
      }
    });
  }
  function bars(id, series) {
    var el = document.getElementById(id);
    if (!el) { return; }
    new Chart(el, {
      type: "bar",
      data: { labels: series.labels, datasets: [{ label: el.getAttribute("aria-label"),
        data: series.counts, backgroundColor: "#5b6470", borderColor: "#1b1f24",
        borderWidth: 1 }] },
      options: { indexAxis: "y", maintainAspectRatio: false,
        plugins: { legend: { display: false } } }
    });
  }
  line("chart-trend", data.trend);
  bars("chart-outcomes", data.outcomes);
  bars("chart-reasons", data.reasons);
})();
