"""DescribeAccountAttributes: what the account may do, which clients and configuration tools ask
first. Limits are the account's quotas; every account is on the VPC platform, as new AWS accounts
are, with a default VPC made on first need (or 'none' once the account deleted it)."""
from ..errors import EC2Error
from . import action


@action('DescribeAccountAttributes')
def describe_account_attributes(ctx, args):
    quotas, _usage = ctx.cloud.quotas.of(ctx.account_id)
    default_vpc = ctx.cloud.vpcs.default_vpc(ctx.account_id)
    attributes = {
        'supported-platforms': ['VPC'],
        'default-vpc': [default_vpc.vpc_id if default_vpc else 'none'],
        'max-instances': [str(quotas.instances)],
        'vpc-max-security-groups-per-interface': [str(ctx.cloud.config.security_groups.groups_per_interface)],
        'max-elastic-ips': [str(quotas.elastic_ips)],
        'vpc-max-elastic-ips': [str(quotas.elastic_ips)],
    }
    names = args.get('AttributeNames') or list(attributes)
    unknown = [name for name in names if name not in attributes]
    if unknown:
        raise EC2Error('InvalidParameterValue',
                       f'Value ({unknown[0]}) for parameter attributeName is invalid. Valid values are: '
                       f'{", ".join(attributes)}')
    return {'AccountAttributes': [
        {'AttributeName': name, 'AttributeValues': [{'AttributeValue': value} for value in attributes[name]]}
        for name in dict.fromkeys(names)]}
