// Line plots over time, drawn as SVG elements (no canvas, no library, nothing inline for the CSP).
const SVG = 'http://www.w3.org/2000/svg';
const WIDTH = 600;
const HEIGHT = 180;
const MARGIN = { left: 44, right: 10, top: 10, bottom: 22 };

function svgEl(tag, attributes = {}, textValue) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  if (textValue !== undefined) node.textContent = textValue;
  return node;
}

// The time of day, with the date when the plot spans more than a day's part.
function clock(milliseconds, withDate) {
  const date = new Date(milliseconds);
  const time = `${String(date.getHours()).padStart(2, '0')}:${String(date.getMinutes()).padStart(2, '0')}`;
  return withDate ? `${date.toLocaleDateString(undefined, { month: 'short', day: 'numeric' })} ${time}` : time;
}

// A "nice" upper bound for the axis: 1, 2 or 5 times a power of ten, at least the largest value.
export function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 5, 10].map((step) => step * power).find((bound) => bound >= value);
}

/**
 * Draws `series` ([{ name, className, points: [[timeMs, value], ...] }]) into the <svg> `target`,
 * replacing what was there. `yMax` fixes the scale (e.g. 100 for percentages); `unit` labels it.
 */
export function linePlot(target, series, { yMax, unit = '' } = {}) {
  const times = series.flatMap((line) => line.points.map(([time]) => time));
  const values = series.flatMap((line) => line.points.map(([, value]) => value));
  const start = times.length ? Math.min(...times) : Date.now() - 60000;
  const end = times.length ? Math.max(...times, start + 1000) : Date.now();
  const top = yMax ?? niceMax(Math.max(0, ...values));
  const inner = { width: WIDTH - MARGIN.left - MARGIN.right, height: HEIGHT - MARGIN.top - MARGIN.bottom };
  const x = (time) => MARGIN.left + ((time - start) / (end - start)) * inner.width;
  const y = (value) => MARGIN.top + inner.height - (Math.min(value, top) / top) * inner.height;

  target.setAttribute('viewBox', `0 0 ${WIDTH} ${HEIGHT}`);
  target.setAttribute('role', 'img');
  const parts = [];
  for (const fraction of [0, 0.5, 1]) {
    const level = top * fraction;
    parts.push(svgEl('line', { class: 'grid', x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: y(level), y2: y(level) }));
    parts.push(svgEl('text', { class: 'axis', x: MARGIN.left - 4, y: y(level) + 4, 'text-anchor': 'end' },
      `${Number.isInteger(level) ? level : level.toFixed(1)}${unit}`));
  }
  const withDate = end - start > 12 * 3600 * 1000;
  parts.push(svgEl('text', { class: 'axis', x: MARGIN.left, y: HEIGHT - 4 }, clock(start, withDate)));
  parts.push(svgEl('text', { class: 'axis', x: WIDTH - MARGIN.right, y: HEIGHT - 4, 'text-anchor': 'end' }, clock(end, withDate)));
  series.forEach((line, index) => {
    const points = line.points.map(([time, value]) => `${x(time).toFixed(1)},${y(value).toFixed(1)}`).join(' ');
    parts.push(svgEl('polyline', { class: `line ${line.className || `line-${index}`}`, points, 'data-name': line.name }));
    parts.push(svgEl('text', { class: `legend ${line.className || `line-${index}`}`, x: MARGIN.left + 8 + index * 150, y: MARGIN.top + 12 },
      line.name));
  });
  if (!times.length) {
    parts.push(svgEl('text', { class: 'axis', x: WIDTH / 2, y: HEIGHT / 2, 'text-anchor': 'middle' }, 'No samples yet'));
  }
  target.replaceChildren(...parts);
}
