// ECharts for elements with data-chart: {"labels": [...], "values": [...]} is one bar series,
// {"labels": [...], "series": [{"name", "values"}]} stacked bars, one series per group.
// No inline script: the page's CSP forbids it. htmx fragments are drawn when swapped in.
"use strict";

(function () {
  function option(data) {
    const series = data.series
      ? data.series.map((s) => ({ name: s.name, type: "bar", stack: "all", data: s.values }))
      : [{ type: "bar", data: data.values, itemStyle: { color: "#b22222" } }];
    return {
      animation: false,
      grid: { left: 48, right: 16, top: data.series ? 36 : 16, bottom: 48 },
      legend: data.series ? { type: "scroll", top: 0 } : undefined,
      tooltip: { trigger: "axis" },
      xAxis: { type: "category", data: data.labels },
      yAxis: { type: "value", minInterval: 1 },
      series: series,
    };
  }
  function draw(root) {
    if (typeof echarts === "undefined") return;
    root.querySelectorAll("[data-chart]").forEach((el) => {
      echarts.init(el, null, { renderer: "svg" }).setOption(option(JSON.parse(el.dataset.chart)));
    });
  }
  document.addEventListener("DOMContentLoaded", () => draw(document));
  document.addEventListener("htmx:afterSwap", (event) => draw(event.target));
})();
