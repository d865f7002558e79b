// Volumes and their snapshots: tables kept up to date by polling while the page is shown; create a
// volume (empty or from a snapshot), attach it to an instance, detach, snapshot, delete.
import { items, text } from './api.js';
import { $, confirmAction, el, status } from './dom.js';
import {
  actionButton, changer, choices, clearChoices, describeAll, filterParams, KeyedTable, setContent, setText, visits,
} from './resources.js';

const POLL_MS = 2000;
// Which actions a volume in a state offers.
const ACTIONS = {
  available: ['AttachVolume', 'CreateSnapshot', 'DeleteVolume'],
  'in-use': ['DetachVolume', 'CreateSnapshot'],
};
const LABELS = { AttachVolume: 'Attach', DetachVolume: 'Detach', CreateSnapshot: 'Snapshot', DeleteVolume: 'Delete' };

export function volumesPage(api) {
  const volumeTable = new KeyedTable('#volumes', 8);
  const snapshotTable = new KeyedTable('#snapshots', 6);
  const visit = visits();
  let timer = null;
  let attaching = null;            // the volume the attach form is open for

  function updateVolume(row, volume) {
    const id = text(volume, 'volumeId');
    const state = text(volume, 'status');
    const [attachment] = items(volume, 'attachmentSet');
    const values = [id, `${text(volume, 'size')} GiB`, text(volume, 'volumeType'), text(volume, 'availabilityZone'),
      state, text(attachment, 'instanceId'), text(attachment, 'device')];
    values.forEach((value, i) => setText(row.cells[i], value));
    row.cells[4].className = `state state-${state}`;
    row.cells[1].className = 'number';
    const actions = ACTIONS[state] || [];
    setContent(row.cells[7], actions.join(' '), () => actions.map((action) =>
      actionButton(LABELS[action], action, () => act(action, volume))));
  }

  function updateSnapshot(row, snapshot) {
    const id = text(snapshot, 'snapshotId');
    const state = text(snapshot, 'status');
    const progress = text(snapshot, 'progress');
    [id, text(snapshot, 'volumeId'), state].forEach((value, i) => setText(row.cells[i], value));
    row.cells[2].className = `state state-${state}`;
    setContent(row.cells[3], progress, () => [
      el('progress', { max: '100', value: String(parseInt(progress, 10) || 0) }), el('span', { text: ` ${progress}` })]);
    setText(row.cells[4], text(snapshot, 'startTime').replace('T', ' ').replace(/\.\d+Z$/, ' UTC'));
    const deletable = state === 'completed' || state === 'error';
    setContent(row.cells[5], deletable ? 'delete' : '', () => (deletable ? [actionButton('Delete', 'DeleteSnapshot',
      () => removeSnapshot(id))] : []));
  }

  async function refresh() {
    const mine = visit.now();
    const volumes = await describeAll(api, 'DescribeVolumes', 'volumeSet');
    const snapshots = await describeAll(api, 'DescribeSnapshots', 'snapshotSet', { 'Owner.1': 'self' });
    if (!visit.alive(mine)) return;
    volumeTable.sync(volumes, (volume) => text(volume, 'volumeId'), updateVolume);
    snapshotTable.sync(snapshots, (snapshot) => text(snapshot, 'snapshotId'), updateSnapshot);
    choices($('#create-volume').snapshot, snapshots.filter((snapshot) => text(snapshot, 'status') === 'completed')
      .map((snapshot) => [text(snapshot, 'snapshotId'),
        `${text(snapshot, 'snapshotId')} (${text(snapshot, 'volumeId')}, ${text(snapshot, 'volumeSize')} GiB)`]),
    { blank: '(empty volume)' });
    if (attaching && !volumes.some((volume) => text(volume, 'volumeId') === attaching
        && text(volume, 'status') === 'available')) {
      closeAttach();
    }
  }

  async function poll() {
    const mine = visit.now();
    try {
      await refresh();
    } catch (error) {
      if (visit.alive(mine)) status(error.message, true);
    }
    if (visit.alive(mine)) timer = setTimeout(poll, POLL_MS);
  }

  async function fillZones() {
    const mine = visit.now();
    try {
      const zones = items(await api.call('DescribeAvailabilityZones'), 'availabilityZoneInfo')
        .map((zone) => text(zone, 'zoneName'));
      if (visit.alive(mine)) choices($('#create-volume').zone, zones.map((zone) => [zone, zone]));
    } catch (error) {
      if (visit.alive(mine)) status(error.message, true);
    }
  }

  const change = changer(visit, () => refresh());

  async function act(action, volume) {
    const id = text(volume, 'volumeId');
    if (action === 'AttachVolume') {
      await openAttach(volume);
    } else if (action === 'CreateSnapshot') {
      await change(async () => {
        const root = await api.call('CreateSnapshot', { VolumeId: id });
        return `Snapshot ${text(root, 'snapshotId')} of ${id} started`;
      });
    } else {
      const [attachment] = items(volume, 'attachmentSet');
      const question = action === 'DetachVolume'
        ? `Detach ${id} from ${text(attachment, 'instanceId')} (${text(attachment, 'device')})?` : `Delete volume ${id}?`;
      if (!(await confirmAction(question))) return;
      await change(async () => {
        await api.call(action, { VolumeId: id });
        return `${action === 'DetachVolume' ? 'Detaching' : 'Deleted'} ${id}`;
      });
    }
  }

  async function removeSnapshot(id) {
    if (!(await confirmAction(`Delete snapshot ${id}?`))) return;
    await change(async () => {
      await api.call('DeleteSnapshot', { SnapshotId: id });
      return `Deleted ${id}`;
    });
  }

  // The attach form offers the user's instances in the volume's zone that can take a volume.
  async function openAttach(volume) {
    const mine = visit.now();
    const id = text(volume, 'volumeId');
    const zone = text(volume, 'availabilityZone');
    try {
      const reservations = await describeAll(api, 'DescribeInstances', 'reservationSet', filterParams({
        'instance-state-name': ['running', 'stopped'], 'availability-zone': [zone] }));
      if (!visit.alive(mine)) return;
      const instances = reservations.flatMap((reservation) => items(reservation, 'instancesSet'));
      const form = $('#attach-volume');
      choices(form.instance, instances.map((instance) => {
        const name = items(instance, 'tagSet').find((tag) => text(tag, 'key') === 'Name');
        const label = name ? `${text(name, 'value')} (${text(instance, 'instanceId')})` : text(instance, 'instanceId');
        return [text(instance, 'instanceId'), `${label}, ${text(instance, 'instanceState/name')}`];
      }));
      attaching = id;
      $('#attach-title').textContent = `Attach ${id} (${zone})`;
      form.hidden = false;
      if (!instances.length) status(`No running or stopped instance in ${zone} to attach ${id} to.`, true);
    } catch (error) {
      if (visit.alive(mine)) status(error.message, true);
    }
  }

  function closeAttach() {
    attaching = null;
    const form = $('#attach-volume');
    form.hidden = true;
    $('#attach-title').textContent = '';
    clearChoices(form);
  }

  async function attach(event) {
    event.preventDefault();
    const form = event.target;
    const id = attaching;
    await change(async () => {
      await api.call('AttachVolume', { VolumeId: id, InstanceId: form.instance.value, Device: form.device.value.trim() });
      const message = `Attaching ${id} to ${form.instance.value} as ${form.device.value.trim()}`;
      closeAttach();
      return message;
    });
  }

  async function create(event) {
    event.preventDefault();
    const form = event.target;
    await change(async () => {
      const root = await api.call('CreateVolume', { Size: form.size.value, AvailabilityZone: form.zone.value,
        VolumeType: form.type.value, SnapshotId: form.snapshot.value });
      return `Created volume ${text(root, 'volumeId')}`;
    });
  }

  const listeners = [[$('#create-volume'), 'submit', create], [$('#attach-volume'), 'submit', attach],
    [$('#attach-cancel'), 'click', closeAttach]];

  return {
    async show() {
      visit.begin();
      volumeTable.clear();
      snapshotTable.clear();
      closeAttach();
      for (const [node, type, handler] of listeners) node.addEventListener(type, handler);
      fillZones();
      await poll();
    },
    hide() {
      visit.end();
      clearTimeout(timer);
      for (const [node, type, handler] of listeners) node.removeEventListener(type, handler);
    },
    clear() {
      volumeTable.clear();
      snapshotTable.clear();
      closeAttach();
      clearChoices($('#create-volume'));
    },
  };
}
