// Instances: one page of DescribeInstances at a time (MaxResults and NextToken), filtered by the API,
// kept up to date by polling that page only; launch, lifecycle actions, tags, console output.
import { allPages, items, text } from './api.js';
import { $, confirmAction, el, options, status } from './dom.js';

const POLL_MS = 2000;
const DEFAULT_PAGE_SIZE = 100;     // of the page sizes offered: 50, 100, 200
const FILTER_DELAY_MS = 300;       // typing pauses this long before the API is asked
const ACTIONS = [
  ['Start', 'StartInstances', ['stopped']],
  ['Stop', 'StopInstances', ['running', 'pending']],
  ['Reboot', 'RebootInstances', ['running']],
  ['Terminate', 'TerminateInstances', ['pending', 'running', 'stopping', 'stopped']],
];
// The page's rows can be sorted by these columns (th[data-sort]); the API sorts nothing. Values
// compare as text, as the API orders ids; addresses by their numbers (10.0.0.9 before 10.0.0.10).
const ipOrder = (ip) => ip.split('.').map((part) => part.padStart(3, '0')).join('.');
const SORT_VALUES = {
  id: (instance) => instance.id,
  state: (instance) => instance.state,
  type: (instance) => instance.type,
  privateIp: (instance) => ipOrder(instance.privateIp),
  publicIp: (instance) => ipOrder(instance.publicIp),
  zone: (instance) => (instance.host ? `${instance.zone} / ${instance.host}` : instance.zone),
};
const compare = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
// Set each time a page is first shown, so its timing can be read (performance.getEntriesByName).
export const PAGE_MARK = 'reservoir:instances-page';

// UTF-8 text as base64, as UserData wants it; nothing when the text is empty.
function base64(textValue) {
  if (!textValue) return undefined;
  return btoa(Array.from(new TextEncoder().encode(textValue), (byte) => String.fromCharCode(byte)).join(''));
}

// The filter form as EC2 filters: [[name, [values]]]. Empty fields filter nothing.
function requestedFilters(form) {
  const filters = [];
  const words = (value) => value.split(/[\s,]+/).filter(Boolean);
  if (form.state.value) filters.push(['instance-state-name', [form.state.value]]);
  for (const [field, name] of [['type', 'instance-type'], ['id', 'instance-id'], ['ip', 'private-ip-address']]) {
    const values = words(form[field].value);
    if (values.length) filters.push([name, values]);
  }
  // key=value, key (any value) or =value (any key).
  const tag = form.tag.value.trim();
  const equals = tag.indexOf('=');
  const [key, value] = equals < 0 ? [tag, ''] : [tag.slice(0, equals), tag.slice(equals + 1)];
  if (key && value) filters.push([`tag:${key}`, [value]]);
  else if (key) filters.push(['tag-key', [key]]);
  else if (value) filters.push(['tag-value', [value]]);
  return filters;
}

function filterParams(filters) {
  const params = {};
  filters.forEach(([name, values], i) => {
    params[`Filter.${i + 1}.Name`] = name;
    values.forEach((value, j) => { params[`Filter.${i + 1}.Value.${j + 1}`] = value; });
  });
  return params;
}

function readInstances(root) {
  const found = [];
  for (const reservation of items(root, 'reservationSet')) {
    for (const item of items(reservation, 'instancesSet')) {
      found.push({
        id: text(item, 'instanceId'),
        state: text(item, 'instanceState/name'),
        type: text(item, 'instanceType'),
        privateIp: text(item, 'privateIpAddress'),
        publicIp: text(item, 'ipAddress'),
        zone: text(item, 'placement/availabilityZone'),
        tags: items(item, 'tagSet').map((tag) => [text(tag, 'key'), text(tag, 'value')]),
      });
    }
  }
  return found;
}

// Where each instance of the page runs, for administrators: one admin call for the whole page.
async function hostsOf(api, ids) {
  if (!ids.length) return new Map();
  const params = Object.fromEntries(ids.map((id, i) => [`InstanceId.${i + 1}`, id]));
  const root = await api.call('DescribeCloudInstances', params);
  return new Map(items(root, 'instancesSet').map((item) => {
    const [host, target] = [text(item, 'hostName'), text(item, 'targetHostName')];
    return [text(item, 'instanceId'), target ? `${host} → ${target}` : host];
  }));
}

export function instancesPage(api, { administrator = false } = {}) {
  const rows = new Map();          // instance id -> <tr> of the page shown, reused so states change in place
  let timer = null;
  let filterTimer = null;
  let stopped = true;
  let detailId = null;
  // What is shown: the NextToken of every page up to the current one (undefined for the first),
  // the page size and filters; `view` counts changes of these so that late answers are dropped.
  let tokens = [undefined];
  let size = DEFAULT_PAGE_SIZE;
  let filters = [];
  let view = 0;
  let shownView = -1;
  let found = [];                  // the current page as the API listed it
  let nextToken = null;
  let sort = { key: null, descending: false };

  function newRow(id) {
    const row = el('tr', { 'data-id': id });
    for (let i = 0; i < 8; i++) row.append(el('td'));
    row.cells[0].append(el('button', { type: 'button', className: 'link', text: id, onclick: () => openDetail(id) }));
    return row;
  }

  function tagsCell(tags) {
    return tags.map(([key, value]) => el('span', { className: 'tag', text: value ? `${key}=${value}` : key }));
  }

  function actionButtons(instance) {
    return ACTIONS.filter(([, , states]) => states.includes(instance.state)).map(([label, action]) =>
      el('button', { type: 'button', 'data-action': action, text: label, onclick: () => act(label, action, instance.id) }));
  }

  // Rewrites a cell only when its content changed, so the row and its buttons stay put.
  function update(row, instance) {
    const where = instance.host ? `${instance.zone} / ${instance.host}` : instance.zone;
    const values = [instance.state, instance.type, instance.privateIp, instance.publicIp, where];
    values.forEach((value, i) => {
      if (row.cells[i + 1].textContent !== value) row.cells[i + 1].textContent = value;
    });
    const stateClass = `state state-${instance.state}`;
    if (row.cells[1].className !== stateClass) row.cells[1].className = stateClass;
    const tagKey = JSON.stringify(instance.tags);
    if (row.dataset.tags !== tagKey) {
      row.dataset.tags = tagKey;
      row.cells[6].replaceChildren(...tagsCell(instance.tags));
    }
    if (row.dataset.state !== instance.state) {
      row.dataset.state = instance.state;
      row.cells[7].replaceChildren(...actionButtons(instance));
    }
  }

  function ordered() {
    if (!sort.key) return found;
    const value = SORT_VALUES[sort.key];
    const sign = sort.descending ? -1 : 1;
    const keyed = found.map((instance) => [value(instance), instance]);
    keyed.sort(([a, first], [b, second]) => sign * (compare(a, b) || compare(first.id, second.id)));
    return keyed.map(([, instance]) => instance);
  }

  // Puts the page's rows in order with one insertion, and only when the order changed.
  function place() {
    const body = $('#instances tbody');
    const wanted = ordered().map((instance) => rows.get(instance.id));
    const current = body.children;
    if (current.length === wanted.length && wanted.every((row, i) => current[i] === row)) return;
    const fragment = document.createDocumentFragment();
    fragment.append(...wanted);
    body.append(fragment);
  }

  function render() {
    const seen = new Set();
    for (const instance of found) {
      seen.add(instance.id);
      let row = rows.get(instance.id);
      if (!row) {
        row = newRow(instance.id);
        rows.set(instance.id, row);
      }
      update(row, instance);      // new rows are filled before they are attached
    }
    for (const [id, row] of rows) {
      if (!seen.has(id)) { row.remove(); rows.delete(id); }
    }
    place();
    showPager(false);
  }

  function showPager(loading) {
    const page = tokens.length;
    const first = (page - 1) * size + 1;
    const last = first + found.length - 1;
    let label = 'loading…';
    if (!loading && found.length) label = `instances ${first}–${last}${nextToken ? '' : ' (last page)'}`;
    else if (!loading) label = `no instances${filters.length ? ' match these filters' : ''}`;
    $('#page-indicator').textContent = `Page ${page} · ${label}`;
    $('#page-prev').disabled = loading || page === 1;
    $('#page-next').disabled = loading || !nextToken;
  }

  function showSort() {
    for (const header of document.querySelectorAll('#instances th[data-sort]')) {
      const sorted = header.dataset.sort === sort.key;
      header.setAttribute('aria-sort', sorted ? (sort.descending ? 'descending' : 'ascending') : 'none');
    }
  }

  // Lists the current page again: the same NextToken, filters and size. False if the answer came
  // too late to be shown (the page was left, or another page asked for since).
  async function refresh() {
    const asked = view;
    const root = await api.call('DescribeInstances',
      { MaxResults: size, NextToken: tokens[tokens.length - 1], ...filterParams(filters) });
    if (stopped || asked !== view) return false;
    const listed = readInstances(root);
    if (administrator) {
      const hosts = await hostsOf(api, listed.map((instance) => instance.id));
      if (stopped || asked !== view) return false;
      for (const instance of listed) instance.host = hosts.get(instance.id) || '';
    }
    found = listed;
    nextToken = text(root, 'nextToken') || null;
    render();
    if (shownView !== view) {
      shownView = view;
      performance.mark(PAGE_MARK, { detail: { page: tokens.length, rows: found.length } });
    }
    return true;
  }

  function schedule() {
    clearTimeout(timer);
    timer = stopped ? null : setTimeout(poll, POLL_MS);
  }

  async function poll() {
    timer = null;
    try {
      await refresh();
      if (detailId) await showConsole(detailId);
    } catch (error) {
      if (!stopped) status(error.message, true);
    }
    schedule();
  }

  // Another page, size or filters: shown as soon as it is listed, then polled.
  async function navigate(change) {
    change();
    view += 1;
    showPager(true);
    clearTimeout(timer);
    const asked = view;
    try {
      await refresh();
    } catch (error) {
      if (stopped || asked !== view) return;
      status(error.message, true);
      showPager(false);
    }
    if (asked === view) schedule();
  }

  function nextPage() {
    if (nextToken) navigate(() => tokens.push(nextToken));
  }

  function previousPage() {
    if (tokens.length > 1) navigate(() => tokens.pop());
  }

  function firstPageWith(change) {
    navigate(() => { change(); tokens = [undefined]; nextToken = null; });
  }

  function applyFilters() {
    clearTimeout(filterTimer);
    const wanted = requestedFilters($('#instance-filters'));
    if (JSON.stringify(wanted) === JSON.stringify(filters)) return;
    firstPageWith(() => { filters = wanted; });
  }

  // Typing waits for a pause; a choice in a list applies at once.
  function filterInput(event) {
    if (event.target.tagName === 'SELECT') return;
    clearTimeout(filterTimer);
    filterTimer = setTimeout(applyFilters, FILTER_DELAY_MS);
  }

  function filterChange(event) {
    if (event.target.tagName === 'SELECT') applyFilters();
  }

  function submitFilters(event) {
    event.preventDefault();
    applyFilters();
  }

  function changeSize(event) {
    firstPageWith(() => { size = Number(event.target.value); });
  }

  function sortBy(event) {
    const header = event.target.closest('th[data-sort]');
    if (!header) return;
    const key = header.dataset.sort;
    sort = { key, descending: sort.key === key && !sort.descending };
    showSort();
    place();
  }

  async function act(label, action, id) {
    if (!(await confirmAction(`${label} ${id}?`))) return;
    try {
      await api.call(action, { 'InstanceId.1': id });
      status(`${label}: ${id}`);
      await refresh();
    } catch (error) {
      status(error.message, true);
    }
  }

  async function launch(event) {
    event.preventDefault();
    const form = event.target;
    const count = form.count.value;
    try {
      const groups = Array.from(form.groups.selectedOptions, (option) => option.value);
      const root = await api.call('RunInstances', {
        ImageId: form.image.value, InstanceType: form.type.value, KeyName: form.key.value,
        SubnetId: form.subnet.value, UserData: base64(form.user_data.value),
        MinCount: count, MaxCount: count,
        ...Object.fromEntries(groups.map((group, i) => [`SecurityGroupId.${i + 1}`, group])),
      });
      const launched = items(root, 'instancesSet').map((item) => text(item, 'instanceId'));
      await refresh().catch(() => false);     // the next poll reports a failure
      status(`Launched ${launched.join(', ')}`);
    } catch (error) {
      status(error.message, true);
    }
  }

  // Everything is fetched before anything is shown: after a sign-out, late answers are dropped.
  async function fillLaunchForm() {
    const images = [];
    await allPages(api, 'DescribeImages', {}, (root) => images.push(...items(root, 'imagesSet')));
    const types = [];
    await allPages(api, 'DescribeInstanceTypes', {}, (root) =>
      types.push(...items(root, 'instanceTypeSet').map((item) => text(item, 'instanceType'))));
    const keys = items(await api.call('DescribeKeyPairs'), 'keySet');
    const subnets = items(await api.call('DescribeSubnets'), 'subnetSet');
    const groups = items(await api.call('DescribeSecurityGroups'), 'securityGroupInfo');
    if (stopped) return;
    const form = $('#launch');
    options(form.image, images.filter((image) => text(image, 'imageType') === 'machine')
      .map((image) => [text(image, 'imageId'), `${text(image, 'name')} (${text(image, 'imageId')})`]));
    options(form.type, types.sort().map((type) => [type, type]));
    options(form.key, keys.map((key) => [text(key, 'keyName'), text(key, 'keyName')]), { blank: '(none)' });
    options(form.subnet, subnets.map((subnet) => [text(subnet, 'subnetId'),
      `${text(subnet, 'subnetId')} (${text(subnet, 'cidrBlock')})`]), { blank: '(default)' });
    options(form.groups, groups.map((group) => [text(group, 'groupId'),
      `${text(group, 'groupName')} (${text(group, 'groupId')})`]));
  }

  async function showConsole(id) {
    const root = await api.call('GetConsoleOutput', { InstanceId: id });
    const encoded = text(root, 'output');
    const bytes = Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0));
    const output = new TextDecoder().decode(bytes);
    if (stopped) return;
    const pre = $('#console-output');
    if (pre.textContent !== output) pre.textContent = output || '(no output yet)';
  }

  function openDetail(id) {
    detailId = id;
    $('#detail-title').textContent = id;
    $('#console-output').textContent = '';
    $('#detail').hidden = false;
    showConsole(id).catch((error) => status(error.message, true));
  }

  async function addTag(event) {
    event.preventDefault();
    const form = event.target;
    try {
      await api.call('CreateTags', { 'ResourceId.1': detailId, 'Tag.1.Key': form.key.value, 'Tag.1.Value': form.value.value });
      form.reset();
      await refresh();
    } catch (error) {
      status(error.message, true);
    }
  }

  const listeners = [[$('#launch'), 'submit', launch], [$('#tag'), 'submit', addTag],
    [$('#detail-close'), 'click', () => { detailId = null; $('#detail').hidden = true; }],
    [$('#instance-filters'), 'input', filterInput], [$('#instance-filters'), 'change', filterChange],
    [$('#instance-filters'), 'submit', submitFilters],
    [$('#page-size'), 'change', changeSize], [$('#page-next'), 'click', nextPage],
    [$('#page-prev'), 'click', previousPage], [$('#instances thead'), 'click', sortBy]];

  return {
    async show() {
      stopped = false;
      // Each visit starts on the first page, unfiltered and unsorted: nothing of a previous
      // session's choices is kept.
      rows.clear();
      found = [];
      nextToken = null;
      tokens = [undefined];
      filters = [];
      sort = { key: null, descending: false };
      $('#instance-filters').reset();
      $('#page-size').value = String(DEFAULT_PAGE_SIZE);
      size = DEFAULT_PAGE_SIZE;
      view += 1;
      $('#instances tbody').replaceChildren();
      $('#detail').hidden = true;
      showPager(true);
      showSort();
      for (const [node, type, handler] of listeners) node.addEventListener(type, handler);
      fillLaunchForm().catch((error) => status(error.message, true));
      await poll();
    },
    hide() {
      stopped = true;
      detailId = null;
      clearTimeout(timer);
      clearTimeout(filterTimer);
      for (const [node, type, handler] of listeners) node.removeEventListener(type, handler);
    },
  };
}
