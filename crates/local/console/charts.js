// Histograms as SVG bar charts: one bar per bucket, its upper bound below it.

const SVG = "http://www.w3.org/2000/svg";

function el(name, attrs = {}, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function short(value) {
  if (value >= 10000) return `${Math.round(value / 1000)}k`;
  if (value >= 1000) return `${(value / 1000).toFixed(1)}k`;
  return `${Math.round(value * 10) / 10}`;
}

// A chart of `histogram`: {name, title, unit, buckets: [{le, count}], count, sum}; `le` is the
// bucket's upper bound, `null` for the last, open one.
export function drawHistogram(histogram) {
  const figure = document.createElement("figure");
  figure.className = "histogram";
  figure.dataset.metric = histogram.name;
  figure.style.margin = "0";
  const title = document.createElement("h3");
  const mean = histogram.count ? ` · mean ${short(histogram.sum / histogram.count)} ${histogram.unit}` : "";
  title.textContent = `${histogram.title} (${histogram.count}${mean})`;
  figure.append(title);
  const buckets = histogram.buckets;
  const width = 240;
  const height = 90;
  const bottom = 16;
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, role: "img" });
  svg.setAttribute("aria-label", `${histogram.title} histogram`);
  const top = Math.max(1, ...buckets.map((b) => b.count));
  const step = width / Math.max(1, buckets.length);
  buckets.forEach((b, i) => {
    const h = ((height - bottom - 10) * b.count) / top;
    const bar = el("rect", {
      x: i * step + 1, y: height - bottom - h, width: Math.max(1, step - 2), height: h,
    });
    bar.append(el("title", {}, `≤ ${b.le ?? "∞"} ${histogram.unit}: ${b.count}`));
    svg.append(bar);
    if (b.count) svg.append(el("text", { x: i * step + step / 2, y: height - bottom - h - 2 }, b.count));
    svg.append(el("text", { x: i * step + step / 2, y: height - 4 }, b.le === null ? "+" : short(b.le)));
  });
  if (!histogram.count) svg.append(el("text", { class: "none", x: width / 2, y: height / 2 }, "no data yet"));
  figure.append(svg);
  return figure;
}
