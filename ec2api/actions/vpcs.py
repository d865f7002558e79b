"""VPCs: CreateVpc, DeleteVpc, DescribeVpcs, their DNS attributes, and CreateDefaultVpc."""
from ..errors import EC2Error
from ..filters import filtered_page
from . import action, refuse_unsupported
from .tags import requested_tags, tag_list

_FIELDS = {
    'vpc-id': lambda v: v['VpcId'],
    'cidr': lambda v: v['CidrBlock'],
    'cidr-block-association.cidr-block': lambda v: [a['CidrBlock'] for a in v['CidrBlockAssociationSet']],
    'cidr-block-association.association-id': lambda v: [a['AssociationId'] for a in v['CidrBlockAssociationSet']],
    'cidr-block-association.state': lambda v: [a['CidrBlockState']['State'] for a in v['CidrBlockAssociationSet']],
    'dhcp-options-id': lambda v: v['DhcpOptionsId'],
    'is-default': lambda v: v['IsDefault'],
    'owner-id': lambda v: v['OwnerId'],
    'state': lambda v: v['State'],
}
_ATTRIBUTE_PARAMETERS = {'EnableDnsSupport': 'enableDnsSupport', 'EnableDnsHostnames': 'enableDnsHostnames'}


@action('CreateVpc')
def create_vpc(ctx, args):
    refuse_unsupported({k: v for k, v in args.items() if not (k == 'InstanceTenancy' and v == 'default')},
                       ('CidrBlock', 'TagSpecifications', 'AmazonProvidedIpv6CidrBlock'), 'CreateVpc')
    if args.get('AmazonProvidedIpv6CidrBlock'):
        raise EC2Error('UnsupportedOperation', 'IPv6 blocks are not offered here.')
    if not args.get('CidrBlock'):
        raise EC2Error('MissingParameter', 'The request must contain the parameter CidrBlock')
    tags = requested_tags(args.get('TagSpecifications'), 'vpc')
    vpc = ctx.cloud.vpcs.create(ctx.account_id, args['CidrBlock'])
    if tags:
        ctx.cloud.tags.create(ctx.account_id, [vpc.vpc_id], tags)
    return {'Vpc': vpc_shape(vpc, dict(tags))}


@action('CreateDefaultVpc')
def create_default_vpc(ctx, args):
    vpc = ctx.cloud.vpcs.create_default(ctx.account_id)
    return {'Vpc': vpc_shape(vpc, ctx.cloud.tags.tags_of([vpc.vpc_id]).get(vpc.vpc_id))}


@action('DeleteVpc')
def delete_vpc(ctx, args):
    ctx.cloud.vpcs.delete(ctx.account_id, args['VpcId'])
    return {}


@action('DescribeVpcs')
def describe_vpcs(ctx, args):
    vpcs = ctx.cloud.vpcs.describe(ctx.account_id, args.get('VpcIds'))
    tags = ctx.cloud.tags.tags_of([vpc.vpc_id for vpc in vpcs])
    page, token = filtered_page(args, [vpc_shape(vpc, tags.get(vpc.vpc_id)) for vpc in vpcs], _FIELDS, 'VpcId',
                                'VpcIds')
    return {'Vpcs': page, 'NextToken': token}


@action('DescribeVpcAttribute')
def describe_vpc_attribute(ctx, args):
    name = args['Attribute']
    value = ctx.cloud.vpcs.attribute(ctx.account_id, args['VpcId'], name)
    parameter = {wire: parameter for parameter, wire in _ATTRIBUTE_PARAMETERS.items()}[name]
    return {'VpcId': args['VpcId'], parameter: {'Value': value}}


@action('ModifyVpcAttribute')
def modify_vpc_attribute(ctx, args):
    given = [parameter for parameter in _ATTRIBUTE_PARAMETERS if parameter in args]
    refuse_unsupported(args, ('VpcId', *_ATTRIBUTE_PARAMETERS), 'ModifyVpcAttribute')
    if len(given) != 1:
        raise EC2Error('InvalidParameterCombination', 'Exactly one attribute can be modified at a time.')
    (parameter,) = given
    value = (args[parameter] or {}).get('Value')
    if value is None:
        raise EC2Error('MissingParameter', f'The request must contain the parameter {parameter}.Value')
    ctx.cloud.vpcs.modify_attribute(ctx.account_id, args['VpcId'], _ATTRIBUTE_PARAMETERS[parameter], value)
    return {}


def vpc_shape(vpc, tags):
    return {
        'VpcId': vpc.vpc_id,
        'OwnerId': vpc.owner,
        'CidrBlock': vpc.cidr,
        'State': vpc.state,
        'DhcpOptionsId': 'default',
        'InstanceTenancy': 'default',
        'IsDefault': vpc.is_default,
        # The VPC's one block; its association id is derived from the VPC's, as it never changes.
        'CidrBlockAssociationSet': [{'AssociationId': f'vpc-cidr-assoc-{vpc.vpc_id[4:]}', 'CidrBlock': vpc.cidr,
                                     'CidrBlockState': {'State': 'associated'}}],
        'Tags': tag_list(tags),
    }
