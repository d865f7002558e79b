// The administrators' pages: the resource pool (hosts, plots, placement failures) and the accounts
// (users with usage against quotas, networks with leases). They call the admin-only action set,
// signed like every other request; the server refuses it to users who are not administrators.
import { ApiError, items, text } from './api.js';
import { $, confirmAction, el, status } from './dom.js';
import { linePlot } from './plots.js';

const POLL_MS = 2000;
const PLOT_POLL_MS = 10000;
const BUCKETS_PER_PLOT = 60;

// Whether this key may use the admin actions: asked of the server, never guessed by the page.
export async function isAdministrator(api) {
  try {
    await api.call('DescribeCloudHosts');
    return true;
  } catch (error) {
    // UnauthorizedOperation for users; any other answer of the server's also shows nothing admin.
    if (error instanceof ApiError) return false;
    throw error;
  }
}

function number(element, name) {
  return Number(text(element, name)) || 0;
}

// Quota resources the API counts in bytes (the rest are counts).
const BYTE_RESOURCES = new Set(['storage']);

export function formatBytes(value) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let scaled = value;
  let unit = 0;
  while (scaled >= 1024 && unit < units.length - 1) { scaled /= 1024; unit += 1; }
  return `${unit && scaled < 10 ? scaled.toFixed(1) : Math.round(scaled)} ${units[unit]}`;
}

// A <meter> with the numbers beside it: what tests and screen readers read.
function gauge(used, total, unit, format = String) {
  const label = `${format(used)} / ${format(total)}${unit}`;
  const meter = el('meter', { min: 0, max: Math.max(total, 1), value: used, low: total * 0.7, high: total * 0.9,
    optimum: 0, title: label });
  return [meter, el('span', { className: 'gauge-text', text: label })];
}

// A polling loop that stops when the page is left; `start` again runs at once, and the answers of
// an older round that arrive after are dropped.
function poller(step, everyMs) {
  let timer = null;
  let active = false;
  let generation = 0;
  async function run(mine) {
    const current = () => active && mine === generation;
    try {
      await step(current);
    } catch (error) {
      if (current()) status(error.message, true);
    }
    if (current()) timer = setTimeout(() => run(mine), everyMs);
  }
  return {
    start() { active = true; generation += 1; clearTimeout(timer); return run(generation); },
    stop() { active = false; generation += 1; clearTimeout(timer); },
  };
}

function readHost(item) {
  return {
    name: text(item, 'hostName'),
    zone: text(item, 'zone'),
    kind: text(item, 'domainType'),
    enabled: text(item, 'enabled') === 'true',
    state: text(item, 'state'),
    reason: text(item, 'stateReason'),
    vcpuUsed: number(item, 'vcpuUsed'),
    vcpuTotal: number(item, 'vcpuTotal'),
    memoryUsed: number(item, 'memoryUsedMib'),
    memoryTotal: number(item, 'memoryTotalMib'),
    instances: number(item, 'instanceCount'),
  };
}

function samplesOf(root) {
  return items(root, 'sampleSet').map((item) => ({
    time: Date.parse(text(item, 'time')),
    vcpu: number(item, 'vcpuTotal') ? (100 * number(item, 'vcpuUsed')) / number(item, 'vcpuTotal') : 0,
    memory: number(item, 'memoryTotalMib') ? (100 * number(item, 'memoryUsedMib')) / number(item, 'memoryTotalMib') : 0,
  }));
}

function capacityPlot(target, samples) {
  linePlot(target, [
    { name: 'vCPU used %', className: 'line-vcpu', points: samples.map((s) => [s.time, s.vcpu]) },
    { name: 'memory used %', className: 'line-memory', points: samples.map((s) => [s.time, s.memory]) },
  ], { yMax: 100, unit: '%' });
}

export function poolPage(api) {
  const rows = new Map();          // host name -> <tr>, updated in place so the bars move
  let detailHost = null;

  function newRow(name) {
    const row = el('tr', { 'data-host': name });
    for (let i = 0; i < 7; i++) row.append(el('td'));
    row.cells[0].append(el('button', { type: 'button', className: 'link', text: name, onclick: () => openHost(name) }));
    return row;
  }

  function hostActions(host) {
    const buttons = [];
    if (host.enabled) {
      buttons.push(el('button', { type: 'button', 'data-action': 'disable', text: 'Disable', onclick: () => setEnabled(host.name, false) }));
      buttons.push(el('button', { type: 'button', 'data-action': 'evacuate', text: 'Evacuate', onclick: () => evacuate(host.name) }));
    } else {
      buttons.push(el('button', { type: 'button', 'data-action': 'enable', text: 'Enable', onclick: () => setEnabled(host.name, true) }));
    }
    return buttons;
  }

  function update(row, host) {
    const stateText = host.enabled ? host.state : `${host.state} (disabled)`;
    row.cells[1].textContent = host.zone;
    row.cells[2].replaceChildren(stateText, ...(host.reason ? [el('div', { className: 'hint', text: host.reason })] : []));
    row.cells[2].className = `host-state host-${host.enabled ? host.state : 'disabled'}`;
    const key = `${host.vcpuUsed}/${host.vcpuTotal}/${host.memoryUsed}/${host.memoryTotal}`;
    if (row.dataset.usage !== key) {
      row.dataset.usage = key;
      row.cells[3].replaceChildren(...gauge(host.vcpuUsed, host.vcpuTotal, ''));
      row.cells[4].replaceChildren(...gauge(host.memoryUsed, host.memoryTotal, ' MiB'));
    }
    row.cells[5].textContent = String(host.instances);
    const actionsKey = String(host.enabled);
    if (row.dataset.enabled !== actionsKey) {
      row.dataset.enabled = actionsKey;
      row.cells[6].replaceChildren(...hostActions(host));
    }
  }

  async function refreshHosts(stillActive) {
    const root = await api.call('DescribeCloudHosts');
    if (!stillActive()) return;
    const hosts = items(root, 'hostSet').map(readHost);
    const body = $('#hosts tbody');
    const seen = new Set();
    for (const host of hosts) {
      seen.add(host.name);
      if (!rows.has(host.name)) rows.set(host.name, newRow(host.name));
      update(rows.get(host.name), host);
    }
    for (const [name, row] of rows) {
      if (!seen.has(name)) { row.remove(); rows.delete(name); }
    }
    body.replaceChildren(...hosts.map((host) => rows.get(host.name)));
    $('#pool-summary').textContent = summary(hosts);
    if (detailHost) await refreshHostInstances(stillActive);
  }

  function summary(hosts) {
    const sum = (field) => hosts.reduce((total, host) => total + host[field], 0);
    return `${hosts.length} hosts, ${hosts.filter((host) => host.enabled).length} enabled · `
      + `${sum('vcpuUsed')} of ${sum('vcpuTotal')} vCPUs, ${sum('memoryUsed')} of ${sum('memoryTotal')} MiB in use · `
      + `${sum('instances')} instances`;
  }

  // The plots' time range, chosen above them: StartTime for both histories, and launch buckets
  // sized so the range always holds the same number of them.
  function range() {
    const seconds = Number($('#plot-range').value);
    return { StartTime: new Date(Date.now() - seconds * 1000).toISOString(), bucket: Math.max(60, seconds / BUCKETS_PER_PLOT) };
  }

  async function refreshPlots(stillActive) {
    const { StartTime, bucket } = range();
    const minutes = bucket / 60;
    $('#launches-caption').textContent = `Instances launched and failed (per ${minutes === 1 ? 'minute' : `${minutes} minutes`})`;
    const [capacity, launches, failures] = await Promise.all([
      api.call('DescribeCapacityHistory', { StartTime }),
      api.call('DescribeLaunchHistory', { BucketSeconds: bucket, StartTime }),
      api.call('DescribePlacementFailures', { MaxResults: 20 }),
    ]);
    if (!stillActive()) return;
    capacityPlot($('#plot-capacity'), samplesOf(capacity));
    const buckets = items(launches, 'bucketSet').map((item) => [Date.parse(text(item, 'time')), number(item, 'launched'), number(item, 'failed')]);
    linePlot($('#plot-launches'), [
      { name: 'launched', className: 'line-launched', points: buckets.map(([time, launched]) => [time, launched]) },
      { name: 'failed', className: 'line-failed', points: buckets.map(([time, , failed]) => [time, failed]) },
    ]);
    $('#failures tbody').replaceChildren(...items(failures, 'failureSet').map((item) => el('tr', {},
      ...['time', 'accountId', 'instanceType', 'count', 'zone', 'reason'].map((name) => el('td', { text: text(item, name) })))));
    if (detailHost) {
      const root = await api.call('DescribeCapacityHistory', { HostName: detailHost, StartTime });
      if (stillActive() && detailHost) capacityPlot($('#plot-host'), samplesOf(root));
    }
  }

  async function refreshHostInstances(stillActive) {
    const name = detailHost;
    const root = await api.call('DescribeCloudHostInstances', { HostName: name });
    if (!stillActive() || detailHost !== name) return;
    $('#host-instances tbody').replaceChildren(...items(root, 'instancesSet').map((item) => el('tr', {},
      ...['instanceId', 'ownerId', 'instanceType', 'state', 'vcpus', 'memoryMib'].map((field) => el('td', { text: text(item, field) })))));
  }

  async function openHost(name) {
    detailHost = name;
    $('#host-detail-title').textContent = `Host ${name}`;
    $('#host-detail').hidden = false;
    $('#host-instances tbody').replaceChildren();
    $('#plot-host').replaceChildren();
    try {
      await refreshHostInstances(() => detailHost === name);
      const root = await api.call('DescribeCapacityHistory', { HostName: name, StartTime: range().StartTime });
      if (detailHost === name) capacityPlot($('#plot-host'), samplesOf(root));
    } catch (error) {
      status(error.message, true);
    }
  }

  function closeHost() {
    detailHost = null;
    $('#host-detail').hidden = true;
  }

  async function setEnabled(name, enabled) {
    const verb = enabled ? 'Enable' : 'Disable';
    if (!(await confirmAction(`${verb} host ${name}?${enabled ? '' : ' Nothing new will be placed there.'}`))) return;
    try {
      await api.call('ModifyCloudHost', { HostName: name, Enabled: String(enabled) });
      status(`${verb}d host ${name}`);
      await hostsPoll.start();
    } catch (error) {
      status(error.message, true);
    }
  }

  async function evacuate(name) {
    if (!(await confirmAction(`Evacuate host ${name}? It is disabled and its running instances move elsewhere.`))) return;
    try {
      const root = await api.call('EvacuateCloudHost', { HostName: name });
      const moves = items(root, 'movesSet').map((item) => `${text(item, 'instanceId')} → ${text(item, 'targetHostName')}`);
      status(`Evacuating ${name}: ${moves.length ? moves.join(', ') : 'nothing to move'}`);
      await hostsPoll.start();
    } catch (error) {
      status(error.message, true);
    }
  }

  const hostsPoll = poller(refreshHosts, POLL_MS);
  const plotsPoll = poller(refreshPlots, PLOT_POLL_MS);

  return {
    async show() {
      $('#host-detail-close').addEventListener('click', closeHost);
      $('#plot-range').addEventListener('change', plotsPoll.start);
      await Promise.all([hostsPoll.start(), plotsPoll.start()]);
    },
    hide() {
      hostsPoll.stop();
      plotsPoll.stop();
      $('#host-detail-close').removeEventListener('click', closeHost);
      $('#plot-range').removeEventListener('change', plotsPoll.start);
      closeHost();
      rows.clear();
    },
  };
}

export function accountsPage(api) {
  async function refresh(stillActive) {
    const [users, networks] = await Promise.all([api.call('DescribeCloudUsers'), api.call('DescribeCloudNetworks')]);
    if (!stillActive()) return;
    $('#users tbody').replaceChildren(...items(users, 'userSet').map((user) => el('tr', { 'data-user': text(user, 'userName') },
      el('td', { text: text(user, 'userName') }),
      el('td', { text: text(user, 'accountId') }),
      el('td', { text: text(user, 'admin') === 'true' ? 'administrator' : 'user' }),
      el('td', {}, ...items(user, 'usageSet').map(usage)))));
    $('#networks-admin tbody').replaceChildren(...items(networks, 'networkSet').map((network) => el('tr', {},
      ...['name', 'cidr', 'gateway', 'bridge'].map((field) => el('td', { text: text(network, field) })),
      el('td', { text: text(network, 'subnetId') || text(network, 'vpcId') }),
      el('td', {}, ...gauge(number(network, 'leasesUsed'), number(network, 'leasesTotal'), '')))));
  }

  function usage(item) {
    const used = number(item, 'used');
    const limit = text(item, 'limit');
    const resource = text(item, 'resource');
    const format = BYTE_RESOURCES.has(resource) ? formatBytes : String;
    const line = el('div', { className: 'usage' }, el('span', { className: 'usage-name', text: resource }));
    if (limit && Number(limit) >= 0) line.append(...gauge(used, Number(limit), '', format));
    else line.append(el('span', { className: 'gauge-text', text: `${format(used)} (no limit)` }));
    return line;
  }

  const poll = poller(refresh, PLOT_POLL_MS);
  return {
    show() { return poll.start(); },
    hide() { poll.stop(); },
  };
}
