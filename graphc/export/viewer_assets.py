"""The HTML viewer's stylesheet and script, inlined into every page ``to_html`` writes.

The script reads the graph from ``<script type="application/json" id="graph-data">`` and
builds all DOM with ``createElementNS``/``textContent`` (never ``innerHTML``), so names in the
graph cannot inject markup.  The page needs no network: no fonts, no CDN, no Graphviz.

With ``#selftest`` in the URL the page checks itself after rendering (node count, a click on a
node and the details panel, the backward toggle, search, the grad_table step-through, errors
reported to ``window.onerror`` or ``console.error``) and writes a JSON result into
``<pre id="selftest-result">`` (read by tests through ``chromium --headless --dump-dom``).
"""

CSS = r"""
* { box-sizing: border-box; }
html, body { margin: 0; height: 100%; font-family: system-ui, -apple-system, "Segoe UI",
  Roboto, "DejaVu Sans", Arial, sans-serif; font-size: 13px; color: #1f2933; background: #fafbfc; }
body { display: flex; flex-direction: column; }
#bar { display: flex; flex-wrap: wrap; align-items: center; gap: 6px 14px; padding: 6px 10px;
  border-bottom: 1px solid #d9dee3; background: #fff; }
#bar h1 { font-size: 14px; margin: 0 6px 0 0; font-weight: 600; }
#bar .group { display: flex; align-items: center; gap: 6px; }
#bar label { cursor: pointer; user-select: none; }
#search { width: 180px; padding: 3px 6px; border: 1px solid #b8c0c8; border-radius: 4px; }
button { padding: 3px 10px; border: 1px solid #b8c0c8; border-radius: 4px; background: #f3f5f7;
  cursor: pointer; font: inherit; }
button:hover { background: #e6eaee; }
#status, #match-count { color: #52606d; }
#main { flex: 1; display: flex; min-height: 0; }
#canvas { flex: 1; min-width: 0; height: 100%; cursor: grab; display: block; }
#canvas.dragging { cursor: grabbing; }
#side { width: 290px; border-left: 1px solid #d9dee3; background: #fff; padding: 8px 10px;
  overflow: auto; }
#side h2 { font-size: 13px; margin: 4px 0 6px; }
#details dl { margin: 0; display: grid; grid-template-columns: max-content 1fr; gap: 3px 8px; }
#details dt { color: #52606d; }
#details dd { margin: 0; word-break: break-word; font-family: ui-monospace, "DejaVu Sans Mono",
  monospace; font-size: 12px; }
#legend { margin-top: 14px; border-top: 1px solid #e4e7eb; padding-top: 8px; }
#legend div { display: flex; align-items: center; gap: 6px; margin: 2px 0; }
#legend span.sw { width: 14px; height: 10px; border-radius: 3px; border: 1px solid; }
.node rect { stroke-width: 1.2; }
.node text { pointer-events: none; font-size: 11.5px; fill: #1f2933; }
.node text.l1 { font-weight: 600; }
.node text.l2 { font-size: 10px; fill: #52606d; }
.node { cursor: pointer; }
.role-input rect { fill: #e0e0e0; stroke: #616161; }
.role-parameter rect { fill: #fff3b0; stroke: #b08900; }
.role-constant rect { fill: #ffffff; stroke: #9e9e9e; stroke-dasharray: 3 2; }
.role-forward rect { fill: #cfe3ff; stroke: #2b6cb0; }
.role-backward rect { fill: #ffd8c2; stroke: #c0562b; }
.role-update rect { fill: #c9f0cf; stroke: #2f855a; }
.node.output rect { stroke-width: 2.6; }
.node.selected rect { stroke: #111; stroke-width: 3; }
.node.match rect { stroke: #d11; stroke-width: 3; }
.dim { opacity: 0.25; }
.edge { fill: none; stroke: #8a96a3; stroke-width: 1.2; }
.edge.to-backward { stroke: #d8a488; }
.edge.to-update { stroke: #86c596; }
.edge.hl { stroke: #111; stroke-width: 2; }
.edge.update-edge { stroke: #2f855a; stroke-dasharray: 5 3; }
.kernel rect { fill: rgba(120, 100, 200, 0.06); stroke: #7a6bb0; stroke-dasharray: 6 3; }
.kernel text { font-size: 10px; fill: #5a4b90; }
.walk .role-backward.unlit { opacity: 0.15; }
.node.lit rect { fill: #ff9f6b; }
.node.current rect { stroke: #d11; stroke-width: 3.2; }
.node.fwd-current rect { stroke: #7b2cbf; stroke-width: 3.2; }
#selftest-result { display: none; }
"""

JS = r"""
(function () {
  "use strict";
  var errors = [];
  window.addEventListener("error", function (e) { errors.push("error: " + (e && e.message)); });
  var origError = console.error;
  console.error = function () {
    errors.push("console.error: " + Array.prototype.map.call(arguments, String).join(" "));
    if (origError) { origError.apply(console, arguments); }
  };

  var data = JSON.parse(document.getElementById("graph-data").textContent);
  var svg = document.getElementById("canvas");
  var NS = svg.namespaceURI;
  var viewport = document.getElementById("viewport");
  var gKernels = document.getElementById("kernels");
  var gEdges = document.getElementById("edges");
  var gNodes = document.getElementById("nodes");
  var details = document.getElementById("details");

  function el(tag, attrs, parent) {
    var e = document.createElementNS(NS, tag);
    for (var k in attrs) { if (Object.prototype.hasOwnProperty.call(attrs, k)) { e.setAttribute(k, attrs[k]); } }
    if (parent) { parent.appendChild(e); }
    return e;
  }
  function hel(tag, text, parent, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    if (cls) { e.className = cls; }
    if (parent) { parent.appendChild(e); }
    return e;
  }

  var byId = {};
  data.nodes.forEach(function (n) { byId[n.id] = n; n.users = []; });
  data.edges.forEach(function (e) { if (byId[e.t] && byId[e.s]) { byId[e.s].users.push(e.t); } });
  var gradOf = {};
  (data.steps || []).forEach(function (s) {
    if (s.node !== null) {
      s.lit.forEach(function (i) { gradOf[i] = s.node; });
      if (s.grad !== null && gradOf[s.grad] === undefined) { gradOf[s.grad] = s.node; }
    }
  });

  // -- drawing --------------------------------------------------------------------------
  var defs = el("defs", {}, svg);
  var marker = el("marker", {id: "arrow", viewBox: "0 0 10 10", refX: "9", refY: "5",
                             markerWidth: "7", markerHeight: "7", orient: "auto"}, defs);
  el("path", {d: "M0,0 L10,5 L0,10 z", fill: "#8a96a3"}, marker);

  function curve(pts) {
    var d = "M" + pts[0][0] + "," + pts[0][1];
    for (var i = 1; i < pts.length; i++) {
      var a = pts[i - 1], b = pts[i], my = (a[1] + b[1]) / 2;
      d += " C" + a[0] + "," + my + " " + b[0] + "," + my + " " + b[0] + "," + b[1];
    }
    return d;
  }

  (data.kernels || []).forEach(function (k) {
    var x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    k.members.forEach(function (i) {
      var n = byId[i]; if (!n) { return; }
      x0 = Math.min(x0, n.x - n.w / 2); x1 = Math.max(x1, n.x + n.w / 2);
      y0 = Math.min(y0, n.y - n.h / 2); y1 = Math.max(y1, n.y + n.h / 2);
    });
    if (x0 === Infinity) { return; }
    var g = el("g", {"class": "kernel"}, gKernels);
    el("rect", {x: x0 - 8, y: y0 - 16, width: x1 - x0 + 16, height: y1 - y0 + 24, rx: 8}, g);
    var t = el("text", {x: x0 - 4, y: y0 - 5}, g);
    t.textContent = k.name;
    k.el = g;
  });

  var edgeEls = [];
  data.edges.forEach(function (e) {
    var role = byId[e.t] ? byId[e.t].role : "forward";
    var p = el("path", {"class": "edge to-" + role + (e.kind === "update" ? " update-edge" : ""),
                        d: curve(e.pts), "marker-end": "url(#arrow)"}, gEdges);
    var title = el("title", {}, p);
    title.textContent = (e.shape || "") + (e.kind === "update" ? " (new value)" : "");
    e.el = p;
    edgeEls.push(e);
  });

  var nodeEls = [];
  data.nodes.forEach(function (n) {
    var cls = "node role-" + n.role + (n.output ? " output" : "");
    var g = el("g", {"class": cls, transform: "translate(" + n.x + "," + n.y + ")",
                     "data-id": String(n.id)}, gNodes);
    el("rect", {x: -n.w / 2, y: -n.h / 2, width: n.w, height: n.h, rx: 6}, g);
    var t1 = el("text", {"class": "l1", x: 0, y: n.l2 ? -2.5 : 4, "text-anchor": "middle"}, g);
    t1.textContent = n.l1;
    if (n.l2) {
      var t2 = el("text", {"class": "l2", x: 0, y: 10, "text-anchor": "middle"}, g);
      t2.textContent = n.l2;
    }
    var title = el("title", {}, g);
    title.textContent = n.name + " (" + n.op + ")";
    g.addEventListener("click", function (ev) { ev.stopPropagation(); select(n.id); });
    n.el = g;
    nodeEls.push(g);
  });

  // -- pan and zoom ---------------------------------------------------------------------
  var view = {x: 0, y: 0, k: 1};
  function apply() {
    viewport.setAttribute("transform", "translate(" + view.x + "," + view.y + ") scale(" + view.k + ")");
  }
  function fit() {
    var r = svg.getBoundingClientRect();
    var w = r.width || 800, h = r.height || 600;
    var k = Math.min((w - 40) / Math.max(data.width, 1), (h - 40) / Math.max(data.height, 1), 1.5);
    k = Math.max(k, 0.05);
    view.k = k;
    view.x = (w - data.width * k) / 2;
    view.y = Math.max(20, (h - data.height * k) / 2);
    apply();
  }
  svg.addEventListener("wheel", function (ev) {
    ev.preventDefault();
    var r = svg.getBoundingClientRect();
    var mx = ev.clientX - r.left, my = ev.clientY - r.top;
    var k2 = Math.min(8, Math.max(0.02, view.k * Math.exp(-ev.deltaY * 0.0015)));
    view.x = mx - (mx - view.x) * k2 / view.k;
    view.y = my - (my - view.y) * k2 / view.k;
    view.k = k2;
    apply();
  }, {passive: false});
  var drag = null;
  svg.addEventListener("mousedown", function (ev) {
    drag = {x: ev.clientX, y: ev.clientY, vx: view.x, vy: view.y, moved: false};
    svg.classList.add("dragging");
  });
  window.addEventListener("mousemove", function (ev) {
    if (!drag) { return; }
    var dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 3) { drag.moved = true; }
    view.x = drag.vx + dx; view.y = drag.vy + dy; apply();
  });
  window.addEventListener("mouseup", function () {
    if (drag) { svg.classList.remove("dragging"); }
    setTimeout(function () { drag = null; }, 0);
  });
  svg.addEventListener("click", function () { if (!drag || !drag.moved) { select(null); } });
  document.getElementById("fit").addEventListener("click", fit);
  function centerOn(n) {
    var r = svg.getBoundingClientRect();
    view.x = (r.width || 800) / 2 - n.x * view.k;
    view.y = (r.height || 600) / 2 - n.y * view.k;
    apply();
  }

  // -- details ----------------------------------------------------------------------------
  var selected = null;
  function nodeRef(id) {
    var n = byId[id];
    return n ? (n.name + " (" + n.op + (n.shape ? " " + n.shape : "") + ")") : String(id);
  }
  function showDetails(n) {
    while (details.firstChild) { details.removeChild(details.firstChild); }
    if (!n) { hel("p", "Click a node to see its details.", details); return; }
    hel("h2", n.name, details);
    var dl = hel("dl", null, details);
    function row(k, v) { if (v === null || v === undefined || v === "") { return; } hel("dt", k, dl); hel("dd", v, dl); }
    row("op", n.op);
    if (n.raw_op !== n.op) { row("raw op", n.raw_op); }
    row("shape", n.shape);
    row("dtype", n.dtype);
    row("role", n.role);
    row("kernel", n.kernel);
    row("source", n.where);
    if (n.expr) { row("expr", n.expr); }
    if (n.updates) { row("new value of", n.updates); }
    if (gradOf[n.id] !== undefined) { row("gradient of", "d cost / d " + nodeRef(gradOf[n.id])); }
    row("inputs", n.inputs.map(nodeRef).join(", ") || "none");
    row("used by", n.users.map(nodeRef).join(", ") || "none");
    if (n.output) { row("output", "yes"); }
  }
  function select(id) {
    if (selected !== null && byId[selected]) { byId[selected].el.classList.remove("selected"); }
    edgeEls.forEach(function (e) { e.el.classList.remove("hl"); });
    selected = id;
    var n = id === null ? null : byId[id];
    if (n) {
      n.el.classList.add("selected");
      edgeEls.forEach(function (e) { if (e.s === id || e.t === id) { e.el.classList.add("hl"); } });
    }
    showDetails(n);
  }

  // -- search -----------------------------------------------------------------------------
  var search = document.getElementById("search");
  var matchCount = document.getElementById("match-count");
  var matches = [];
  function doSearch() {
    var q = search.value.trim().toLowerCase();
    matches = [];
    data.nodes.forEach(function (n) {
      var hit = q !== "" && (n.name.toLowerCase().indexOf(q) >= 0 || n.op.toLowerCase().indexOf(q) >= 0 ||
                             n.raw_op.toLowerCase().indexOf(q) >= 0);
      n.el.classList.toggle("match", hit);
      n.el.classList.toggle("dim", q !== "" && !hit);
      if (hit) { matches.push(n); }
    });
    edgeEls.forEach(function (e) { e.el.classList.toggle("dim", q !== ""); });
    matchCount.textContent = q === "" ? "" : matches.length + " match" + (matches.length === 1 ? "" : "es");
  }
  search.addEventListener("input", doSearch);
  search.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && matches.length) { centerOn(matches[0]); select(matches[0].id); }
  });

  // -- role visibility ---------------------------------------------------------------------
  var toggles = {forward: true, backward: true, update: true};
  function visible(n) { return n.el.style.display !== "none"; }
  function applyVisibility() {
    data.nodes.forEach(function (n) {
      var show;
      if (n.role in toggles) { show = toggles[n.role]; }
      else {  // leaves: shown while one of their users is
        show = n.users.length === 0 || n.users.some(function (u) {
          var m = byId[u]; return !(m.role in toggles) || toggles[m.role];
        });
      }
      n.el.style.display = show ? "" : "none";
    });
    edgeEls.forEach(function (e) {
      e.el.style.display = visible(byId[e.s]) && visible(byId[e.t]) ? "" : "none";
    });
    (data.kernels || []).forEach(function (k) {
      if (!k.el) { return; }
      k.el.style.display = k.members.some(function (i) { return byId[i] && visible(byId[i]); }) ? "" : "none";
    });
  }
  ["forward", "backward", "update"].forEach(function (role) {
    var cb = document.getElementById("show-" + role);
    cb.addEventListener("change", function () { toggles[role] = cb.checked; applyVisibility(); });
  });

  // -- Algorithm 6.2 step-through ------------------------------------------------------------
  var steps = data.steps || [];
  var stepIndex = 0;
  var status = document.getElementById("status");
  function clearWalk() {
    data.nodes.forEach(function (n) { n.el.classList.remove("lit", "current", "fwd-current", "unlit"); });
  }
  function resetWalk() {
    clearWalk();
    stepIndex = 0;
    svg.classList.remove("walk");
    status.textContent = steps.length ? "grad_table walk: " + steps.length + " steps" : "no backward pass in this graph";
  }
  function step() {
    if (!steps.length) { return; }
    if (stepIndex === 0) {
      clearWalk();
      svg.classList.add("walk");
      data.nodes.forEach(function (n) { if (n.role === "backward") { n.el.classList.add("unlit"); } });
    }
    if (stepIndex >= steps.length) { status.textContent = "done: every backward node computed (reset to start again)"; return; }
    data.nodes.forEach(function (n) { n.el.classList.remove("current", "fwd-current"); });
    var s = steps[stepIndex];
    s.lit.forEach(function (i) {
      var n = byId[i]; if (!n) { return; }
      n.el.classList.remove("unlit"); n.el.classList.add("lit", "current");
    });
    if (s.grad !== null && byId[s.grad]) { byId[s.grad].el.classList.remove("unlit"); byId[s.grad].el.classList.add("current"); }
    stepIndex += 1;
    if (s.node !== null && byId[s.node]) {
      byId[s.node].el.classList.add("fwd-current");
      status.textContent = "step " + stepIndex + "/" + steps.length + ": grad_table[" + nodeRef(s.node) +
        "] = " + (s.grad !== null ? nodeRef(s.grad) : "?") + (s.lit.length ? " (" + s.lit.length + " new node" + (s.lit.length === 1 ? "" : "s") + ")" : " (already computed)");
    } else {
      status.textContent = "step " + stepIndex + "/" + steps.length + ": other backward nodes (" + s.lit.length + ")";
    }
  }
  document.getElementById("step").addEventListener("click", step);
  document.getElementById("reset").addEventListener("click", resetWalk);

  // -- start ----------------------------------------------------------------------------------
  showDetails(null);
  resetWalk();
  fit();
  window.addEventListener("resize", fit);

  function selftest() {
    var res = {expected_nodes: data.nodes.length, rendered_nodes: gNodes.querySelectorAll("g.node").length,
               expected_edges: data.edges.length, rendered_edges: gEdges.querySelectorAll("path.edge").length};
    var target = data.nodes.filter(function (n) { return n.role === "forward"; })[0] || data.nodes[0];
    if (target) {
      target.el.dispatchEvent(new MouseEvent("click", {bubbles: true, cancelable: true}));
      var text = details.textContent;
      res.click = {id: target.id, name: target.name, details: text,
                   ok: text.indexOf(target.name) >= 0 && text.indexOf(target.shape) >= 0 &&
                       text.indexOf(target.role) >= 0 && text.indexOf(target.dtype) >= 0 &&
                       text.indexOf(target.where) >= 0};
    }
    function counts() {
      var c = {visible: 0, backward_visible: 0, forward_visible: 0};
      data.nodes.forEach(function (n) {
        if (visible(n)) { c.visible++; if (n.role === "backward") { c.backward_visible++; } if (n.role === "forward") { c.forward_visible++; } }
      });
      return c;
    }
    res.backward_total = data.nodes.filter(function (n) { return n.role === "backward"; }).length;
    res.forward_total = data.nodes.filter(function (n) { return n.role === "forward"; }).length;
    var cb = document.getElementById("show-backward");
    cb.click();
    res.after_hide = counts();
    cb.click();
    res.after_show = counts();
    search.value = "relu";
    search.dispatchEvent(new Event("input"));
    res.search_relu = matches.length;
    search.value = "";
    search.dispatchEvent(new Event("input"));
    var stepped = 0;
    for (var i = 0; i < steps.length; i++) { document.getElementById("step").click(); stepped++; }
    res.steps = steps.length;
    res.lit_after_walk = gNodes.querySelectorAll("g.node.lit").length;
    res.status = status.textContent;
    document.getElementById("reset").click();
    res.errors = errors.slice();
    res.ok = res.rendered_nodes === res.expected_nodes && !!(res.click && res.click.ok) &&
             res.after_hide.backward_visible === 0 && res.after_hide.forward_visible === res.forward_total &&
             res.after_show.visible === res.expected_nodes && res.errors.length === 0;
    document.getElementById("selftest-result").textContent = JSON.stringify(res);
  }
  if (window.location.hash === "#selftest") {
    try { selftest(); } catch (e) {
      errors.push("selftest: " + e);
      document.getElementById("selftest-result").textContent = JSON.stringify({ok: false, errors: errors});
    }
  }
})();
"""
