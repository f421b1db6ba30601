// upcurve's pages: draw the charts from the JSON the server put in the page, and list the accounts behind a
// clicked bar or cell. No data is ever written into the page as HTML here: the server renders every table.
(function () {
  "use strict";

  function drillUrl(kind, run, point) {
    var c = point.customdata || [];
    var q = new URLSearchParams({ run: run });
    if (kind === "bridge") {
      if (c[0] === "start" || c[0] === "end") { return null; }
      q.set("type", c[0]); if (c[1]) { q.set("source", c[1]); }
      q.set("month_from", c[2]); q.set("month_to", c[2]);
      return "/partials/movements?" + q.toString();
    }
    if (kind === "source") {
      q.set("type", "expansion"); q.set("month_from", c[2]); q.set("month_to", c[3]); q.set("source", c[1]);
      return "/partials/movements?" + q.toString();
    }
    if (kind === "product") {
      q.set("product", c[1]); q.set("month_from", c[2]); q.set("month_to", c[3]);
      return "/partials/product?" + q.toString();
    }
    if (kind === "dimension") {
      q.set("dimension", c[0]); q.set("value", c[1]);
      return "/partials/accounts?" + q.toString();
    }
    if (kind === "cohort") {
      q.set("cohort", c[0]);
      return "/partials/accounts?" + q.toString();
    }
    return null;
  }

  function draw(el) {
    var source = document.getElementById(el.dataset.figure);
    if (!source || !window.Plotly) { return; }
    var figure = JSON.parse(source.textContent);
    window.Plotly.newPlot(el, figure.data, figure.layout, { responsive: true, displaylogo: false })
      .then(function () { el.classList.add("drawn"); });
    var kind = el.dataset.drill;
    if (kind) {
      el.on("plotly_click", function (event) {
        var url = drillUrl(kind, el.dataset.run, event.points[0]);
        if (url && window.htmx) {
          window.htmx.ajax("GET", url, { target: "#drill", swap: "innerHTML" });
        }
      });
    }
  }

  function start() {
    document.querySelectorAll("div.chart[data-figure]").forEach(draw);
    document.querySelectorAll("select[data-autosubmit]").forEach(function (s) {
      s.addEventListener("change", function () { s.form.submit(); });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
