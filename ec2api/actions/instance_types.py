"""Instance types from the configured catalogue, in AWS's shape and in Eucalyptus's.

libcloud's Eucalyptus driver reads `instanceTypeDetails` in the `http://msgs.eucalyptus.com/<v>`
namespace; it is added next to the AWS `instanceTypeSet`, which botocore ignores. Clients of API
versions older than AWS's DescribeInstanceTypes (2019) can only mean Eucalyptus's call: they get
that shape alone, since boto 2 reads every <item> of the answer as an instance type.
"""
from ..errors import EC2Error
from ..filters import filter_items
from ..renderer import escape
from . import Result, action

EUCALYPTUS_NAMESPACE = 'http://msgs.eucalyptus.com/3.3.0'
# The API version that carries AWS's DescribeInstanceTypes (every newer action keeps this version).
FIRST_AWS_VERSION = '2016-11-15'

_FIELDS = {
    'instance-type': lambda t: t['InstanceType'],
    'vcpu-info.default-vcpus': lambda t: t['VCpuInfo']['DefaultVCpus'],
    'memory-info.size-in-mib': lambda t: t['MemoryInfo']['SizeInMiB'],
    'processor-info.supported-architecture': lambda t: t['ProcessorInfo']['SupportedArchitectures'],
    'instance-storage-info.total-size-in-gb': lambda t: t['InstanceStorageInfo']['TotalSizeInGB'],
    'current-generation': lambda t: t['CurrentGeneration'],
}


@action('DescribeInstanceTypes')
def describe_instance_types(ctx, args):
    catalogue = ctx.cloud.catalog.instance_types()
    wanted = args.get('InstanceTypes')
    if wanted:
        unknown = sorted(set(wanted) - set(catalogue))
        if unknown:
            raise EC2Error('InvalidInstanceType', f"The following supplied instance types do not exist: [{', '.join(unknown)}]")
        catalogue = {name: catalogue[name] for name in wanted}
    types = [_aws_shape(kind) for kind in catalogue.values()]
    types = filter_items(types, args.get('Filters'), _FIELDS)
    eucalyptus = _eucalyptus_details(catalogue.values())
    if ctx.version and ctx.version < FIRST_AWS_VERSION:
        return Result({}, extra_xml=eucalyptus)
    return Result({'InstanceTypes': types}, extra_xml=eucalyptus)


def _aws_shape(kind):
    return {
        'InstanceType': kind.name,
        'CurrentGeneration': True,
        'SupportedUsageClasses': ['on-demand'],
        'SupportedRootDeviceTypes': ['ebs', 'instance-store'],
        'SupportedVirtualizationTypes': ['hvm', 'paravirtual'],
        'BareMetal': False,
        'Hypervisor': 'xen',
        'ProcessorInfo': {'SupportedArchitectures': [kind.architecture]},
        'VCpuInfo': {'DefaultVCpus': kind.vcpus, 'DefaultCores': kind.vcpus, 'DefaultThreadsPerCore': 1},
        'MemoryInfo': {'SizeInMiB': kind.memory_mib},
        'InstanceStorageSupported': True,
        'InstanceStorageInfo': {'TotalSizeInGB': kind.disk_gib,
                                'Disks': [{'SizeInGB': kind.disk_gib, 'Count': 1, 'Type': 'ssd'}]},
    }


def _eucalyptus_details(kinds):
    items = ''.join(
        f'<item><name>{escape(kind.name)}</name><cpu>{kind.vcpus}</cpu>'
        f'<disk>{kind.disk_gib}</disk><memory>{kind.memory_mib}</memory></item>'
        for kind in kinds)
    return f'<instanceTypeDetails xmlns="{EUCALYPTUS_NAMESPACE}">{items}</instanceTypeDetails>'
