// agentgraph run viewer: everything it shows is embedded in the page (no network).
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("data").textContent);
  var app = document.getElementById("app");
  var filter = "all";
  var selected = null;
  var FILTERS = {
    all: function () { return true; },
    correct: function (s) { return s.correct === true; },
    wrong: function (s) { return s.correct === false; },
    disagreement: function (s) { return s.disagreement; },
    failed: function (s) { return s.failed; }
  };
  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    (children || []).forEach(function (c) { e.append(c); });
    return e;
  }
  function svg(tag, attrs) {
    var e = document.createElementNS("http://www.w3.org/2000/svg", tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    return e;
  }
  function table(head, rows) {
    var t = el("table", {}, [el("tr", {}, head.map(function (h) { return el("th", {}, [h]); }))]);
    rows.forEach(function (r) { t.append(el("tr", {}, r.map(function (c) { return el("td", {}, [String(c)]); }))); });
    return t;
  }
  // the graph of one round: the agents that spoke, and the edges actually read by this round's turns
  function roundGraph(s, rnd) {
    var turns = s.turns.filter(function (t) { return t.round === rnd; });
    var byId = {};
    s.turns.forEach(function (t) { byId[t.id] = t; });
    var names = turns.map(function (t) { return t.agent; });
    // this round's agents on a circle; the previous round's turns they read in a column on the left
    var sources = [];
    turns.forEach(function (t) {
      t.read.forEach(function (rid) {
        var src = byId[rid];
        if (src && src.round !== t.round && sources.indexOf(src.agent) < 0) { sources.push(src.agent); }
      });
    });
    var left = sources.length ? 70 : 0;
    var W = 260 + left, H = 220, R = 80, pos = {}, prev = {};
    names.forEach(function (a, i) {
      var ang = 2 * Math.PI * i / Math.max(1, names.length) - Math.PI / 2;
      pos[a] = [left + 130 + R * Math.cos(ang), H / 2 + R * Math.sin(ang)];
    });
    sources.forEach(function (a, i) { prev[a] = [36, 20 + i * (H - 40) / Math.max(1, sources.length - 1 || 1)]; });
    var g = svg("svg", { width: W, height: H, "class": "graph", "data-round": rnd });
    var defs = svg("defs", {});
    var m = svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 22, refY: 5, markerWidth: 6, markerHeight: 6, orient: "auto" });
    m.append(svg("path", { d: "M0,0 L10,5 L0,10 z", fill: "#555" }));
    defs.append(m); g.append(defs);
    turns.forEach(function (t) {
      t.read.forEach(function (rid) {
        var src = byId[rid];
        if (!src) { return; }
        var how = src.round === t.round ? "spatial" : "temporal";
        var from = (how === "spatial" ? pos[src.agent] : prev[src.agent]) || [12, 12];
        var to = pos[t.agent];
        g.append(svg("line", { "class": "edge " + how, x1: from[0], y1: from[1], x2: to[0], y2: to[1],
          "data-from": src.agent, "data-to": t.agent, "data-round": rnd, "data-how": how }));
      });
    });
    sources.forEach(function (a) {
      var node = svg("g", { "class": "source", "data-agent": a });
      var c = svg("circle", { cx: prev[a][0], cy: prev[a][1], r: 9, fill: "#ddd", stroke: "#999" });
      var label = svg("text", { x: prev[a][0], y: prev[a][1] + 20, "text-anchor": "middle" });
      label.textContent = a + " (r" + (rnd - 1) + ")";
      node.append(c, label); g.append(node);
    });
    turns.forEach(function (t) {
      var node = svg("g", { "class": "agent", "data-agent": t.agent, "data-failed": t.error ? "true" : "false" });
      var c = svg("circle", { cx: pos[t.agent][0], cy: pos[t.agent][1], r: 16 });
      var label = svg("text", { x: pos[t.agent][0], y: pos[t.agent][1] + 30, "text-anchor": "middle" });
      label.textContent = t.agent + (t.answer !== null ? " → " + t.answer : t.score !== null ? " ★" + t.score : "");
      var tip = svg("title", {}); tip.textContent = t.role + (t.error ? " — failed: " + t.error : "");
      node.append(c, label, tip); g.append(node);
    });
    return el("div", { "class": "round" }, [el("div", {}, ["round " + rnd]), g]);
  }
  function showSession(s) {
    var main = document.getElementById("main");
    main.innerHTML = "";
    main.append(el("h2", {}, [s.team + " — " + s.session]));
    main.append(el("p", {}, ["Problem: " + s.problem]));
    main.append(el("p", { "class": s.correct ? "ok" : "bad" }, [
      "Answer " + s.answer + " (gold " + s.gold + ", " + (s.correct ? "right" : "wrong") + ")" +
      (s.decision ? " — " + s.decision.method + (s.decision.stage !== null && s.decision.stage !== undefined ? ", stage " + s.decision.stage : "") + (s.decision.note ? ": " + s.decision.note : "") : "")]));
    var rounds = el("div", { id: "rounds" }, []);
    for (var r = 0; r <= Math.max.apply(null, s.turns.map(function (t) { return t.round; }).concat([0])); r++) {
      rounds.append(roundGraph(s, r));
    }
    main.append(rounds);
    var agents = Object.keys(s.agents);
    var nRounds = 1 + Math.max.apply(null, s.turns.map(function (t) { return t.round; }).concat([0]));
    var rows = [];
    for (var k = 0; k < nRounds; k++) {
      rows.push([k].concat(agents.map(function (a) {
        var t = s.turns.find(function (x) { return x.agent === a && x.round === k; });
        return t ? (t.error ? "failed" : t.answer !== null ? t.answer : t.score !== null ? "score " + t.score : "–") : "";
      })));
    }
    main.append(el("h3", {}, ["Answers per round"]), table(["round"].concat(agents), rows));
    main.append(el("h3", {}, ["Tokens"]), table(["agent", "prompt", "completion"], Object.keys(s.usage_by_agent).map(function (a) {
      var u = s.usage_by_agent[a]; return [a, u.prompt_tokens, u.completion_tokens];
    })));
    main.append(table(["edge", "tokens"], Object.keys(s.tokens_by_edge).map(function (e) { return [e, s.tokens_by_edge[e]]; })));
    main.append(el("h3", {}, ["Messages"]));
    s.turns.forEach(function (t) {
      var box = el("div", { "class": "msg" + (t.error ? " failed" : ""), "data-turn": t.id }, [
        el("b", {}, [t.agent + " (" + t.role + "), round " + t.round + (t.kind !== "agent" ? ", " + t.kind : "")]), "\n"]);
      if (t.thinking) { box.append(el("details", {}, [el("summary", {}, ["thinking"]), t.thinking])); }
      box.append(t.error ? "failed: " + t.error : t.final);
      main.append(box);
    });
  }
  function curves() {
    if (!data.steps.length) { return null; }
    var keys = ["reward", "accuracy", "loss", "tokens"].filter(function (k) { return typeof data.steps[0][k] === "number"; });
    var W = 420, H = 160, box = el("div", { id: "curves" }, [el("h3", {}, ["Learning curves"])]);
    keys.forEach(function (k) {
      var vals = data.steps.map(function (s) { return s[k]; });
      var lo = Math.min.apply(null, vals), hi = Math.max.apply(null, vals), span = hi - lo || 1;
      var pts = vals.map(function (v, i) { return (10 + i * (W - 20) / Math.max(1, vals.length - 1)) + "," + (H - 10 - (v - lo) / span * (H - 20)); });
      var g = svg("svg", { width: W, height: H, "data-curve": k });
      g.append(svg("polyline", { points: pts.join(" "), fill: "none", stroke: "#1d6fa5" }));
      box.append(el("div", {}, [k + " (" + lo.toFixed(3) + " – " + hi.toFixed(3) + ")"]), g);
    });
    var probs = data.steps[data.steps.length - 1].probabilities;
    if (probs) {
      // every edge's probability over the steps, on one 0..1 axis
      var pg = svg("svg", { width: W, height: H, "data-curve": "probabilities" });
      Object.keys(probs).forEach(function (e, j) {
        var pts = data.steps.map(function (st, i) {
          var p = (st.probabilities || {})[e];
          return (10 + i * (W - 20) / Math.max(1, data.steps.length - 1)) + "," + (H - 10 - (p === undefined ? 0 : p) * (H - 20));
        });
        var line = svg("polyline", { points: pts.join(" "), fill: "none", stroke: "hsl(" + (j * 67 % 360) + ",60%,45%)", "data-edge": e });
        var tip = svg("title", {}); tip.textContent = e; line.append(tip);
        pg.append(line);
      });
      box.append(el("h3", {}, ["Edge probabilities over steps"]), pg);
      box.append(el("h4", {}, ["last step"]), table(["edge", "p"], Object.keys(probs).map(function (e) { return [e, Number(probs[e]).toFixed(3)]; })));
    }
    return box;
  }
  function render() {
    app.innerHTML = "";
    var list = el("div", { id: "list" }, []);
    var bar = el("div", { "class": "filters" }, []);
    Object.keys(FILTERS).forEach(function (f) {
      var b = el("button", { "data-filter": f, "class": f === filter ? "on" : "" }, [f]);
      b.onclick = function () { filter = f; render(); };
      bar.append(b);
    });
    list.append(el("h3", {}, [data.run]), bar);
    data.sessions.filter(FILTERS[filter]).forEach(function (s) {
      var item = el("div", { "class": "item" + (s === selected ? " sel" : ""), "data-session": s.session }, [
        el("span", { "class": s.correct ? "ok" : "bad" }, [s.correct ? "✓ " : "✗ "]),
        s.team + " · " + s.session + (s.failed ? " · failed turns" : "") + (s.disagreement ? " · disagreed" : "")]);
      item.onclick = function () { selected = s; render(); };
      list.append(item);
    });
    var main = el("div", { id: "main" }, []);
    app.append(list, main);
    if (selected) { showSession(selected); }
    else {
      var c = curves();
      main.append(c || el("p", {}, [data.sessions.length + " sessions — pick one on the left."]));
    }
  }
  app.style.display = "contents";
  render();
})();
