"""[images] limits: read from reservoir.ini (the state directory's copy wins), then the environment."""
import pytest

from backend.config import ConfigError, load_config
from backend.image_lifetimes import StorageLimits, load_limits, parse_size

GIB = 1024 ** 3


@pytest.fixture
def config(tmp_path):
    return load_config({'RESERVOIR_HOME': str(tmp_path)})


def test_the_shipped_defaults(config):
    limits = load_limits(config, environ={})
    assert limits == StorageLimits(max_image_size=20 * GIB, max_virtual_size=2048 * GIB,
                                   account_quota=100 * GIB, upload_expiry_hours=24.0)


def test_the_state_directory_and_the_environment_override(config):
    (config.home / 'reservoir.ini').write_text('[images]\naccount_quota = 5G\nmax_image_size = 512M\n')
    limits = load_limits(config, environ={'RESERVOIR_IMAGES_MAX_IMAGE_SIZE': '1G',
                                          'RESERVOIR_IMAGES_UPLOAD_EXPIRY_HOURS': '0.5'})
    assert (limits.account_quota, limits.max_image_size, limits.upload_expiry_hours) == (5 * GIB, GIB, 0.5)


@pytest.mark.parametrize('name, value', [('account_quota', 'lots'), ('max_image_size', '0'),
                                         ('upload_expiry_hours', 'soon')])
def test_bad_values_are_configuration_errors(config, name, value):
    with pytest.raises(ConfigError, match=f'\\[images\\] {name}'):
        load_limits(config, environ={f'RESERVOIR_IMAGES_{name.upper()}': value})


@pytest.mark.parametrize('text, size', [('1048576', 1 << 20), ('512M', 512 << 20), ('20G', 20 << 30),
                                        ('2T', 2 << 40), ('64 KiB', 64 << 10), ('3gb', 3 << 30)])
def test_sizes_take_binary_suffixes(text, size):
    assert parse_size(text) == size
