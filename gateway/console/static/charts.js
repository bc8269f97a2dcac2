// ECharts for the fragments htmx swaps in: an element with data-chart='{"labels": [...],
// "values": [...]}' becomes a bar chart. No inline script: the page's CSP forbids it.
"use strict";

(function () {
  function draw(root) {
    if (typeof echarts === "undefined") return;
    root.querySelectorAll("[data-chart]").forEach((el) => {
      const data = JSON.parse(el.dataset.chart);
      const chart = echarts.init(el, null, { renderer: "svg" });
      chart.setOption({
        animation: false,
        grid: { left: 48, right: 16, top: 16, bottom: 48 },
        tooltip: {},
        xAxis: { type: "category", data: data.labels },
        yAxis: { type: "value", minInterval: 1 },
        series: [{ type: "bar", data: data.values, itemStyle: { color: "#b22222" } }],
      });
    });
  }
  document.addEventListener("DOMContentLoaded", () => draw(document));
  document.addEventListener("htmx:afterSwap", (event) => draw(event.target));
})();
