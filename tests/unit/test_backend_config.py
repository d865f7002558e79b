import pytest

from backend.config import DEFAULT_CONF_DIR, ConfigError, load_config, parse_listen


@pytest.fixture
def environ(tmp_path):
    return {'RESERVOIR_HOME': str(tmp_path / 'home')}


def test_defaults_come_from_the_project_conf_dir(environ, tmp_path):
    config = load_config(environ)
    assert config.home == tmp_path / 'home'
    assert config.conf_dir == DEFAULT_CONF_DIR
    assert config.database_url == f"sqlite:///{tmp_path / 'home' / 'reservoir.db'}"
    assert config.listen == '127.0.0.1:8773'
    assert config.region == 'reservoir-1'
    assert config.zones == ('reservoir-1a',)
    assert config.endpoint_url == 'http://127.0.0.1:8773'


def test_home_defaults_to_dot_reservoir(monkeypatch, tmp_path):
    monkeypatch.setenv('HOME', str(tmp_path))
    assert load_config({}).home == tmp_path / '.reservoir'


def test_instance_types_are_small_and_complete(environ):
    types = load_config(environ).instance_types
    assert {'t1.micro', 'm1.small', 'm1.medium', 'm1.large', 't2.nano', 't2.micro', 't2.small',
            't2.medium', 'c1.medium'} <= set(types)
    micro = types['t1.micro']
    assert (micro.name, micro.vcpus, micro.memory_mib, micro.architecture) == ('t1.micro', 1, 128, 'x86_64')
    assert types['m1.small'].memory_mib == 256
    assert all(kind.disk_gib > 0 for kind in types.values())


def test_home_ini_overrides_single_values(environ, tmp_path):
    home = tmp_path / 'home'
    home.mkdir()
    (home / 'reservoir.ini').write_text('[cloud]\nzones = z-a, z-b\n[server]\nlisten = 0.0.0.0:9000\n')
    (home / 'instance-types.ini').write_text('[x1.huge]\nvcpus = 4\nmemory_mib = 4096\ndisk_gib = 20\n')
    config = load_config(environ)
    assert config.zones == ('z-a', 'z-b')
    assert config.region == 'reservoir-1'  # not overridden: still the default
    assert config.listen == '0.0.0.0:9000'
    assert config.endpoint_url == 'http://127.0.0.1:9000'
    assert config.instance_types['x1.huge'].vcpus == 4
    assert 't1.micro' in config.instance_types


def test_database_url_from_ini_then_environment(environ, tmp_path):
    home = tmp_path / 'home'
    home.mkdir()
    (home / 'reservoir.ini').write_text('[database]\nurl = postgresql+psycopg://a@b/c\n')
    assert load_config(environ).database_url == 'postgresql+psycopg://a@b/c'
    environ['RESERVOIR_DATABASE_URL'] = 'sqlite:////elsewhere.db'
    assert load_config(environ).database_url == 'sqlite:////elsewhere.db'


def test_conf_dir_from_environment(environ, tmp_path):
    conf = tmp_path / 'conf'
    conf.mkdir()
    (conf / 'reservoir.ini').write_text('[cloud]\nregion = r9\nzones = r9a\nendpoint_host = cloud.example\n')
    (conf / 'instance-types.ini').write_text('[tiny]\nvcpus = 1\nmemory_mib = 64\ndisk_gib = 1\n')
    config = load_config({**environ, 'RESERVOIR_CONF': str(conf)})
    assert (config.region, config.zones, list(config.instance_types)) == ('r9', ('r9a',), ['tiny'])
    assert config.endpoint_url == 'http://cloud.example:8773'


@pytest.mark.parametrize('content, complaint', [
    ('[bad]\nvcpus = 0\nmemory_mib = 64\ndisk_gib = 1\n', 'vcpus'),
    ('[bad]\nvcpus = 1\nmemory_mib = lots\ndisk_gib = 1\n', 'memory_mib'),
    ('[bad]\nvcpus = 1\nmemory_mib = 64\n', 'disk_gib'),
    ('[bad]\nvcpus = 1\nmemory_mib = 64\ndisk_gib = 1\narchitecture = sparc\n', 'architecture'),
])
def test_malformed_instance_types_are_refused(environ, tmp_path, content, complaint):
    home = tmp_path / 'home'
    home.mkdir()
    (home / 'instance-types.ini').write_text(content)
    with pytest.raises(ConfigError, match=complaint):
        load_config(environ)


def test_missing_conf_file_is_reported(environ, tmp_path):
    with pytest.raises(ConfigError, match='missing'):
        load_config({**environ, 'RESERVOIR_CONF': str(tmp_path / 'nowhere')})


@pytest.mark.parametrize('text, expected', [
    ('127.0.0.1:8773', ('127.0.0.1', 8773)),
    ('[::1]:80', ('::1', 80)),
    ('example.org:65535', ('example.org', 65535)),
])
def test_parse_listen(text, expected):
    assert parse_listen(text) == expected


@pytest.mark.parametrize('text', ['8773', 'host:', 'host:0', 'host:70000', 'host:http'])
def test_parse_listen_refuses_malformed(text):
    with pytest.raises(ConfigError):
        parse_listen(text)


def test_the_host_prefix_names_what_the_installation_makes_on_a_machine(environ, tmp_path):
    assert load_config(environ).host_prefix == 'rsv'
    (tmp_path / 'home').mkdir()
    (tmp_path / 'home' / 'reservoir.ini').write_text('[cloud]\nhost_prefix = peer\n')
    names = load_config(environ).host_names
    assert names.prefix == 'peer' and names.domain('i-1') == 'peer-i-1' and names.installation == str(tmp_path / 'home')
    assert load_config({**environ, 'RESERVOIR_CLOUD_HOST_PREFIX': 'ab'}).host_prefix == 'ab'


@pytest.mark.parametrize('prefix, complaint', [('Rsv', 'lowercase'), ('toolong', '2 to 4'), ('r', '2 to 4'),
                                               ('rsv-', 'letters and digits'), ('ra1', 'tap devices')])
def test_a_host_prefix_that_cannot_name_interfaces_is_refused(environ, prefix, complaint):
    with pytest.raises(ConfigError, match=rf'\[cloud\] host_prefix .*{complaint}'):
        load_config({**environ, 'RESERVOIR_CLOUD_HOST_PREFIX': prefix})


def test_the_monitor_keeps_a_day_of_minute_samples_unless_told_otherwise(environ):
    settings = load_config(environ).monitor
    assert (settings.sample_interval_seconds, settings.history_seconds) == (60, 86400)
    changed = load_config({**environ, 'RESERVOIR_MONITOR_SAMPLE_INTERVAL_SECONDS': '5',
                           'RESERVOIR_MONITOR_HISTORY_SECONDS': '600'}).monitor
    assert (changed.sample_interval_seconds, changed.history_seconds) == (5, 600)


@pytest.mark.parametrize('interval, window', [('0', '600'), ('60', '30'), ('x', '600')])
def test_a_sampling_interval_or_window_that_makes_no_sense_is_refused(environ, interval, window):
    with pytest.raises(ConfigError, match=r'\[monitor\]'):
        load_config({**environ, 'RESERVOIR_MONITOR_SAMPLE_INTERVAL_SECONDS': interval,
                     'RESERVOIR_MONITOR_HISTORY_SECONDS': window})


@pytest.mark.parametrize('seconds', ['-1', '3601'])
def test_a_soap_clock_skew_outside_an_hour_is_refused(tmp_path, seconds):
    with pytest.raises(ConfigError, match='soap_clock_skew_seconds'):
        load_config({'RESERVOIR_HOME': str(tmp_path), 'RESERVOIR_SERVER_SOAP_CLOCK_SKEW_SECONDS': seconds})


def test_the_soap_clock_skew_defaults_to_five_minutes(tmp_path):
    assert load_config({'RESERVOIR_HOME': str(tmp_path)}).server.soap_clock_skew_seconds == 300
