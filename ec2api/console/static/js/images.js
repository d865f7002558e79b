// Images: the caller's own, those shared with the caller and the public ones; launch permissions of
// own images; deregistering; uploading an image file in signed chunks that resume, then registering it.
import { allPages, items, responseError, text } from './api.js';
import { $, confirmAction, el, status } from './dom.js';
import { Sha256 } from './sha256.js';

// What EC2 means by each view: Owners=self; ExecutableBy=self is own and shared-with-me images, so
// the own ones are taken out; ExecutableBy=all is every public image, own ones included.
const VIEWS = {
  own: { 'Owner.1': 'self' },
  shared: { 'ExecutableBy.1': 'self' },
  public: { 'ExecutableBy.1': 'all' },
};
const UPLOAD_NAME = /^[A-Za-z0-9()[\] .\-'@_]{3,128}$/;
const CHUNK_BYTES = 4 << 20;
const HASH_SLICE_BYTES = 4 << 20;
const RETRIES = 10;
const RETRY_MS = 1000;
const MiB = 1 << 20;

function mib(bytes) {
  return (bytes / MiB).toFixed(1);
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(timer); reject(signal.reason); }, { once: true });
  });
}

async function describe(api, params) {
  const found = [];
  await allPages(api, 'DescribeImages', params, (root) => found.push(...items(root, 'imagesSet')));
  return found;
}

export function imagesPage(api) {
  let visit = 0;             // which visit of the page an answer belongs to
  let active = false;
  let view = 'own';
  let permissionsOf = null;  // the image whose launch permissions are open
  let upload = null;         // { file, name, format, sha256, controller } while one is under way or paused
  let fresh = true;
  const hashes = new WeakMap();   // File -> its SHA-256, so a resume does not read it twice

  // -- lists -----------------------------------------------------------------------------------

  async function list() {
    const asked = visit;
    const current = view;
    let images = await describe(api, VIEWS[current]);
    if (current === 'shared') {
      const own = new Set((await describe(api, VIEWS.own)).map((image) => text(image, 'imageId')));
      images = images.filter((image) => !own.has(text(image, 'imageId')));
    }
    if (!active || asked !== visit || current !== view) return;
    $('#images tbody').replaceChildren(...images.map((image) => imageRow(image, current === 'own')));
    $('#images-empty').hidden = images.length > 0;
  }

  function imageRow(image, own) {
    const id = text(image, 'imageId');
    const name = text(image, 'name');
    const state = text(image, 'imageState');
    const cells = [id, name, text(image, 'imageOwnerId'), text(image, 'isPublic') === 'true' ? 'public' : 'private',
      state, text(image, 'architecture'), text(image, 'rootDeviceType')].map((value) => el('td', { text: value }));
    cells[4].className = `state state-${state}`;
    const actions = el('td');
    if (own) {
      actions.append(
        el('button', { type: 'button', 'data-action': 'permissions', text: 'Permissions', onclick: () => openPermissions(id, name) }),
        el('button', { type: 'button', 'data-action': 'DeregisterImage', text: 'Deregister', onclick: () => deregister(id, name) }));
    }
    return el('tr', { 'data-id': id }, ...cells, actions);
  }

  function choose(name) {
    view = name;
    for (const button of document.querySelectorAll('#image-views [data-view]')) {
      button.classList.toggle('current', button.dataset.view === name);
      button.setAttribute('aria-pressed', String(button.dataset.view === name));
    }
    closePermissions();
    $('#images tbody').replaceChildren();
    list().catch((error) => status(error.message, true));
  }

  async function deregister(id, name) {
    if (!(await confirmAction(`Deregister ${id} (${name})? Instances can no longer be launched from it.`))) return;
    try {
      await api.call('DeregisterImage', { ImageId: id });
      status(`Deregistered ${id}`);
      if (permissionsOf === id) closePermissions();
      await list();
    } catch (error) {
      status(error.message, true);
    }
  }

  // -- launch permissions ----------------------------------------------------------------------

  async function showPermissions() {
    const asked = visit;
    const id = permissionsOf;
    const root = await api.call('DescribeImageAttribute', { ImageId: id, Attribute: 'launchPermission' });
    const entries = items(root, 'launchPermission');
    const accounts = entries.map((item) => text(item, 'userId')).filter(Boolean);
    const isPublic = entries.some((item) => text(item, 'group') === 'all');
    if (!active || asked !== visit || id !== permissionsOf) return;
    $('#permissions-public').textContent = isPublic ? 'public: every account may launch it' : 'private';
    const toggle = $('#permissions-toggle');
    toggle.textContent = isPublic ? 'Make private' : 'Make public';
    toggle.dataset.public = String(isPublic);
    $('#permissions tbody').replaceChildren(...accounts.map((account) => el('tr', { 'data-account': account },
      el('td', { text: account }),
      el('td', {}, el('button', { type: 'button', text: 'Remove', onclick: () => changePermission('Remove', { UserId: account }) })))));
    $('#permissions-none').hidden = accounts.length > 0;
  }

  function openPermissions(id, name) {
    permissionsOf = id;
    $('#permissions-title').textContent = `Launch permissions of ${id} (${name})`;
    $('#permissions tbody').replaceChildren();
    $('#permissions-public').textContent = '';
    $('#image-permissions').hidden = false;
    showPermissions().catch((error) => status(error.message, true));
  }

  function closePermissions() {
    permissionsOf = null;
    $('#image-permissions').hidden = true;
  }

  async function changePermission(operation, entry) {
    const [key, value] = Object.entries(entry)[0];
    try {
      await api.call('ModifyImageAttribute', { ImageId: permissionsOf, [`LaunchPermission.${operation}.1.${key}`]: value });
      const what = key === 'Group' ? 'everyone' : value;
      status(operation === 'Add' ? `${permissionsOf}: ${what} may launch it` : `${permissionsOf}: ${what} may no longer launch it`);
      await showPermissions();
      await list();
    } catch (error) {
      status(error.message, true);
    }
  }

  function addAccount(event) {
    event.preventDefault();
    const field = event.target.account;
    const account = field.value.trim();
    if (!/^[0-9]{12}$/.test(account)) {
      status('An account id is 12 digits', true);
      return;
    }
    field.value = '';
    changePermission('Add', { UserId: account });
  }

  function togglePublic() {
    changePermission($('#permissions-toggle').dataset.public === 'true' ? 'Remove' : 'Add', { Group: 'all' });
  }

  // -- upload ----------------------------------------------------------------------------------

  function path(name) {
    return `upload/${encodeURIComponent(name)}`;
  }

  function progress(phase, done, total, detail) {
    const box = $('#upload-state');
    box.hidden = false;
    box.dataset.phase = phase;
    const bar = $('#upload-progress');
    bar.max = Math.max(total, 1);
    bar.value = done;
    $('#upload-text').textContent = detail;
  }

  function buttons(running) {
    const form = $('#upload');
    form.start.disabled = running;
    form.start.textContent = upload && !running ? 'Resume' : 'Upload';
    $('#upload-pause').hidden = !running;
    $('#upload-cancel').hidden = !upload;
  }

  // The server's view of an upload: null if it has none.
  async function serverStatus(name, signal) {
    const response = await api.send('HEAD', path(name), { signal });
    if (response.status === 404) return null;
    if (!response.ok) throw await responseError(await api.send('GET', path(name), { signal }));
    return readStatus(response);
  }

  function readStatus(response) {
    const header = (name) => response.headers.get(name) || '';
    return { state: header('x-reservoir-upload-state'), received: Number(header('x-reservoir-received-bytes')),
      total: Number(header('x-reservoir-total-bytes')), sha256: header('x-reservoir-sha256') };
  }

  async function hashFile(file, signal) {
    if (hashes.has(file)) return hashes.get(file);
    const digest = new Sha256();
    for (let offset = 0; offset < file.size; offset += HASH_SLICE_BYTES) {
      progress('hashing', offset, file.size, `Computing the SHA-256 of ${file.name}: ${mib(offset)} of ${mib(file.size)} MiB`);
      const slice = new Uint8Array(await file.slice(offset, offset + HASH_SLICE_BYTES).arrayBuffer());
      if (signal.aborted) throw signal.reason;
      digest.update(slice);
    }
    const hex = digest.hex();
    hashes.set(file, hex);
    return hex;
  }

  async function put(job, offset, end, signal) {
    const headers = {
      'content-range': `bytes ${offset}-${end - 1}/${job.file.size}`,
      'x-reservoir-sha256': job.sha256,
      'x-reservoir-image-type': 'machine',
    };
    if (job.format) headers['x-reservoir-disk-format'] = job.format;
    return api.send('PUT', path(job.name), { headers, body: job.file.slice(offset, end), signal });
  }

  // Sends what the server lacks, chunk by chunk, from where it says it is.
  async function transfer(job) {
    const { signal } = job.controller;
    const total = job.file.size;
    job.sha256 = await hashFile(job.file, signal);
    let server = await serverStatus(job.name, signal);
    if (server && (server.total !== total || server.sha256 !== job.sha256)) {
      throw new Error(`An upload named ${job.name} with other content is on the server: cancel it to discard it, or choose another name`);
    }
    let offset = server ? server.received : 0;
    const resumedFrom = offset;
    if (offset > 0) status(`Resuming ${job.name} from ${mib(offset)} MiB`);
    const started = performance.now();
    const chunk = Number($('#upload').dataset.chunkBytes) || CHUNK_BYTES;
    let retries = 0;
    const show = () => {
      const seconds = (performance.now() - started) / 1000;
      const rate = seconds > 0 ? (offset - resumedFrom) / seconds : 0;
      progress('uploading', offset, total, `${job.name}: ${mib(offset)} of ${mib(total)} MiB · ${mib(rate)} MiB/s`);
    };
    show();
    while (!server || server.state !== 'ready') {
      const response = await put(job, offset, Math.min(offset + chunk, total), signal);
      if (response.ok) {
        server = readStatus(response);
        offset = server.received;
        retries = 0;
        show();
        continue;
      }
      const error = await responseError(response);
      // Still finishing a request that was cut off, or it got further than we knew: ask, then go on.
      if (!['InvalidUpload.InProgress', 'InvalidUpload.Offset'].includes(error.code) || ++retries > RETRIES) throw error;
      await sleep(RETRY_MS, signal);
      server = await serverStatus(job.name, signal);
      if (!server) throw new Error(`The server no longer has the upload ${job.name}`);
      offset = server.received;
    }
    progress('registering', total, total, `${job.name}: ${mib(total)} MiB sent; registering`);
    const root = await api.call('RegisterImage', { Name: job.name, ImageLocation: job.name });
    return { imageId: text(root, 'imageId'), resumedFrom };
  }

  async function start(event) {
    event.preventDefault();
    const form = $('#upload');
    const file = form.file.files[0];
    const name = form.name.value.trim();
    if (!file || !file.size) { status(file ? `${file.name} is empty` : 'Choose an image file to upload', true); return; }
    if (!UPLOAD_NAME.test(name)) {
      status("A name is 3 to 128 letters, digits, spaces or ()[].-'@_", true);
      return;
    }
    upload = { file, name, format: form.format.value, sha256: null, controller: new AbortController() };
    const job = upload;
    buttons(true);
    try {
      const { imageId, resumedFrom } = await transfer(job);
      if (job !== upload) return;
      upload = null;
      const resumed = resumedFrom ? ` (resumed from ${mib(resumedFrom)} MiB)` : '';
      progress('done', file.size, file.size, `${name}: registered as ${imageId}${resumed}`);
      status(`Uploaded and registered ${imageId} (${name})`);
      form.reset();
      if (active) choose('own');
    } catch (error) {
      if (job !== upload) return;
      if (job.controller.signal.aborted) return;     // paused: pause() said so
      progress('failed', Number($('#upload-progress').value), file.size, `${name}: ${error.message}`);
      status(error.message, true);
    } finally {
      if (job === upload || !upload) buttons(false);
    }
  }

  function pause(message) {
    if (!upload) return;
    upload.controller.abort(new DOMException('paused', 'AbortError'));
    const bar = $('#upload-progress');
    progress('paused', bar.value, bar.max, `${upload.name}: paused at ${mib(bar.value)} of ${mib(bar.max)} MiB`);
    status(message || `Paused the upload '${upload.name}': Resume goes on from where it stopped`);
    buttons(false);
  }

  async function cancel() {
    if (!upload) return;
    const { name } = upload;
    if (!(await confirmAction(`Cancel the upload ${name}? What the server has received of it is discarded.`))) return;
    upload.controller.abort(new DOMException('cancelled', 'AbortError'));
    upload = null;
    buttons(false);
    try {
      const response = await api.send('DELETE', path(name));
      if (!response.ok && response.status !== 404) throw await responseError(response);
      progress('cancelled', 0, 1, `${name}: cancelled`);
      status(`Cancelled the upload ${name}`);
    } catch (error) {
      status(error.message, true);
    }
  }

  // A name for the upload from the file's, when none is given.
  function suggestName() {
    const form = $('#upload');
    const file = form.file.files[0];
    if (!file || form.name.value) return;
    const base = file.name.replace(/\.(qcow2|img|raw|gz)+$/i, '').replace(/[^A-Za-z0-9()[\] .\-'@_]/g, '_').slice(0, 128);
    if (base.length >= 3) form.name.value = base;
  }

  function reset() {
    $('#upload').reset();
    $('#upload-state').hidden = true;
    $('#upload-text').textContent = '';
    closePermissions();
    buttons(false);
  }

  const listeners = [
    [$('#upload'), 'submit', start], [$('#upload-pause'), 'click', () => pause()], [$('#upload-cancel'), 'click', cancel],
    [$('#upload').file, 'change', suggestName], [$('#permission-add'), 'submit', addAccount],
    [$('#permissions-toggle'), 'click', togglePublic], [$('#permissions-close'), 'click', closePermissions],
    ...Array.from(document.querySelectorAll('#image-views [data-view]'),
      (button) => [button, 'click', () => choose(button.dataset.view)]),
  ];

  return {
    async show() {
      visit += 1;
      active = true;
      if (fresh) { reset(); fresh = false; }     // nothing of an earlier session's stays on screen
      for (const [node, type, handler] of listeners) node.addEventListener(type, handler);
      choose(view);
    },
    // Leaving the page pauses an upload: the key may be about to be signed out.
    hide() {
      if (upload && !$('#upload-pause').hidden) pause(`Paused the upload '${upload.name}' on leaving the images page: Resume goes on from there`);
      active = false;
      for (const [node, type, handler] of listeners) node.removeEventListener(type, handler);
    },
  };
}
