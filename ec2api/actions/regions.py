"""Regions and availability zones, as configured."""
from ..filters import filter_items
from . import action


@action('DescribeRegions')
def describe_regions(ctx, args):
    regions = [{'RegionName': name, 'Endpoint': ctx.host, 'OptInStatus': 'opt-in-not-required'}
               for name in ctx.cloud.catalog.regions()]
    regions = _only_named(regions, 'RegionName', args.get('RegionNames'))
    fields = {'region-name': lambda r: r['RegionName'], 'endpoint': lambda r: r['Endpoint'],
              'opt-in-status': lambda r: r['OptInStatus']}
    return {'Regions': filter_items(regions, args.get('Filters'), fields)}


@action('DescribeAvailabilityZones')
def describe_availability_zones(ctx, args):
    region = ctx.cloud.config.region
    zones = [_zone(region, index, name) for index, name in enumerate(ctx.cloud.catalog.zones(), 1)]
    zones = _only_named(zones, 'ZoneName', args.get('ZoneNames'))
    zones = _only_named(zones, 'ZoneId', args.get('ZoneIds'))
    fields = {'zone-name': lambda z: z['ZoneName'], 'zone-id': lambda z: z['ZoneId'],
              'region-name': lambda z: z['RegionName'], 'state': lambda z: z['State'],
              'zone-type': lambda z: z['ZoneType'], 'group-name': lambda z: z['GroupName'],
              'opt-in-status': lambda z: z['OptInStatus']}
    return {'AvailabilityZones': filter_items(zones, args.get('Filters'), fields)}


def _zone(region, index, name):
    return {'ZoneName': name, 'ZoneId': f'{region}-az{index}', 'State': 'available',
            'RegionName': region, 'ZoneType': 'availability-zone', 'GroupName': region,
            'OptInStatus': 'opt-in-not-required', 'Messages': []}


def _only_named(items, key, names):
    if not names:
        return items
    return [item for item in items if item[key] in set(names)]
