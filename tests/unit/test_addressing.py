import pytest
from hypothesis import given, strategies as st

from backend.networking import addressing
from backend.errors import CapacityError, InvalidValue


def test_mac_is_02_00_plus_the_address_and_back():
    assert addressing.mac_for('10.0.0.5') == '02:00:0a:00:00:05'
    assert addressing.ip_from_mac('02:00:0a:00:00:05') == '10.0.0.5'


def test_a_slash_20_has_4094_usable_addresses():
    first, last = addressing.usable_range(addressing.parse_network('10.0.0.0/20'))
    assert last - first + 1 == 4094


def test_picks_go_round_robin_and_skip_taken_addresses():
    picked, cursor = addressing.pick(1, 10, cursor=3, taken={5}, count=3)
    assert picked == [4, 6, 7] and cursor == 7
    picked, cursor = addressing.pick(1, 10, cursor=9, taken=set(), count=3)
    assert picked == [10, 1, 2]


def test_a_freed_address_is_not_handed_out_again_at_once():
    picked, cursor = addressing.pick(1, 10, cursor=0, taken=set(), count=2)   # 1, 2
    again, _ = addressing.pick(1, 10, cursor=cursor, taken={2}, count=1)      # 1 was freed
    assert again == [3]


def test_exhaustion_is_a_clean_capacity_error():
    with pytest.raises(CapacityError):
        addressing.pick(1, 4, cursor=0, taken={1, 2}, count=3)


def test_bad_cidrs_are_refused():
    for cidr in ('10.0.0.1/20', 'nonsense', '10.0.0.0/31'):
        with pytest.raises(InvalidValue):
            addressing.parse_network(cidr)


@given(st.integers(0, 30), st.sets(st.integers(1, 30)), st.integers(0, 30))
def test_picks_are_free_distinct_and_in_range(cursor, taken, count):
    free = 30 - len(taken)
    if count > free:
        with pytest.raises(CapacityError):
            addressing.pick(1, 30, cursor, taken, count)
        return
    picked, _ = addressing.pick(1, 30, cursor, taken, count)
    assert len(set(picked)) == count and not set(picked) & taken
    assert all(1 <= address <= 30 for address in picked)


def test_windowed_picks_ask_only_about_windows_near_the_cursor():
    asked = []

    def taken_between(low, high):
        asked.append((low, high))
        return {5, 1000} & set(range(low, high + 1))
    picked, cursor = addressing.pick_windowed(1, 60000, 3, 3, taken_between, taken_total=2)
    assert picked == [4, 6, 7] and cursor == 7
    assert asked == [(4, 67)]
