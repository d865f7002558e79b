// Security groups: list, create, delete; a selected group's inbound and outbound rules, add an
// inbound rule (from a CIDR range or another group), revoke a rule.
import { text } from './api.js';
import { $, confirmAction, el, status } from './dom.js';
import {
  actionButton, changer, choices, clearChoices, describeAll, filterParams, KeyedTable, setContent, setText, visits,
} from './resources.js';

const PROTOCOLS = { '-1': 'all', tcp: 'tcp', udp: 'udp', icmp: 'icmp', 6: 'tcp', 17: 'udp', 1: 'icmp' };

function ports(rule) {
  const protocol = PROTOCOLS[text(rule, 'ipProtocol')] || text(rule, 'ipProtocol');
  const from = text(rule, 'fromPort');
  const to = text(rule, 'toPort');
  if (protocol === 'all') return 'all';
  if (protocol === 'icmp') {
    if (from === '-1' || from === '') return 'all types';
    return to === '-1' || to === '' ? `type ${from}` : `type ${from} code ${to}`;
  }
  if (from === '-1' || from === '') return 'all';
  return from === to ? from : `${from}–${to}`;
}

export function securityGroupsPage(api) {
  const groupTable = new KeyedTable('#groups', 5);
  const inboundTable = new KeyedTable('#inbound-rules', 6);
  const outboundTable = new KeyedTable('#outbound-rules', 6);
  const visit = visits();
  const names = new Map();         // group id -> name, to name a rule's peer group
  let selected = null;

  function updateGroup(row, group) {
    const id = text(group, 'groupId');
    const name = text(group, 'groupName');
    setContent(row.cells[0], id, () => [el('button', { type: 'button', className: 'link', text: id,
      onclick: () => select(id) })]);
    [name, text(group, 'vpcId'), text(group, 'groupDescription')].forEach((value, i) => setText(row.cells[i + 1], value));
    setContent(row.cells[4], 'delete', () => [actionButton('Delete', 'DeleteSecurityGroup', () =>
      removeGroup(id, name))]);
    row.classList.toggle('selected', id === selected);
  }

  function peer(rule) {
    const cidr = text(rule, 'cidrIpv4');
    if (cidr) return cidr;
    const group = text(rule, 'referencedGroupInfo/groupId');
    return names.has(group) ? `${group} (${names.get(group)})` : group;
  }

  function updateRule(row, rule) {
    const id = text(rule, 'securityGroupRuleId');
    const egress = text(rule, 'isEgress') === 'true';
    const protocol = PROTOCOLS[text(rule, 'ipProtocol')] || text(rule, 'ipProtocol');
    [id, protocol, ports(rule), peer(rule), text(rule, 'description')].forEach((value, i) => setText(row.cells[i], value));
    setContent(row.cells[5], 'revoke', () => [actionButton('Revoke', 'Revoke', () => revoke(id, egress))]);
  }

  async function refresh() {
    const mine = visit.now();
    const groups = await describeAll(api, 'DescribeSecurityGroups', 'securityGroupInfo');
    const vpcs = await describeAll(api, 'DescribeVpcs', 'vpcSet');
    if (!visit.alive(mine)) return;
    names.clear();
    for (const group of groups) names.set(text(group, 'groupId'), text(group, 'groupName'));
    groupTable.sync(groups, (group) => text(group, 'groupId'), updateGroup);
    // The default VPC first: a group is made there unless the user picks another.
    const sorted = vpcs.slice().sort((a, b) => (text(b, 'isDefault') === 'true') - (text(a, 'isDefault') === 'true'));
    choices($('#create-group').vpc, sorted.map((vpc) => [text(vpc, 'vpcId'), `${text(vpc, 'vpcId')} (${text(vpc, 'cidrBlock')}`
      + `${text(vpc, 'isDefault') === 'true' ? ', default' : ''})`]));
    if (selected && !names.has(selected)) closeDetail();
    if (selected) await refreshRules();
  }

  async function refreshRules() {
    const mine = visit.now();
    const groupId = selected;
    const rules = await describeAll(api, 'DescribeSecurityGroupRules', 'securityGroupRuleSet',
      filterParams({ 'group-id': [groupId] }));
    if (!visit.alive(mine) || selected !== groupId) return;
    const isEgress = (rule) => text(rule, 'isEgress') === 'true';
    const idOf = (rule) => text(rule, 'securityGroupRuleId');
    inboundTable.sync(rules.filter((rule) => !isEgress(rule)), idOf, updateRule);
    outboundTable.sync(rules.filter(isEgress), idOf, updateRule);
    choices($('#add-rule').group, [...names].filter(([id]) => id !== groupId)
      .map(([id, name]) => [id, `${name} (${id})`]), { blank: '(the CIDR range)' });
    sourceChanged();
    // Another group's rules are gone from the table only once this group's are in.
    $('#group-detail').hidden = false;
  }

  async function select(id) {
    selected = id;
    for (const row of $('#groups tbody').rows) row.classList.toggle('selected', row.dataset.id === id);
    $('#group-detail-title').textContent = names.has(id) ? `${names.get(id)} (${id})` : id;
    inboundTable.clear();
    outboundTable.clear();
    const mine = visit.now();
    try {
      await refreshRules();
    } catch (error) {
      if (visit.alive(mine)) status(error.message, true);
    }
  }

  function closeDetail() {
    selected = null;
    $('#group-detail').hidden = true;
    $('#group-detail-title').textContent = '';
    inboundTable.clear();
    outboundTable.clear();
    for (const row of $('#groups tbody').rows) row.classList.remove('selected');
  }

  const change = changer(visit, () => refresh());

  async function removeGroup(id, name) {
    if (!(await confirmAction(`Delete security group ${name} (${id})?`))) return;
    await change(async () => {
      await api.call('DeleteSecurityGroup', { GroupId: id });
      return `Deleted ${id}`;
    });
  }

  async function revoke(ruleId, egress) {
    const groupId = selected;
    if (!(await confirmAction(`Revoke ${egress ? 'outbound' : 'inbound'} rule ${ruleId} of ${groupId}?`))) return;
    await change(async () => {
      await api.call(egress ? 'RevokeSecurityGroupEgress' : 'RevokeSecurityGroupIngress',
        { GroupId: groupId, 'SecurityGroupRuleId.1': ruleId });
      return `Revoked ${ruleId}`;
    });
  }

  async function createGroup(event) {
    event.preventDefault();
    const form = event.target;
    await change(async () => {
      const root = await api.call('CreateSecurityGroup', { GroupName: form.name.value,
        GroupDescription: form.description.value, VpcId: form.vpc.value });
      form.name.value = '';
      form.description.value = '';
      return `Created security group ${text(root, 'groupId')}`;
    });
  }

  // The permission of the add-rule form as IpPermissions.1.* parameters.
  function permission(form) {
    const protocol = form.protocol.value;
    const params = { 'IpPermissions.1.IpProtocol': protocol };
    if (protocol === 'tcp' || protocol === 'udp') {
      const from = form.from_port.value.trim();
      params['IpPermissions.1.FromPort'] = from;
      params['IpPermissions.1.ToPort'] = form.to_port.value.trim() || from;
    } else if (protocol === 'icmp') {
      params['IpPermissions.1.FromPort'] = form.from_port.value.trim() || '-1';
      params['IpPermissions.1.ToPort'] = form.to_port.value.trim() || '-1';
    }
    const description = form.description.value;
    if (form.group.value) {
      params['IpPermissions.1.Groups.1.GroupId'] = form.group.value;
      params['IpPermissions.1.Groups.1.Description'] = description;
    } else {
      params['IpPermissions.1.IpRanges.1.CidrIp'] = form.cidr.value.trim();
      params['IpPermissions.1.IpRanges.1.Description'] = description;
    }
    return params;
  }

  async function addRule(event) {
    event.preventDefault();
    const form = event.target;
    const groupId = selected;
    await change(async () => {
      const root = await api.call('AuthorizeSecurityGroupIngress', { GroupId: groupId, ...permission(form) });
      form.description.value = '';
      return `Added rule ${text(root, 'securityGroupRuleSet/item/securityGroupRuleId')} to ${groupId}`;
    });
  }

  // Ports mean nothing for "all", and type/code for ICMP.
  function protocolChanged() {
    const form = $('#add-rule');
    const protocol = form.protocol.value;
    form.from_port.disabled = protocol === '-1';
    form.to_port.disabled = protocol === '-1';
    form.from_port.required = protocol === 'tcp' || protocol === 'udp';
    form.from_port.placeholder = protocol === 'icmp' ? 'type (all)' : '';
    form.to_port.placeholder = protocol === 'icmp' ? 'code (all)' : 'same';
  }

  // A CIDR range or a group: the range is needed only when no group is picked.
  function sourceChanged() {
    const form = $('#add-rule');
    form.cidr.disabled = Boolean(form.group.value);
    form.cidr.required = !form.group.value;
  }

  const listeners = [[$('#create-group'), 'submit', createGroup], [$('#add-rule'), 'submit', addRule],
    [$('#add-rule [name=protocol]'), 'change', protocolChanged], [$('#add-rule [name=group]'), 'change', sourceChanged],
    [$('#group-detail-close'), 'click', closeDetail]];

  return {
    async show() {
      visit.begin();
      groupTable.clear();
      closeDetail();
      for (const [node, type, handler] of listeners) node.addEventListener(type, handler);
      protocolChanged();
      sourceChanged();
      await refresh();
    },
    hide() {
      visit.end();
      for (const [node, type, handler] of listeners) node.removeEventListener(type, handler);
    },
    clear() {
      groupTable.clear();
      closeDetail();
      clearChoices($('#create-group'));
      clearChoices($('#add-rule'));
    },
  };
}
