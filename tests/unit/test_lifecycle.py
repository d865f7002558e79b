import pytest

from backend.errors import Conflict
from backend.lifecycle import FINAL_STATES, TRANSITIONS, State, can, capacity_change, ec2_state, next_state


def test_a_normal_life():
    state = State.PENDING
    for event in ('deployed', 'stop', 'stopped', 'start', 'deployed', 'reboot', 'rebooted',
                  'terminate', 'cleaned-up'):
        state = next_state(state, event)
    assert state is State.TERMINATED


@pytest.mark.parametrize('state, event', [('stopped', 'reboot'), ('terminated', 'start'),
                                          ('shutting-down', 'stop'), ('failed', 'start')])
def test_forbidden_transitions_are_incorrect_instance_state(state, event):
    assert not can(state, event)
    with pytest.raises(Conflict) as raised:
        next_state(state, event)
    assert raised.value.code == 'IncorrectInstanceState'


def test_host_loss_is_never_shown_as_terminated():
    assert next_state('running', 'host-lost') is State.IMPAIRED
    assert ec2_state(State.IMPAIRED)[0] != 'terminated'
    assert next_state('impaired', 'host-back') is State.RUNNING


def test_every_state_maps_to_an_ec2_name_and_final_states_have_no_way_back():
    for state in State:
        assert ec2_state(state)[0] in ('pending', 'running', 'stopping', 'stopped', 'shutting-down',
                                       'terminated')
    for (state, event), target in TRANSITIONS.items():
        if state in FINAL_STATES:
            assert target in FINAL_STATES, (state, event)


def test_capacity_is_taken_and_freed_once_by_the_table():
    # Terminating a stopped instance must not need (nor free again) capacity it no longer holds.
    assert next_state('stopped', 'terminate') is State.CLEANING_UP
    assert ec2_state(State.CLEANING_UP) == ('shutting-down', 32)
    assert capacity_change('running', 'stopped') == -1 and capacity_change('stopped', 'pending') == 1
    assert capacity_change('stopped', 'cleaning-up') == 0 and capacity_change('cleaning-up', 'terminated') == 0
    for (state, event), target in TRANSITIONS.items():
        assert capacity_change(state, target) in (-1, 0, 1)
