import logging

import pytest

from backend.errors import CapacityError
from backend.scheduler import HostView, Request, place


def hosts(count=3, cpus=4, memory=1024):
    return [HostView(index, f'h{index}', 'z1', cpus, memory) for index in range(count)]


def test_striping_spreads_and_packing_fills():
    assert sorted(place(hosts(), Request(3, 3, 1, 256), 'striping').host_ids) == [0, 1, 2]
    assert place(hosts(), Request(3, 3, 1, 256), 'packing').host_ids == [0, 0, 0]


def test_launches_as_many_as_fit_between_min_and_max():
    placement = place(hosts(2, cpus=2), Request(1, 10, 1, 128))
    assert len(placement.host_ids) == 4


def test_min_count_that_cannot_be_placed_says_why_without_naming_hosts(caplog):
    pool = hosts(2)
    pool[0].enabled = False
    pool[1].used_memory_mib = 1000
    with caplog.at_level(logging.INFO, logger='backend.scheduler'), pytest.raises(CapacityError) as raised:
        place(pool, Request(1, 1, 1, 256))
    message = raised.value.message
    assert raised.value.code == 'InsufficientInstanceCapacity'
    assert 'disabled (1)' in message and 'not enough free memory (1)' in message and 'h0' not in message
    # Administrators read each host's reason in the log.
    assert any('h0: disabled' in record.getMessage() and 'h1: memory' in record.getMessage()
               for record in caplog.records)


def test_zone_and_host_requirements():
    pool = hosts(3)
    pool[2].zone = 'z2'
    assert place(pool, Request(2, 2, 1, 128, zone='z2')).host_ids == [2, 2]
    assert place(hosts(3), Request(1, 1, 1, 128, host_id=1)).host_ids == [1]


def test_peer_clouds_come_after_local_hosts_and_say_why_they_cannot_help():
    pool = hosts(1, cpus=1) + [HostView(7, 'partner', 'z1', 8, 8192, peer=True)]
    assert place(pool, Request(3, 3, 1, 128)).host_ids == [0, 7, 7]
    pool = hosts(1, cpus=1) + [HostView(7, 'partner', 'z1', 8, 8192, peer=True)]
    with pytest.raises(CapacityError) as raised:
        place(pool, Request(2, 2, 1, 128, refused={7: 'peer cloud cannot run it: no image'}))
    assert 'peer cloud cannot run it (1)' in raised.value.message
    full = hosts(1, cpus=1) + [HostView(7, 'partner', 'z1', 1, 8192, used_cpus=1, peer=True)]
    with pytest.raises(CapacityError) as raised:
        place(full, Request(2, 2, 1, 128))
    assert 'peer cloud full (1)' in raised.value.message


def test_a_zone_only_peer_takes_only_launches_into_its_zone():
    def pool():
        return hosts(1, cpus=1) + [HostView(7, 'partner', 'zp', 8, 8192, peer=True, zone_only=True)]
    with pytest.raises(CapacityError) as raised:
        place(pool(), Request(2, 2, 1, 128))
    assert 'peer cloud cannot run it (1)' in raised.value.message
    assert place(pool(), Request(2, 2, 1, 128, zone='zp')).host_ids == [7, 7]


def test_cluster_group_shares_a_host_and_spread_group_never_does():
    assert len(set(place(hosts(3), Request(3, 3, 1, 128, group_strategy='cluster')).host_ids)) == 1
    spread = place(hosts(3), Request(2, 3, 1, 128, group_strategy='spread', group_hosts=frozenset({0})))
    assert sorted(spread.host_ids) == [1, 2]


def test_capacity_is_never_overcommitted():
    pool = hosts(5, cpus=3, memory=700)
    placed = place(pool, Request(1, 100, 1, 256)).host_ids
    for host in pool:
        assert placed.count(host.host_id) == 2   # memory allows 2 of 256 in 700
