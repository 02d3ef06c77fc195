/**
 * A small bar chart as plain SVG: one panel per measurement (each with its own scale, since the
 * units differ), one bar per path, the value written above each bar.
 */

const COLORS = ["#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#9c755f"];

/** @param {string} s */
function esc(s) {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** @param {number} x @param {string} unit */
function label(x, unit) {
  if (unit === "ms" || unit === "s/Gbit") return x.toFixed(3);
  if (unit === "kpps") return x.toFixed(0);
  return x.toFixed(2);
}

/**
 * @param {{
 *   title: string,
 *   subtitle: string,
 *   paths: { key: string, label: string }[],
 *   panels: { title: string, unit: string, higherIsBetter: boolean, values: Record<string, number | undefined> }[],
 * }} chart
 * @returns {string}
 */
export function renderSvg(chart) {
  const panels = chart.panels.filter((p) => Object.values(p.values).some((v) => v !== undefined));
  const cols = 3;
  const pw = 360;
  const ph = 230;
  const top = 90;
  const rows = Math.max(1, Math.ceil(panels.length / cols));
  const width = cols * pw + 20;
  const height = top + rows * ph + 20;
  const out = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
  );
  out.push(`<rect width="100%" height="100%" fill="#ffffff"/>`);
  out.push(`<text x="10" y="24" font-size="16" font-weight="bold">${esc(chart.title)}</text>`);
  out.push(`<text x="10" y="44" fill="#555">${esc(chart.subtitle)}</text>`);
  // Legend entries side by side, each as wide as its label (about 7 px a character at 12 px).
  let lx = 10;
  chart.paths.forEach((p, i) => {
    out.push(`<rect x="${lx}" y="58" width="12" height="12" fill="${COLORS[i % COLORS.length]}"/>`);
    out.push(`<text x="${lx + 18}" y="69">${esc(p.label)}</text>`);
    lx += 18 + p.label.length * 7 + 24;
  });
  panels.forEach((panel, idx) => {
    const ox = 10 + (idx % cols) * pw;
    const oy = top + Math.floor(idx / cols) * ph;
    const plotTop = oy + 56;
    const plotH = ph - 110;
    const base = plotTop + plotH;
    const better = panel.higherIsBetter ? "higher is better" : "lower is better";
    out.push(`<text x="${ox}" y="${oy + 14}" font-weight="bold">${esc(panel.title)}</text>`);
    out.push(`<text x="${ox}" y="${oy + 30}" fill="#555">${esc(panel.unit)}, ${better}</text>`);
    const vals = chart.paths.map((p) => panel.values[p.key]);
    const max = Math.max(...vals.map((v) => (v !== undefined && Number.isFinite(v) ? v : 0)), 1e-9);
    const slot = (pw - 40) / chart.paths.length;
    const bw = Math.min(60, slot * 0.7);
    out.push(
      `<line x1="${ox}" y1="${base}" x2="${ox + pw - 40}" y2="${base}" stroke="#333" stroke-width="1"/>`,
    );
    chart.paths.forEach((p, i) => {
      const v = vals[i];
      const x = ox + i * slot + (slot - bw) / 2;
      if (v === undefined || !Number.isFinite(v)) {
        out.push(`<text x="${x + bw / 2}" y="${base - 4}" text-anchor="middle" fill="#999">n/a</text>`);
      } else {
        const h = Math.max(1, (v / max) * plotH);
        out.push(
          `<rect x="${x.toFixed(1)}" y="${(base - h).toFixed(1)}" width="${bw.toFixed(1)}" height="${h.toFixed(1)}" fill="${COLORS[i % COLORS.length]}"/>`,
        );
        out.push(
          `<text x="${(x + bw / 2).toFixed(1)}" y="${(base - h - 4).toFixed(1)}" text-anchor="middle">${label(v, panel.unit)}</text>`,
        );
      }
      out.push(
        `<text x="${(x + bw / 2).toFixed(1)}" y="${base + 16}" text-anchor="middle" fill="#333">${esc(p.key)}</text>`,
      );
      const ref = vals[0];
      if (i > 0 && v !== undefined && ref !== undefined && ref > 0) {
        out.push(
          `<text x="${(x + bw / 2).toFixed(1)}" y="${base + 30}" text-anchor="middle" font-size="10" fill="#777">${(v / ref).toFixed(2)}x ${esc(chart.paths[0].key)}</text>`,
        );
      }
    });
  });
  out.push("</svg>");
  return `${out.join("\n")}\n`;
}
