"""Internet gateways and the main route table of each VPC."""
from ..errors import EC2Error
from ..filters import filtered_page
from . import action, refuse_unsupported
from .tags import requested_tags, tag_list

_GATEWAY_FIELDS = {
    'internet-gateway-id': lambda g: g['InternetGatewayId'],
    'owner-id': lambda g: g['OwnerId'],
    'attachment.vpc-id': lambda g: [a['VpcId'] for a in g['Attachments']],
    'attachment.state': lambda g: [a['State'] for a in g['Attachments']],
}
_TABLE_FIELDS = {
    'route-table-id': lambda t: t['RouteTableId'],
    'vpc-id': lambda t: t['VpcId'],
    'owner-id': lambda t: t['OwnerId'],
    'association.main': lambda t: [a['Main'] for a in t['Associations']],
    'association.route-table-association-id': lambda t: [a['RouteTableAssociationId'] for a in t['Associations']],
    'association.route-table-id': lambda t: [a['RouteTableId'] for a in t['Associations']],
    'route.destination-cidr-block': lambda t: [r['DestinationCidrBlock'] for r in t['Routes']],
    'route.gateway-id': lambda t: [r['GatewayId'] for r in t['Routes']],
    'route.origin': lambda t: [r['Origin'] for r in t['Routes']],
    'route.state': lambda t: [r['State'] for r in t['Routes']],
}


@action('CreateInternetGateway')
def create_internet_gateway(ctx, args):
    tags = requested_tags(args.get('TagSpecifications'), 'internet-gateway')
    gateway = ctx.cloud.gateways.create(ctx.account_id)
    if tags:
        ctx.cloud.tags.create(ctx.account_id, [gateway.gateway_id], tags)
    return {'InternetGateway': _gateway_shape(gateway, dict(tags))}


@action('DeleteInternetGateway')
def delete_internet_gateway(ctx, args):
    ctx.cloud.gateways.delete(ctx.account_id, args['InternetGatewayId'])
    ctx.cloud.tags.forget([args['InternetGatewayId']])
    return {}


@action('AttachInternetGateway')
def attach_internet_gateway(ctx, args):
    ctx.cloud.gateways.attach(ctx.account_id, args['InternetGatewayId'], args['VpcId'])
    return {}


@action('DetachInternetGateway')
def detach_internet_gateway(ctx, args):
    ctx.cloud.gateways.detach(ctx.account_id, args['InternetGatewayId'], args['VpcId'])
    return {}


@action('DescribeInternetGateways')
def describe_internet_gateways(ctx, args):
    ctx.cloud.vpcs.default_vpc(ctx.account_id)      # its gateway is there from the first look
    gateways = ctx.cloud.gateways.describe(ctx.account_id, args.get('InternetGatewayIds'))
    tags = ctx.cloud.tags.tags_of([gateway.gateway_id for gateway in gateways])
    page, token = filtered_page(args, [_gateway_shape(gateway, tags.get(gateway.gateway_id)) for gateway in gateways],
                                _GATEWAY_FIELDS, 'InternetGatewayId', 'InternetGatewayIds')
    return {'InternetGateways': page, 'NextToken': token}


@action('DescribeRouteTables')
def describe_route_tables(ctx, args):
    ctx.cloud.vpcs.default_vpc(ctx.account_id)
    tables = ctx.cloud.gateways.route_tables(ctx.account_id, args.get('RouteTableIds'))
    page, token = filtered_page(args, [_table_shape(table) for table in tables], _TABLE_FIELDS, 'RouteTableId',
                                'RouteTableIds')
    return {'RouteTables': page, 'NextToken': token}


@action('CreateRoute')
def create_route(ctx, args):
    refuse_unsupported(args, ('RouteTableId', 'DestinationCidrBlock', 'GatewayId'), 'CreateRoute')
    if not args.get('DestinationCidrBlock'):
        raise EC2Error('MissingParameter', 'The request must contain the parameter DestinationCidrBlock')
    ctx.cloud.gateways.create_route(ctx.account_id, args['RouteTableId'], args['DestinationCidrBlock'],
                                    args.get('GatewayId'))
    return {'Return': True}


@action('DeleteRoute')
def delete_route(ctx, args):
    refuse_unsupported(args, ('RouteTableId', 'DestinationCidrBlock'), 'DeleteRoute')
    if not args.get('DestinationCidrBlock'):
        raise EC2Error('MissingParameter', 'The request must contain the parameter DestinationCidrBlock')
    ctx.cloud.gateways.delete_route(ctx.account_id, args['RouteTableId'], args['DestinationCidrBlock'])
    return {}


def _gateway_shape(gateway, tags):
    return {'InternetGatewayId': gateway.gateway_id, 'OwnerId': gateway.owner,
            'Attachments': [{'VpcId': gateway.vpc_id, 'State': 'available'}] if gateway.vpc_id else [],
            'Tags': tag_list(tags)}


def _table_shape(table):
    routes = [{'DestinationCidrBlock': table.cidr, 'GatewayId': 'local', 'Origin': 'CreateRouteTable',
               'State': 'active'}]
    if table.internet_route:
        routes.append({'DestinationCidrBlock': '0.0.0.0/0', 'GatewayId': table.gateway_id, 'Origin': 'CreateRoute',
                       'State': 'active'})
    return {
        'RouteTableId': table.route_table_id,
        'VpcId': table.vpc_id,
        'OwnerId': table.owner,
        'Routes': routes,
        # The one table of the VPC is its main one, so every subnet uses it.
        'Associations': [{'Main': True, 'RouteTableAssociationId': f'rtbassoc-{table.route_table_id[4:]}',
                          'RouteTableId': table.route_table_id, 'AssociationState': {'State': 'associated'}}],
        'PropagatingVgws': [],
        'Tags': [],
    }
