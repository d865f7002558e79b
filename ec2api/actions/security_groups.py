"""Security groups: create, describe and delete them, and authorize and revoke their rules, with
IpPermissions as boto3 sends them or the flat parameters of boto 2 and euca2ools."""
from backend.networking.security_groups import permission

from ..errors import EC2Error
from ..filters import filtered_page
from . import action
from .tags import requested_tags, tag_list

_GROUP_FIELDS = {
    'group-id': lambda g: g['GroupId'],
    'group-name': lambda g: g['GroupName'],
    'vpc-id': lambda g: g['VpcId'],
    'description': lambda g: g['Description'],
    'owner-id': lambda g: g['OwnerId'],
    'ip-permission.protocol': lambda g: [p['IpProtocol'] for p in g['IpPermissions']],
    'ip-permission.from-port': lambda g: [p.get('FromPort') for p in g['IpPermissions']],
    'ip-permission.to-port': lambda g: [p.get('ToPort') for p in g['IpPermissions']],
    'ip-permission.cidr': lambda g: [r['CidrIp'] for p in g['IpPermissions'] for r in p['IpRanges']],
    'ip-permission.group-id': lambda g: [u['GroupId'] for p in g['IpPermissions'] for u in p['UserIdGroupPairs']],
    'ip-permission.user-id': lambda g: [u['UserId'] for p in g['IpPermissions'] for u in p['UserIdGroupPairs']],
    'egress.ip-permission.protocol': lambda g: [p['IpProtocol'] for p in g['IpPermissionsEgress']],
    'egress.ip-permission.from-port': lambda g: [p.get('FromPort') for p in g['IpPermissionsEgress']],
    'egress.ip-permission.to-port': lambda g: [p.get('ToPort') for p in g['IpPermissionsEgress']],
    'egress.ip-permission.cidr': lambda g: [r['CidrIp'] for p in g['IpPermissionsEgress'] for r in p['IpRanges']],
    'egress.ip-permission.group-id': lambda g: [u['GroupId'] for p in g['IpPermissionsEgress']
                                                for u in p['UserIdGroupPairs']],
}
_RULE_FIELDS = {
    'group-id': lambda r: r['GroupId'],
    'security-group-rule-id': lambda r: r['SecurityGroupRuleId'],
}


@action('CreateSecurityGroup')
def create_security_group(ctx, args):
    for required in ('GroupName', 'Description'):
        if not args.get(required):
            raise EC2Error('MissingParameter', f'The request must contain the parameter {required}')
    tags = requested_tags(args.get('TagSpecifications'), 'security-group')
    group_id = ctx.cloud.security_groups.create(ctx.account_id, args['GroupName'], args['Description'],
                                                args.get('VpcId'))
    if tags:
        ctx.cloud.tags.create(ctx.account_id, [group_id], tags)
    return {'GroupId': group_id, 'Tags': tag_list(dict(tags)),
            'SecurityGroupArn': _arn(ctx, ctx.account_id, group_id)}


@action('DeleteSecurityGroup')
def delete_security_group(ctx, args):
    group_id = ctx.cloud.security_groups.delete(ctx.account_id, args.get('GroupId'), args.get('GroupName'))
    ctx.cloud.tags.forget([group_id])
    return {'Return': True, 'GroupId': group_id}


@action('DescribeSecurityGroups')
def describe_security_groups(ctx, args):
    groups = ctx.cloud.security_groups.describe(ctx.account_id, args.get('GroupIds'), args.get('GroupNames'))
    tags = ctx.cloud.tags.tags_of([group.group_id for group in groups])
    page, token = filtered_page(args, [_group_shape(ctx, group, tags.get(group.group_id)) for group in groups],
                                _GROUP_FIELDS, 'GroupId', 'GroupIds')
    return {'SecurityGroups': page, 'NextToken': token}


@action('DescribeSecurityGroupRules')
def describe_security_group_rules(ctx, args):
    rules = ctx.cloud.security_groups.rules(ctx.account_id, rule_ids=args.get('SecurityGroupRuleIds'))
    page, token = filtered_page(args, [_rule_shape(rule) for rule in rules], _RULE_FIELDS, 'SecurityGroupRuleId',
                                'SecurityGroupRuleIds')
    return {'SecurityGroupRules': page, 'NextToken': token}


@action('AuthorizeSecurityGroupIngress')
def authorize_security_group_ingress(ctx, args):
    return _authorize(ctx, args, egress=False)


@action('AuthorizeSecurityGroupEgress')
def authorize_security_group_egress(ctx, args):
    return _authorize(ctx, args, egress=True)


@action('RevokeSecurityGroupIngress')
def revoke_security_group_ingress(ctx, args):
    return _revoke(ctx, args, egress=False)


@action('RevokeSecurityGroupEgress')
def revoke_security_group_egress(ctx, args):
    return _revoke(ctx, args, egress=True)


@action('ModifySecurityGroupRules')
def modify_security_group_rules(ctx, args):
    if not args.get('GroupId'):
        raise EC2Error('MissingParameter', 'The request must contain the parameter GroupId')
    changes = []
    for entry in args.get('SecurityGroupRules') or ():
        rule_id, wanted = entry.get('SecurityGroupRuleId'), entry.get('SecurityGroupRule') or {}
        if not rule_id or not wanted:
            raise EC2Error('MissingParameter', 'Each rule needs SecurityGroupRuleId and SecurityGroupRule')
        if wanted.get('CidrIpv6') or wanted.get('PrefixListId'):
            raise EC2Error('UnsupportedOperation', 'IPv6 ranges and prefix lists are not offered here.')
        changes.append((rule_id, permission(wanted.get('IpProtocol'), wanted.get('FromPort'), wanted.get('ToPort'),
                                            cidr=wanted.get('CidrIpv4'), peer_group_id=wanted.get('ReferencedGroupId'),
                                            description=wanted.get('Description'))))
    if not changes:
        raise EC2Error('MissingParameter', 'The request must contain the parameter SecurityGroupRule')
    ctx.cloud.security_groups.modify_rules(ctx.account_id, args['GroupId'], changes)
    return {'Return': True}


@action('UpdateSecurityGroupRuleDescriptionsIngress')
def update_security_group_rule_descriptions_ingress(ctx, args):
    return _describe_rules(ctx, args, egress=False)


@action('UpdateSecurityGroupRuleDescriptionsEgress')
def update_security_group_rule_descriptions_egress(ctx, args):
    return _describe_rules(ctx, args, egress=True)


def _describe_rules(ctx, args, egress):
    by_rule_id = {}
    for entry in args.get('SecurityGroupRuleDescriptions') or ():
        if not entry.get('SecurityGroupRuleId'):
            raise EC2Error('MissingParameter', 'Each description needs SecurityGroupRuleId')
        by_rule_id[entry['SecurityGroupRuleId']] = entry.get('Description') or ''
    permissions = _permissions(args) if args.get('IpPermissions') or not by_rule_id else []
    ctx.cloud.security_groups.describe_rules(ctx.account_id, egress, args.get('GroupId'), args.get('GroupName'),
                                             permissions, by_rule_id)
    return {'Return': True}


def _authorize(ctx, args, egress):
    if args.get('TagSpecifications'):
        raise EC2Error('UnsupportedOperation', 'Rules cannot be tagged here.')
    rules = ctx.cloud.security_groups.authorize(ctx.account_id, _permissions(args), egress, args.get('GroupId'),
                                                args.get('GroupName'))
    return {'Return': True, 'SecurityGroupRules': [_rule_shape(rule) for rule in rules]}


def _revoke(ctx, args, egress):
    rule_ids = args.get('SecurityGroupRuleIds') or ()
    permissions = _permissions(args) if not rule_ids else []
    ctx.cloud.security_groups.revoke(ctx.account_id, egress, permissions, rule_ids, args.get('GroupId'),
                                     args.get('GroupName'))
    return {'Return': True}


def _permissions(args):
    """Every (protocol, ports, peer) the request names: IpPermissions, or the legacy flat parameters."""
    found = []
    for entry in args.get('IpPermissions') or ():
        if entry.get('Ipv6Ranges') or entry.get('PrefixListIds'):
            raise EC2Error('UnsupportedOperation', 'IPv6 ranges and prefix lists are not offered here.')
        ports = (entry.get('IpProtocol'), entry.get('FromPort'), entry.get('ToPort'))
        for peer in entry.get('IpRanges') or ():
            found.append(permission(*ports, cidr=peer.get('CidrIp'), description=peer.get('Description')))
        for pair in entry.get('UserIdGroupPairs') or ():
            found.append(permission(*ports, peer_group_id=pair.get('GroupId') or pair.get('GroupName'),
                                  description=pair.get('Description')))
        if not entry.get('IpRanges') and not entry.get('UserIdGroupPairs'):
            raise EC2Error('InvalidParameterValue', 'Each IpPermissions entry needs an IP range or a group.')
    flat = {name: args.get(name) for name in ('IpProtocol', 'FromPort', 'ToPort', 'CidrIp', 'SourceSecurityGroupName')}
    if any(value is not None for value in flat.values()):
        if found:
            raise EC2Error('InvalidParameterCombination', 'IpPermissions and the flat rule parameters cannot be '
                                                          'given together.')
        protocol = flat['IpProtocol'] or ('-1' if flat['SourceSecurityGroupName'] else None)
        found.append(permission(protocol, flat['FromPort'], flat['ToPort'], cidr=flat['CidrIp'],
                              peer_group_id=flat['SourceSecurityGroupName']))
    if not found:
        raise EC2Error('MissingParameter', 'The request must contain the parameter IpPermissions')
    return found


def _group_shape(ctx, group, tags):
    return {'GroupId': group.group_id, 'GroupName': group.name, 'Description': group.description,
            'OwnerId': group.owner, 'VpcId': group.vpc_id, 'SecurityGroupArn': _arn(ctx, group.owner, group.group_id),
            'IpPermissions': _aggregated([rule for rule in group.rules if not rule.egress]),
            'IpPermissionsEgress': _aggregated([rule for rule in group.rules if rule.egress]),
            'Tags': tag_list(tags)}


def _aggregated(rules):
    """EC2's IpPermissions: one entry per (protocol, ports), listing its CIDR ranges and groups."""
    entries = {}
    for rule in rules:
        p = rule.permission
        entry = entries.setdefault((p.protocol, p.from_port, p.to_port), {
            'IpProtocol': p.protocol, 'FromPort': p.from_port, 'ToPort': p.to_port, 'IpRanges': [],
            'UserIdGroupPairs': [], 'Ipv6Ranges': [], 'PrefixListIds': []})
        if p.cidr:
            entry['IpRanges'].append({'CidrIp': p.cidr, 'Description': p.description or None})
        else:
            entry['UserIdGroupPairs'].append({'GroupId': p.peer_group_id, 'UserId': rule.owner,
                                              'Description': p.description or None})
    return list(entries.values())


def _rule_shape(rule):
    p = rule.permission
    return {'SecurityGroupRuleId': rule.rule_id, 'GroupId': rule.group_id, 'GroupOwnerId': rule.owner,
            'IsEgress': rule.egress, 'IpProtocol': p.protocol,
            'FromPort': -1 if p.from_port is None else p.from_port, 'ToPort': -1 if p.to_port is None else p.to_port,
            'CidrIpv4': p.cidr, 'Description': p.description or None,
            'ReferencedGroupInfo': {'GroupId': p.peer_group_id, 'UserId': rule.owner} if p.peer_group_id else None}


def _arn(ctx, owner, group_id):
    return f'arn:aws:ec2:{ctx.cloud.config.region}:{owner}:security-group/{group_id}'
