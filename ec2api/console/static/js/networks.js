// VPCs and their subnets: list, create, delete (with confirmation).
import { items, text } from './api.js';
import { $, confirmAction, status } from './dom.js';
import {
  actionButton, changer, choices, clearChoices, describeAll, KeyedTable, setContent, setText, tagParams, tagSpans, tagsOf, visits,
} from './resources.js';

export function networksPage(api) {
  const vpcTable = new KeyedTable('#vpcs', 6);
  const subnetTable = new KeyedTable('#subnets', 8);
  const visit = visits();

  function updateVpc(row, vpc) {
    const id = text(vpc, 'vpcId');
    const tags = tagsOf(vpc);
    setText(row.cells[0], id);
    setText(row.cells[1], text(vpc, 'cidrBlock'));
    setText(row.cells[2], text(vpc, 'state'));
    row.cells[2].className = `state state-${text(vpc, 'state')}`;
    setText(row.cells[3], text(vpc, 'isDefault') === 'true' ? 'default' : '');
    setContent(row.cells[4], JSON.stringify(tags), () => tagSpans(tags));
    setContent(row.cells[5], 'delete', () => [actionButton('Delete', 'DeleteVpc', () =>
      remove('DeleteVpc', { VpcId: id }, `Delete VPC ${id} (${text(vpc, 'cidrBlock')})?`))]);
  }

  function updateSubnet(row, subnet) {
    const id = text(subnet, 'subnetId');
    const tags = tagsOf(subnet);
    const values = [id, text(subnet, 'vpcId'), text(subnet, 'cidrBlock'), text(subnet, 'availabilityZone'),
      text(subnet, 'availableIpAddressCount'), text(subnet, 'defaultForAz') === 'true' ? 'default' : ''];
    values.forEach((value, i) => setText(row.cells[i], value));
    setContent(row.cells[6], JSON.stringify(tags), () => tagSpans(tags));
    setContent(row.cells[7], 'delete', () => [actionButton('Delete', 'DeleteSubnet', () =>
      remove('DeleteSubnet', { SubnetId: id }, `Delete subnet ${id} (${text(subnet, 'cidrBlock')})?`))]);
  }

  async function refresh() {
    const mine = visit.now();
    const vpcs = await describeAll(api, 'DescribeVpcs', 'vpcSet');
    const subnets = await describeAll(api, 'DescribeSubnets', 'subnetSet');
    if (!visit.alive(mine)) return;
    vpcTable.sync(vpcs, (vpc) => text(vpc, 'vpcId'), updateVpc);
    subnetTable.sync(subnets, (subnet) => text(subnet, 'subnetId'), updateSubnet);
    choices($('#create-subnet').vpc, vpcs.map((vpc) => [text(vpc, 'vpcId'),
      `${text(vpc, 'vpcId')} (${text(vpc, 'cidrBlock')})`]));
  }

  async function fillZones() {
    const mine = visit.now();
    let zones;
    try {
      zones = items(await api.call('DescribeAvailabilityZones'), 'availabilityZoneInfo').map((zone) => text(zone, 'zoneName'));
    } catch (error) {
      if (visit.alive(mine)) status(error.message, true);
      return;
    }
    if (!visit.alive(mine)) return;
    choices($('#create-subnet').zone, zones.map((zone) => [zone, zone]), { blank: '(any)' });
  }

  const change = changer(visit, () => refresh());

  async function remove(action, params, question) {
    if (!(await confirmAction(question))) return;
    await change(async () => {
      await api.call(action, params);
      return `Deleted ${Object.values(params)[0]}`;
    });
  }

  async function createVpc(event) {
    event.preventDefault();
    const form = event.target;
    await change(async () => {
      const root = await api.call('CreateVpc', { CidrBlock: form.cidr.value.trim(),
        ...tagParams('vpc', { Name: form.name.value }) });
      form.reset();
      return `Created VPC ${text(root, 'vpc/vpcId')}`;
    });
  }

  async function createSubnet(event) {
    event.preventDefault();
    const form = event.target;
    await change(async () => {
      const root = await api.call('CreateSubnet', { VpcId: form.vpc.value, CidrBlock: form.cidr.value.trim(),
        AvailabilityZone: form.zone.value, ...tagParams('subnet', { Name: form.name.value }) });
      form.cidr.value = '';
      form.name.value = '';
      return `Created subnet ${text(root, 'subnet/subnetId')}`;
    });
  }

  const listeners = [[$('#create-vpc'), 'submit', createVpc], [$('#create-subnet'), 'submit', createSubnet]];

  return {
    async show() {
      visit.begin();
      vpcTable.clear();
      subnetTable.clear();
      for (const [node, type, handler] of listeners) node.addEventListener(type, handler);
      fillZones();
      await refresh();
    },
    hide() {
      visit.end();
      for (const [node, type, handler] of listeners) node.removeEventListener(type, handler);
    },
    clear() {
      vpcTable.clear();
      subnetTable.clear();
      clearChoices($('#create-vpc'));
      clearChoices($('#create-subnet'));
    },
  };
}
