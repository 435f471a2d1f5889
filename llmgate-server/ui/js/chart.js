// Horizontal bar charts as inline SVG, built with DOM calls (no library, no inline styles).
// The SVG is drawn at the width it is shown at (and redrawn when that changes), so its text
// stays at the page's font size instead of being scaled with the picture. Colours come from
// classes in hub.css; every number is also in the accessible label and each bar's <title>.

import { h, s, fill } from './dom.js';

const ROW = 26;
const BAR = 16;
const VALUE_WIDTH = 96;
const FALLBACK_WIDTH = 360;

function draw(title, items, width) {
  const labelWidth = Math.min(160, Math.round(width * 0.36));
  const plot = Math.max(20, width - labelWidth - VALUE_WIDTH);
  const max = Math.max(0, ...items.map((item) => item.value));
  const height = items.length * ROW + 6;
  const maxChars = Math.max(6, Math.floor(labelWidth / 7.5));
  const svg = s('svg', {
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: 'img',
    'aria-label': `${title}. ${items.map((item) => `${item.label}: ${item.display}`).join('; ')}`,
    class: 'chart-svg',
  });
  items.forEach((item, i) => {
    const y = i * ROW + 3;
    const length = max > 0 ? Math.max(item.value > 0 ? 2 : 0, (item.value / max) * plot) : 0;
    const label = item.label.length > maxChars ? `${item.label.slice(0, maxChars - 1)}…` : item.label;
    svg.append(s('g', { class: 'bar-row' },
      s('title', { text: `${item.label}: ${item.display}` }),
      s('text', { x: labelWidth - 8, y: y + BAR / 2, class: 'bar-label', 'text-anchor': 'end', 'dominant-baseline': 'central', text: label }),
      s('rect', { x: labelWidth, y, width: length.toFixed(1), height: BAR, rx: 3, class: 'bar' }),
      s('text', { x: labelWidth + length + 6, y: y + BAR / 2, class: 'bar-value', 'dominant-baseline': 'central', text: item.display })));
  });
  return svg;
}

/**
 * `items`: `[{label, value, display}]`, `value` a number, `display` its text.
 * Returns a <figure> with the chart under a caption.
 */
export function barChart({ title, items }) {
  const holder = h('div', { class: 'chart-holder' });
  const figure = h('figure', { class: 'chart' }, h('figcaption', { text: title }), holder);
  let drawnWidth = 0;
  const redraw = (width) => {
    drawnWidth = width;
    fill(holder, draw(title, items, width));
  };
  redraw(FALLBACK_WIDTH);
  new ResizeObserver((entries) => {
    const width = Math.floor(entries[0].contentRect.width);
    if (width > 0 && Math.abs(width - drawnWidth) > 2) redraw(width);
  }).observe(holder);
  return figure;
}
