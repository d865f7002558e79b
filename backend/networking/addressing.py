"""Address arithmetic for virtual networks: usable ranges, round-robin picks, MACs from IPs.

Freed addresses are not reused at once (stale ARP and DHCP caches bite): picks go round-robin
from a cursor that the network keeps in the database.
"""
import ipaddress

from ..errors import CapacityError, InvalidValue


def parse_network(cidr):
    try:
        network = ipaddress.IPv4Network(cidr, strict=True)
    except ValueError as error:
        raise InvalidValue(f"'{cidr}' is not a valid IPv4 network: {error}") from None
    if network.prefixlen > 30:
        raise InvalidValue(f"'{cidr}' is too small: a network needs at least a /30")
    return network


def usable_range(network):
    """(first, last) host addresses as integers: network and broadcast addresses excluded."""
    return int(network.network_address) + 1, int(network.broadcast_address) - 1


def mac_for(ip):
    """02:00 followed by the IPv4 address, so a guest can derive its address from its MAC."""
    octets = ipaddress.IPv4Address(ip).packed
    return '02:00:' + ':'.join(f'{octet:02x}' for octet in octets)


def ip_from_mac(mac):
    parts = mac.split(':')
    return str(ipaddress.IPv4Address(bytes(int(part, 16) for part in parts[2:])))


def pick(first, last, cursor, taken, count, label='network'):
    """Pick `count` free addresses (ints) round-robin starting after `cursor`.

    `taken` is a set of ints already leased or reserved (gateway, DNS). Returns (addresses, new
    cursor). Raises CapacityError when fewer than `count` are free.
    """
    in_range = {address for address in taken if first <= address <= last}
    return pick_windowed(first, last, cursor, count,
                         lambda low, high: {a for a in in_range if low <= a <= high}, len(in_range), label)


def pick_windowed(first, last, cursor, count, taken_between, taken_total, label='network'):
    """`pick`, asking only for the taken addresses of the windows it walks through.

    On a large network with many leases this reads a few rows near the cursor instead of all.
    """
    if count > (last - first + 1) - taken_total:
        raise CapacityError('InsufficientAddressCapacity',
                            f'The {label} has not enough free addresses for {count} more instance(s).')
    address = cursor + 1 if first <= cursor < last else first
    window = max(64, 2 * count)
    picked = []
    while len(picked) < count:
        high = min(last, address + window - 1)
        taken = taken_between(address, high)
        for candidate in range(address, high + 1):
            if candidate not in taken:
                picked.append(candidate)
                if len(picked) == count:
                    break
        address = high + 1 if high < last else first
    return picked, (picked[-1] if picked else cursor)


def to_text(address):
    return str(ipaddress.IPv4Address(address))


def to_int(text):
    return int(ipaddress.IPv4Address(text))
