import dataclasses
import stat

import pytest

from backend.cloud import Cloud
from backend.config import load_config


@pytest.fixture
def config(tmp_path):
    return load_config({'RESERVOIR_HOME': str(tmp_path / 'state' / 'home')})


def test_catalog_reports_the_configuration(config):
    config = dataclasses.replace(config, region='lab-1', zones=('lab-1a', 'lab-1b'))
    with Cloud.open(config) as cloud:
        assert cloud.catalog.regions() == ['lab-1']
        assert cloud.catalog.zones() == ['lab-1a', 'lab-1b']
        types = cloud.catalog.instance_types()
        assert types == config.instance_types
        assert types['t1.micro'].memory_mib == 128
        types.clear()  # callers get a copy
        assert 't1.micro' in cloud.catalog.instance_types()


def test_open_creates_a_private_home_and_the_database(config):
    with Cloud.open(config) as cloud:
        assert cloud.config is config
        assert not cloud.users.any_users()
    assert stat.S_IMODE(config.home.stat().st_mode) == 0o700
    assert (config.home / 'reservoir.db').is_file()


def test_state_persists_across_opens(config):
    with Cloud.open(config) as cloud:
        created = cloud.users.create('alice')
    with Cloud.open(config) as cloud:
        assert cloud.users.secret_for(created.access_key_id).secret == created.secret_access_key
