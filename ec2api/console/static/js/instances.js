// Instances: a table kept up to date by polling, launch, lifecycle actions, tags, console output.
import { allPages, items, text } from './api.js';
import { $, confirmAction, el, options, status } from './dom.js';

const POLL_MS = 2000;
const PAGE_SIZE = 50;
const ACTIONS = [
  ['Start', 'StartInstances', ['stopped']],
  ['Stop', 'StopInstances', ['running', 'pending']],
  ['Reboot', 'RebootInstances', ['running']],
  ['Terminate', 'TerminateInstances', ['pending', 'running', 'stopping', 'stopped']],
];

// UTF-8 text as base64, as UserData wants it; nothing when the text is empty.
function base64(textValue) {
  if (!textValue) return undefined;
  return btoa(Array.from(new TextEncoder().encode(textValue), (byte) => String.fromCharCode(byte)).join(''));
}

export function instancesPage(api) {
  const rows = new Map();          // instance id -> <tr>, reused so states change in place
  let timer = null;
  let stopped = true;
  let detailId = null;

  function readInstances(root, into) {
    for (const reservation of items(root, 'reservationSet')) {
      for (const item of items(reservation, 'instancesSet')) {
        into.push({
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
  }

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
    const values = [instance.state, instance.type, instance.privateIp, instance.publicIp, instance.zone];
    values.forEach((value, i) => {
      if (row.cells[i + 1].textContent !== value) row.cells[i + 1].textContent = value;
    });
    row.cells[1].className = `state state-${instance.state}`;
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

  async function refresh() {
    const found = [];
    await allPages(api, 'DescribeInstances', { MaxResults: PAGE_SIZE }, (root) => readInstances(root, found));
    if (stopped) return;
    const body = $('#instances tbody');
    const seen = new Set();
    for (const instance of found) {
      seen.add(instance.id);
      if (!rows.has(instance.id)) {
        rows.set(instance.id, newRow(instance.id));
        body.append(rows.get(instance.id));
      }
      update(rows.get(instance.id), instance);
    }
    for (const [id, row] of rows) {
      if (!seen.has(id)) { row.remove(); rows.delete(id); }
    }
  }

  async function poll() {
    try {
      await refresh();
      if (detailId) await showConsole(detailId);
    } catch (error) {
      status(error.message, true);
    }
    if (!stopped) timer = setTimeout(poll, POLL_MS);
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
      status(`Launched ${items(root, 'instancesSet').map((item) => text(item, 'instanceId')).join(', ')}`);
      await refresh();
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
    [$('#detail-close'), 'click', () => { detailId = null; $('#detail').hidden = true; }]];

  return {
    async show() {
      stopped = false;
      rows.clear();
      $('#instances tbody').replaceChildren();
      $('#detail').hidden = true;
      for (const [node, type, handler] of listeners) node.addEventListener(type, handler);
      fillLaunchForm().catch((error) => status(error.message, true));
      await poll();
    },
    hide() {
      stopped = true;
      detailId = null;
      clearTimeout(timer);
      for (const [node, type, handler] of listeners) node.removeEventListener(type, handler);
    },
  };
}
