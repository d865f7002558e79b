// What the network, security group and volume pages share: paged listings, tables whose rows are
// kept and updated in place, and visits whose late answers are dropped.
import { allPages, items, text } from './api.js';
import { $, el, status } from './dom.js';

export const PAGE_SIZE = 100;

// Every <item> of a paged Describe call's set, following NextToken.
export async function describeAll(api, action, setName, params = {}) {
  const found = [];
  await allPages(api, action, { MaxResults: PAGE_SIZE, ...params }, (root) => found.push(...items(root, setName)));
  return found;
}

// Query parameters of EC2 filters: { 'group-id': ['sg-1'] } -> Filter.1.Name=group-id&Filter.1.Value.1=sg-1.
export function filterParams(spec) {
  const params = {};
  Object.entries(spec).forEach(([name, values], i) => {
    params[`Filter.${i + 1}.Name`] = name;
    values.forEach((value, j) => { params[`Filter.${i + 1}.Value.${j + 1}`] = value; });
  });
  return params;
}

// Query parameters tagging a new resource: TagSpecification.1.ResourceType and its Tag.N.
export function tagParams(resourceType, tags) {
  const given = Object.entries(tags).filter(([key, value]) => key && value);     // an empty Name is no name
  if (!given.length) return {};
  const params = { 'TagSpecification.1.ResourceType': resourceType };
  given.forEach(([key, value], i) => {
    params[`TagSpecification.1.Tag.${i + 1}.Key`] = key;
    params[`TagSpecification.1.Tag.${i + 1}.Value`] = value;
  });
  return params;
}

export function tagsOf(item) {
  return items(item, 'tagSet').map((tag) => [text(tag, 'key'), text(tag, 'value')]);
}

export function tagSpans(tags) {
  return tags.map(([key, value]) => el('span', { className: 'tag', text: value ? `${key}=${value}` : key }));
}

export function actionButton(label, action, onclick) {
  return el('button', { type: 'button', 'data-action': action, text: label, onclick });
}

// A visit of a page: answers are used only while the visit that asked for them is still on screen,
// so nothing lands after the page is left, left and shown again, or the user signed out.
export function visits() {
  let current = 0;
  let shown = false;
  return {
    begin() { shown = true; current += 1; return current; },
    end() { shown = false; current += 1; },
    now() { return current; },
    alive(visit) { return shown && visit === current; },
  };
}

// Runs a change of the user's (`work` resolves to what to say of it), then lists the page again;
// errors go to the status line. Nothing is shown once the visit that asked is over.
export function changer(visit, refresh) {
  return async function change(work) {
    const mine = visit.now();
    try {
      const message = await work();
      if (!visit.alive(mine)) return;
      status(message);
      await refresh();
    } catch (error) {
      if (visit.alive(mine)) status(error.message, true);
    }
  };
}

// A table body whose rows are keyed by resource id and updated in place, so a row (and its buttons)
// stays the same element while its values change.
export class KeyedTable {
  constructor(selector, width) {
    this.selector = selector;
    this.width = width;
    this.rows = new Map();
  }

  clear() {
    this.rows.clear();
    $(`${this.selector} tbody`).replaceChildren();
  }

  // Rows for `list` in its order: new ones are added, known ones updated by update(row, item), gone ones removed.
  sync(list, idOf, update) {
    const body = $(`${this.selector} tbody`);
    const seen = new Set();
    for (const item of list) {
      const id = idOf(item);
      seen.add(id);
      let row = this.rows.get(id);
      if (!row) {
        row = el('tr', { 'data-id': id });
        for (let i = 0; i < this.width; i++) row.append(el('td'));
        this.rows.set(id, row);
      }
      const place = body.children[seen.size - 1] || null;       // moved, not rebuilt, when out of order
      if (place !== row) body.insertBefore(row, place);
      update(row, item);
    }
    for (const [id, row] of this.rows) {
      if (!seen.has(id)) { row.remove(); this.rows.delete(id); }
    }
  }
}

// Writes a cell's text only when it changed.
export function setText(cell, value) {
  if (cell.textContent !== value || cell.children.length) cell.textContent = value;
}

// Rebuilds a cell's children only when `key`, a summary of what they show, changed.
export function setContent(cell, key, build) {
  if (cell.dataset.key !== key) {
    cell.dataset.key = key;
    cell.replaceChildren(...build());
  }
}

// Fills a select with [value, label] choices, keeping the chosen value when it is still offered.
export function choices(select, values, { blank } = {}) {
  const chosen = select.value;
  const list = blank === undefined ? [] : [el('option', { value: '', text: blank })];
  for (const [value, label] of values) list.push(el('option', { value, text: label }));
  const key = JSON.stringify(values) + (blank || '');
  if (select.dataset.key === key) return;
  select.dataset.key = key;
  select.replaceChildren(...list);
  if (values.some(([value]) => value === chosen)) select.value = chosen;
}

// Empties selects filled from the API (their choices were one account's).
export function clearChoices(form) {
  for (const select of form.querySelectorAll('select[data-from-api]')) {
    select.replaceChildren();
    delete select.dataset.key;
  }
  form.reset();
}
