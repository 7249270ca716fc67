// A workflow's state graph as SVG: states as boxes in layers from StartAt downwards, transitions as
// arrows (Next and Choices solid, Default dotted, Catch dashed), the path an execution took in blue
// and the state it is in now outlined in orange.
//
// Layout: a depth-first walk from StartAt marks the edges that go back up (a polling loop's), the
// others form a DAG whose longest-path depth is each state's row. Back edges are drawn round the
// right-hand side. Small workflows (a dozen states) need nothing cleverer.

const SVG = "http://www.w3.org/2000/svg";
const W = 148;
const H = 26;
const GAP_X = 22;
const GAP_Y = 22;
const MARGIN = 12;

function el(name, attrs = {}, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

// Rows and positions of the graph's states.
export function layout(graph) {
  const names = graph.nodes.map((n) => n.name);
  const out = new Map(names.map((n) => [n, []]));
  for (const e of graph.edges) out.get(e.from)?.push(e);
  const seen = new Map();
  const back = new Set();
  const postorder = [];
  const visit = (name) => {
    seen.set(name, "open");
    for (const e of out.get(name) ?? []) {
      const s = seen.get(e.to);
      if (s === "open") back.add(e);
      else if (!s) visit(e.to);
    }
    seen.set(name, "done");
    postorder.push(name);
  };
  visit(graph.startAt);
  for (const n of names) if (!seen.has(n)) visit(n);
  const order = postorder.reverse();
  const row = new Map(names.map((n) => [n, 0]));
  for (const n of order) {
    for (const e of out.get(n)) {
      if (!back.has(e)) row.set(e.to, Math.max(row.get(e.to), row.get(n) + 1));
    }
  }
  const rows = [];
  for (const n of order) (rows[row.get(n)] ??= []).push(n);
  const widest = Math.max(...rows.map((r) => r.length));
  const width = MARGIN * 2 + widest * W + (widest - 1) * GAP_X + 60;
  const centre = MARGIN + (widest * W + (widest - 1) * GAP_X) / 2;
  const at = new Map();
  rows.forEach((names, r) => {
    names.forEach((n, i) => {
      const x = centre + (i - (names.length - 1) / 2) * (W + GAP_X);
      at.set(n, { x, y: MARGIN + r * (H + GAP_Y) });
    });
  });
  const height = MARGIN * 2 + rows.length * H + (rows.length - 1) * GAP_Y;
  return { at, back, width, height };
}

// The edges an execution took: each pair of states entered one after the other.
function taken(path) {
  const pairs = new Set();
  for (let i = 1; i < path.length; i++) pairs.add(`${path[i - 1]}\u0000${path[i]}`);
  return pairs;
}

// An <svg> of `graph` ({startAt, nodes: [{name, type, end}], edges: [{from, to, kind}]}), with
// `execution` ({status, path: [state…], current}) drawn on it.
export function drawGraph(graph, execution) {
  const { at, back, width, height } = layout(graph);
  const path = execution?.path ?? [];
  const visited = new Set(path);
  const steps = taken(path);
  const last = path[path.length - 1];
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img" });
  svg.setAttribute("aria-label", `workflow graph, current state ${execution?.current ?? "none"}`);
  const defs = el("defs");
  for (const cls of ["plain", "taken"]) {
    const marker = el("marker", {
      id: `arrow-${cls}`, class: cls, viewBox: "0 0 8 8", refX: 7, refY: 4,
      markerUnits: "userSpaceOnUse", markerWidth: 8, markerHeight: 8, orient: "auto-start-reverse",
    });
    marker.append(el("path", { d: "M0,0 L8,4 L0,8 z" }));
    defs.append(marker);
  }
  svg.append(defs);

  const edges = el("g");
  for (const e of graph.edges) {
    const a = at.get(e.from);
    const b = at.get(e.to);
    if (!a || !b) continue;
    let d;
    if (back.has(e) || b.y <= a.y) {
      // Round the right-hand side, from the source's right edge to the target's.
      const xa = a.x + W / 2;
      const xb = b.x + W / 2;
      const bulge = Math.max(xa, xb) + 28;
      d = `M${xa},${a.y + H / 2} C${bulge},${a.y + H / 2} ${bulge},${b.y + H / 2} ${xb},${b.y + H / 2}`;
    } else {
      const ya = a.y + H;
      const dy = (b.y - ya) / 2;
      d = `M${a.x},${ya} C${a.x},${ya + dy} ${b.x},${b.y - dy} ${b.x},${b.y}`;
    }
    const isTaken = steps.has(`${e.from}\u0000${e.to}`);
    const edge = el("path", {
      d,
      class: `edge ${e.kind}${isTaken ? " taken" : ""}`,
      "marker-end": `url(#arrow-${isTaken ? "taken" : "plain"})`,
      "data-from": e.from,
      "data-to": e.to,
    });
    edge.append(el("title", {}, `${e.from} → ${e.to} (${e.kind})`));
    edges.append(edge);
  }
  svg.append(edges);

  const nodes = el("g");
  for (const n of graph.nodes) {
    const p = at.get(n.name);
    let cls = "node";
    if (visited.has(n.name)) cls += " visited";
    if (execution?.current === n.name) cls += " current";
    else if (n.name === last && execution?.status === "SUCCEEDED") cls += " done";
    else if (n.name === last && execution && execution.status !== "RUNNING") cls += " failed";
    const g = el("g", { class: cls, "data-state": n.name, transform: `translate(${p.x - W / 2},${p.y})` });
    g.append(el("title", {}, `${n.name} (${n.type})`));
    g.append(el("rect", { width: W, height: H, rx: n.type === "Choice" ? 12 : 3 }));
    g.append(el("text", { x: W / 2, y: H / 2 }, n.name));
    nodes.append(g);
  }
  svg.append(nodes);
  return svg;
}
