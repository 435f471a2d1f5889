// Horizontal bar charts as inline SVG, built with DOM calls (no library, no inline styles).
// Colours come from classes in hub.css; the numbers are also in the accessible label and in
// each bar's <title>, so the chart reads without seeing it.

import { h, s } from './dom.js';

const ROW = 28;
const BAR = 18;
const LABEL_WIDTH = 150;
const VALUE_WIDTH = 110;
const WIDTH = 640;

/**
 * `items`: `[{label, value, display}]`, `value` a number, `display` its text.
 * Returns a <figure> with the chart and a caption.
 */
export function barChart({ title, items, caption }) {
  const figure = h('figure', { class: 'chart' });
  figure.append(h('figcaption', { text: title }));
  const max = Math.max(0, ...items.map((item) => item.value));
  const height = items.length * ROW + 8;
  const plot = WIDTH - LABEL_WIDTH - VALUE_WIDTH;
  const summary = items.map((item) => `${item.label}: ${item.display}`).join('; ');
  const svg = s('svg', {
    viewBox: `0 0 ${WIDTH} ${height}`,
    width: '100%',
    role: 'img',
    'aria-label': `${title}. ${summary}`,
    preserveAspectRatio: 'xMinYMin meet',
    class: 'chart-svg',
  });
  items.forEach((item, i) => {
    const y = i * ROW + 4;
    const width = max > 0 ? Math.max(item.value > 0 ? 2 : 0, (item.value / max) * plot) : 0;
    const label = item.label.length > 22 ? `${item.label.slice(0, 21)}…` : item.label;
    const group = s('g', { class: 'bar-row' },
      s('title', { text: `${item.label}: ${item.display}` }),
      s('text', { x: LABEL_WIDTH - 8, y: y + BAR / 2, class: 'bar-label', 'text-anchor': 'end', 'dominant-baseline': 'central', text: label }),
      s('rect', { x: LABEL_WIDTH, y, width: width.toFixed(1), height: BAR, rx: 3, class: 'bar' }),
      s('text', { x: LABEL_WIDTH + width + 6, y: y + BAR / 2, class: 'bar-value', 'dominant-baseline': 'central', text: item.display }),
    );
    svg.append(group);
  });
  figure.append(svg);
  if (caption) figure.append(h('p', { class: 'hint', text: caption }));
  return figure;
}
