// tenure dashboard: draws the panels of ./data (serving/dashboard_panels.py) with Plotly.
// Text from the data is always set with textContent (never parsed as HTML).
(function () {
  "use strict";

  var BAND_COLORS = {low: "#3c9d5d", medium: "#e0a030", high: "#d64545"};
  var CONFIG = {displayModeBar: false, responsive: true};
  var state = window.tenureDashboard = {charts: {}, panels: {}, drawn: false, errors: [], drawnAtMs: null,
                                        shownAtMs: null};
  // charts wait here until plotly.min.js has loaded (numbers and tables do not wait for it)
  var pending = {};
  var plotlyReady = false;

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function clear(node) { while (node && node.firstChild) { node.removeChild(node.firstChild); } return node; }

  function fmt(value, kind) {
    if (value === null || value === undefined || (typeof value === "number" && !isFinite(value))) { return "–"; }
    if (kind === "pct") { return (100 * value).toFixed(1) + "%"; }
    if (kind === "money") { return value.toLocaleString(undefined, {maximumFractionDigits: 0}); }
    if (kind === "int") { return Math.round(value).toLocaleString(); }
    if (typeof value === "number") { return Math.abs(value) >= 100 ? value.toFixed(0) : value.toFixed(Math.abs(value) < 1 ? 3 : 1); }
    return String(value);
  }

  function layout(extra) {
    var base = {margin: {l: 48, r: 12, t: 8, b: 40}, legend: {orientation: "h", y: -0.2}, font: {size: 11},
                paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)"};
    Object.keys(extra || {}).forEach(function (k) { base[k] = extra[k]; });
    return base;
  }

  function points(traces) {
    return traces.reduce(function (n, t) {
      var xs = t.y || t.values || t.x || [];
      return n + xs.filter(function (v) { return v !== null && v !== undefined; }).length;
    }, 0);
  }

  // draw one chart, or say why there is nothing to draw; recorded in window.tenureDashboard.charts
  function draw(id, traces, extraLayout) {
    var node = document.getElementById(id);
    if (!node) { return; }
    var n = points(traces || []);
    if (!traces || !n) { return nothing(id, "no data for this chart yet"); }
    node.removeAttribute("data-empty");
    if (!plotlyReady) {
      if (!pending[id]) { clear(node).appendChild(el("div", {"class": "status"}, "drawing…")); }
      pending[id] = [traces, extraLayout];
      state.charts[id] = {panel: node.getAttribute("data-panel"), status: "pending", points: n, traces: traces.length};
      return;
    }
    Plotly.react(node, traces, layout(extraLayout), CONFIG);
    state.charts[id] = {panel: node.getAttribute("data-panel"), status: "drawn", points: n, traces: traces.length};
  }

  function drawPending() {
    plotlyReady = true;
    Object.keys(pending).forEach(function (id) {
      var args = pending[id];
      delete pending[id];
      clear(document.getElementById(id));
      draw(id, args[0], args[1]);
    });
  }

  function nothing(id, message) {
    var node = document.getElementById(id);
    if (!node) { return; }
    delete pending[id];
    if (window.Plotly && node.data) { Plotly.purge(node); }
    clear(node).appendChild(el("div", {"class": "status"}, message));
    node.setAttribute("data-empty", "true");
    state.charts[id] = {panel: node.getAttribute("data-panel"), status: "empty", points: 0, message: message};
  }

  function tiles(id, items) {
    var node = clear(document.getElementById(id));
    items.forEach(function (item) {
      if (item[1] === undefined) { return; }
      var tile = el("div", {"class": "tile"});
      tile.appendChild(el("div", {"class": "v"}, fmt(item[1], item[2])));
      tile.appendChild(el("div", {"class": "k"}, item[0]));
      node.appendChild(tile);
    });
  }

  function table(id, columns, rows) {
    var node = clear(document.getElementById(id));
    if (!rows.length) { return; }
    var t = el("table"), head = el("tr");
    columns.forEach(function (c) { head.appendChild(el("th", {}, c[0])); });
    t.appendChild(head);
    rows.forEach(function (row) {
      var tr = el("tr");
      columns.forEach(function (c) {
        var v = typeof c[1] === "function" ? c[1](row) : row[c[1]];
        tr.appendChild(el("td", c[2] ? {"class": "n"} : {}, c[2] ? fmt(v, c[2]) : (v === null || v === undefined ? "–" : v)));
      });
      t.appendChild(tr);
    });
    node.appendChild(t);
  }

  function status(name, answer) {
    document.querySelectorAll('[data-status="' + name + '"]').forEach(function (node) {
      node.className = "status" + (answer.status === "error" ? " error" : "");
      node.textContent = answer.status === "ok" ? "" : (answer.message || answer.status);
      node.hidden = answer.status === "ok";
    });
  }

  function chartsOf(name) {
    return Array.prototype.map.call(document.querySelectorAll('.chart[data-panel="' + name + '"]'), function (n) { return n.id; });
  }

  // --- panels ---------------------------------------------------------------------------------
  var render = {
    kpis: function (d) {
      var t = d.totals || {};
      tiles("kpi-tiles", [["retention rate", t.retention_rate, "pct"], ["churn rate (monthly)", t.churn_rate, "pct"],
        ["estimated lost customers (monthly)", t.estimated_lost_rate, "pct"],
        ["estimated lost customers (now)", t.estimated_lost_customers, "int"],
        ["repurchase rate", t.repurchase_rate, "pct"], ["conversion (session → purchase)", t.conversion_rate, "pct"],
        ["average order value", t.average_order_value], ["days between orders (median)", t.days_between_orders_median],
        ["NPS", t.nps], ["CSAT (4-5 of 5)", t.csat, "pct"], ["CES (1-7)", t.ces],
        ["ticket resolution (median h)", t.resolution_hours_median], ["customers", d.customers, "int"]]);
      var months = (d.monthly || []).map(function (m) { return m.month; });
      draw("chart-monthly", [
        {type: "scatter", mode: "lines+markers", name: "churn rate", x: months, y: (d.monthly || []).map(function (m) { return m.churn_rate; }), line: {color: BAND_COLORS.high}},
        {type: "scatter", mode: "lines+markers", name: "estimated lost", x: months, y: (d.monthly || []).map(function (m) { return m.estimated_lost_rate; }), line: {color: BAND_COLORS.high, dash: "dot"}},
        {type: "scatter", mode: "lines+markers", name: "repurchase rate", x: months, y: (d.monthly || []).map(function (m) { return m.repurchase_rate; }), line: {color: "#2f6fb3"}},
        {type: "scatter", mode: "lines+markers", name: "conversion", x: months, y: (d.monthly || []).map(function (m) { return m.conversion_rate; }), line: {color: "#7b61a8"}}
      ], {yaxis: {tickformat: ".0%", rangemode: "tozero"}});
      draw("chart-cohorts", (d.cohorts || []).map(function (c) {
        return {type: "scatter", mode: "lines+markers", name: c.cohort + " (" + c.size + ")",
                x: c.retention.map(function (_, k) { return k; }), y: c.retention};
      }), {xaxis: {title: {text: "months since signup", standoff: 4}, dtick: 1}, yaxis: {tickformat: ".0%", range: [0, 1.02]},
           legend: {orientation: "h", y: -0.32}, margin: {l: 48, r: 12, t: 8, b: 70}});
      var channels = d.channels || [];
      draw("chart-channels", [
        {type: "bar", name: "conversion", x: channels.map(function (c) { return c.channel; }), y: channels.map(function (c) { return c.conversion_rate; })},
        {type: "bar", name: "repurchase rate", x: channels.map(function (c) { return c.channel; }), y: channels.map(function (c) { return c.repurchase_rate; })},
        {type: "bar", name: "CSAT", x: channels.map(function (c) { return c.channel; }), y: channels.map(function (c) { return c.csat; })}
      ], {barmode: "group", yaxis: {tickformat: ".0%"}});
      table("channel-table", [["channel", "channel"], ["events", "events", "int"], ["orders", "orders", "int"],
        ["revenue", "revenue", "money"], ["AOV", "average_order_value", "num"], ["conversion", "conversion_rate", "pct"],
        ["repurchase", "repurchase_rate", "pct"], ["NPS", "nps", "num"], ["CSAT", "csat", "pct"], ["CES", "ces", "num"],
        ["tickets", "tickets", "int"], ["resolution h (median)", "resolution_hours_median", "num"]], channels);
      var topics = voiceTopics(d.voice), monthly = (d.voice && d.voice.monthly) || [];
      document.getElementById("voice-card").hidden = !topics.length;
      document.getElementById("voice-monthly-card").hidden = !monthly.length;
      if (topics.length) {
        draw("chart-voice", [{type: "bar", orientation: "h", x: topics.map(function (t) { return t[1]; }),
                              y: topics.map(function (t) { return t[0]; }), marker: {color: BAND_COLORS.high}}],
             {yaxis: {autorange: "reversed"}, xaxis: {title: {text: "negative texts mentioning it"}},
              margin: {l: 130, r: 12, t: 8, b: 40}});
      } else { delete state.charts["chart-voice"]; }
      if (monthly.length) {
        var m = monthly.map(function (r) { return r.month; });
        draw("chart-voice-monthly", [
          {type: "scatter", mode: "lines+markers", name: "negative share", x: m, y: monthly.map(function (r) { return r.negative_share; }), line: {color: BAND_COLORS.high}},
          {type: "scatter", mode: "lines+markers", name: "mean sentiment (-1..1)", x: m, y: monthly.map(function (r) { return r.sentiment_mean; }), line: {color: "#2f6fb3"}, yaxis: "y2"}
        ], {yaxis: {tickformat: ".0%", rangemode: "tozero"}, yaxis2: {overlaying: "y", side: "right", range: [-1, 1]}});
      } else { delete state.charts["chart-voice-monthly"]; }
    },

    risk_mix: function (d) {
      tiles("risk-tiles", [["scores logged", d.scores, "int"], ["customers scored", d.customers_scored, "int"]].concat(
        d.bands.map(function (b) { return ["now " + b + " risk", (d.customers_by_band_now || {})[b] || 0, "int"]; })));
      draw("chart-risk-mix", d.bands.map(function (b) {
        return {type: "scatter", mode: "lines", stackgroup: "bands", name: b, x: d.periods, y: d.share[b],
                line: {color: BAND_COLORS[b]}, customdata: d.count[b], hovertemplate: "%{y:.1%} (%{customdata} scores)"};
      }), {yaxis: {tickformat: ".0%", range: [0, 1]}, xaxis: {title: {text: "per " + d.period + " (UTC)"}}});
    },

    value_at_risk: function (d) {
      var bands = Object.keys(d.by_band || {});
      tiles("value-tiles", [["value at risk", d.value_at_risk, "money"], ["expected value (scored customers)", d.expected_value_scored, "money"],
        ["customers valued", d.customers_valued, "int"], ["of them scored", d.customers_scored, "int"]]);
      draw("chart-value-at-risk", [
        {type: "bar", name: "value at risk", x: bands, y: bands.map(function (b) { return d.by_band[b].value_at_risk; }),
         marker: {color: bands.map(function (b) { return BAND_COLORS[b] || "#888"; })}},
        {type: "bar", name: "expected value", x: bands, y: bands.map(function (b) { return d.by_band[b].expected_value; }),
         marker: {color: "rgba(47,111,179,0.35)"}}
      ], {barmode: "group"});
      table("value-table", [["customer", "customer_id"], ["risk band", "risk_band"], ["churn probability", "churn_probability", "pct"],
        ["expected value", "expected_value", "money"], ["value at risk", "value_at_risk", "money"], ["P(alive)", "p_alive", "pct"]],
        d.top_customers || []);
    },

    experiments: function (d) {
      var holder = clear(document.getElementById("experiment-charts"));
      var rows = [];
      (d.experiments || []).forEach(function (x, i) {
        var arms = x.arms || [];
        arms.forEach(function (a) { rows.push({experiment: x.name, arm: a.arm + (a.control ? " (control)" : ""),
          customers: a.customers, rate: a.rate, difference: a.control ? null : a.difference,
          interval: a.difference_low === null || a.difference_low === undefined ? "–" :
            fmt(a.difference_low, "pct") + " … " + fmt(a.difference_high, "pct"),
          truth: a.true_difference, warning: x.warning || ""}); });
        if (!arms.length) { rows.push({experiment: x.name, arm: "–", warning: x.warning || ""}); return; }
        var treated = arms.filter(function (a) { return !a.control; });
        var card = el("div", {"class": "card"});
        card.appendChild(el("h3", {}, x.name + " (" + (x.status || "") + "): " + x.metric + " difference to " +
                                     (x.control || "control") + ", 95% interval" + (x.srm_flagged ? " — sample-ratio mismatch!" : "")));
        var chart = el("div", {"class": "chart", id: "chart-experiment-" + i, "data-panel": "experiments"});
        card.appendChild(chart);
        holder.appendChild(card);
        var traces = [{type: "scatter", mode: "markers", name: "measured", x: treated.map(function (a) { return a.arm; }),
          y: treated.map(function (a) { return a.difference; }), marker: {size: 11, color: "#2f6fb3"},
          error_y: {type: "data", symmetric: false,
                    array: treated.map(function (a) { return a.difference_high === null ? 0 : a.difference_high - a.difference; }),
                    arrayminus: treated.map(function (a) { return a.difference_low === null ? 0 : a.difference - a.difference_low; })}}];
        if (treated.some(function (a) { return a.true_difference !== null && a.true_difference !== undefined; })) {
          traces.push({type: "scatter", mode: "markers", name: "true effect (simulator)", x: treated.map(function (a) { return a.arm; }),
            y: treated.map(function (a) { return a.true_difference; }), marker: {symbol: "x", size: 10, color: "#d64545"}});
        }
        draw(chart.id, traces, {yaxis: {tickformat: ".1%", zeroline: true, zerolinecolor: "#616e7c"}});
      });
      table("experiment-table", [["experiment", "experiment"], ["arm", "arm"], ["customers", "customers", "int"],
        ["rate", "rate", "pct"], ["difference to control", "difference", "pct"], ["95% interval", "interval"],
        ["true difference", "truth", "pct"], ["note", "warning"]], rows);
    },

    drift: function (d) {
      tiles("drift-tiles", (d.latest || []).map(function (p) {
        return [p.kind + " v" + p.model_version + ": " + (p.verdict || "") + " (" + (p.checked_at || "") + ")", p.drift_share, "pct"];
      }));
      var kinds = {};
      (d.passes || []).forEach(function (p) { (kinds[p.kind] = kinds[p.kind] || []).push(p); });
      draw("chart-drift", Object.keys(kinds).map(function (k) {
        return {type: "scatter", mode: "lines+markers", name: k, x: kinds[k].map(function (p) { return p.checked_at; }),
                y: kinds[k].map(function (p) { return p.drift_share; }),
                text: kinds[k].map(function (p) { return (p.drifted || []).join(", "); }), hovertemplate: "%{y:.0%} drifted: %{text}"};
      }), {yaxis: {tickformat: ".0%", rangemode: "tozero"}});
    },

    alerts: function (d) {
      var list = clear(document.getElementById("alert-list"));
      (d.alerts || []).forEach(function (a) {
        var item = el("div", {style: "margin-bottom:8px"});
        item.appendChild(el("span", {"class": "sev-" + (a.severity || "info")}, (a.severity || "info") + " "));
        item.appendChild(el("strong", {}, a.title || "alert"));
        item.appendChild(el("span", {"class": "status"}, "  " + (a.model || "") + (a.model_version ? " v" + a.model_version : "") + " · " + (a.raised_at || "")));
        var ul = el("ul", {"class": "findings"});
        (a.findings || []).forEach(function (f) { ul.appendChild(el("li", {}, f)); });
        if (a.next_action) { ul.appendChild(el("li", {}, "next: " + a.next_action)); }
        item.appendChild(ul);
        list.appendChild(item);
      });
    },

    champions: function (d) {
      var models = d.models || [];
      var served = models.map(function (m) { return m.kind + " v" + (m.served_version || "–"); }).join(", ");
      document.getElementById("served").textContent = "serving " + served;
      table("champion-table", [["model", "name"], ["champion", "version"], ["served", "served_version"],
        ["registered", "created_at"], ["key metrics", function (m) {
          return Object.keys(m.key_metrics || {}).map(function (k) { return k + " " + fmt(m.key_metrics[k]); }).join(" · ") || m.message || "–";
        }], ["gate", function (m) { return (m.forced ? "forced: " : "") + (m.gate || "–"); }]], models);
      [["churn", "chart-churn-model", "test_roc_auc"], ["recommender", "chart-recommender-model", "ndcg_at_k"]].forEach(function (spec) {
        var m = models.filter(function (x) { return x.kind === spec[0]; })[0];
        if (!m || m.version === null || m.version === undefined) { return nothing(spec[1], "no " + spec[0] + " champion yet"); }
        var others = (m.baselines || {})[spec[2]] || {};
        var names = ["champion v" + m.version].concat(Object.keys(others));
        var values = [(m.key_metrics || {})[spec[2]]].concat(Object.keys(others).map(function (k) { return others[k]; }));
        draw(spec[1], [{type: "bar", x: names, y: values,
                        marker: {color: names.map(function (_, i) { return i === 0 ? "#2f6fb3" : "#9aa5b1"; })}}],
             {yaxis: {rangemode: "tozero"}});
      });
    }
  };

  function voiceTopics(voice) {
    if (!voice) { return []; }
    var list = voice.negative_topics || voice.topics || [];
    return list.map(function (t) {
      if (Array.isArray(t)) { return [String(t[0]), Number(t[1])]; }
      var name = t.topic || t.term || t.word || t.name, n = t.texts !== undefined ? t.texts : t.count;
      return [String(name), Number(n)];
    }).filter(function (t) { return isFinite(t[1]); }).slice(0, 12);
  }

  function apply(name, answer) {
    state.panels[name] = {status: answer.status, message: answer.message, updated_at: answer.updated_at};
    status(name, answer);
    if (answer.status === "ok" || (answer.data && name === "experiments")) {
      try { render[name](answer.data || {}); } catch (e) { state.errors.push(name + ": " + e); console.error(e); }
    } else {
      chartsOf(name).forEach(function (id) { nothing(id, answer.message || answer.status); });
    }
  }

  function applyAll(all) {
    Object.keys(render).forEach(function (name) { if (all[name]) { apply(name, all[name]); } });
    document.getElementById("updated").textContent = "updated " + new Date().toISOString().slice(0, 19).replace("T", " ") + " UTC";
  }

  function poll(name) {
    fetch("data/" + name, {credentials: "same-origin", cache: "no-store"}).then(function (r) { return r.json(); })
      .then(function (answer) {
        apply(name, answer);
        if (answer.status === "computing") { setTimeout(function () { poll(name); }, 2000); }
      }).catch(function (e) { state.errors.push(name + ": " + e); });
  }

  function refresh() {
    fetch("data", {credentials: "same-origin", cache: "no-store"}).then(function (r) { return r.json(); })
      .then(applyAll).catch(function (e) { state.errors.push("refresh: " + e); });
  }

  window.tenureFirstData.then(function (all) {
    applyAll(all);  // numbers, tables and messages now; charts as soon as Plotly is there
    state.shownAtMs = performance.now();
    performance.mark("tenure-data-shown");
    Object.keys(all).forEach(function (name) { if (all[name].status === "computing") { setTimeout(function () { poll(name); }, 2000); } });
    return window.tenurePlotly;
  }).then(function () {
    drawPending();
    state.drawn = true;
    state.drawnAtMs = performance.now();
    performance.mark("tenure-charts-drawn");
    setInterval(refresh, window.tenureRefreshMs);
  }).catch(function (e) {
    state.errors.push("first load: " + e);
    document.querySelectorAll(".status").forEach(function (n) { n.textContent = "could not load the data: " + e; n.className = "status error"; });
  });
})();
