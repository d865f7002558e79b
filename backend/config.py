"""Where Reservoir keeps its state, and the settings read from the INI files in `conf/`.

The state directory (RESERVOIR_HOME, `~/.reservoir` by default) holds the database, the vault key
and the image repository. The configuration directory (RESERVOIR_CONF, the project's `conf/` by
default) holds the defaults; a file of the same name in the state directory overrides them.
"""
import configparser
import dataclasses
import re
import os
from pathlib import Path

from .host_names import DEFAULT_PREFIX, HostNames, prefix_problem

DEFAULT_CONF_DIR = Path(__file__).resolve().parent.parent / 'conf'
MAIN_FILE = 'reservoir.ini'
INSTANCE_TYPES_FILE = 'instance-types.ini'
ARCHITECTURES = ('i386', 'x86_64', 'arm64')
# Listening on every address says nothing about the address clients should use.
_WILDCARD_HOSTS = ('', '0.0.0.0', '::')


class ConfigError(ValueError):
    """A setting is missing or malformed."""


@dataclasses.dataclass(frozen=True)
class InstanceType:
    name: str
    vcpus: int
    memory_mib: int
    disk_gib: int
    architecture: str


@dataclasses.dataclass(frozen=True)
class ComputeSettings:
    """How the VM manager places, runs and watches instances ([compute] in reservoir.ini)."""
    scheduler_policy: str = 'striping'
    public_pool: str = '192.0.2.0/24'
    worker_threads: int = 4
    poll_seconds: float = 0.5
    monitor_seconds: float = 5.0
    deploy_attempts: int = 3
    stop_timeout_seconds: float = 60.0
    # A host unreachable this long is fenced (if it has a fence command), and its instances whose
    # disks are on shared storage start again elsewhere.
    fence_after_seconds: float = 60.0
    terminated_retention_seconds: float = 3600.0
    max_launch: int = 1000
    # Hosts one worker process drives at most (0: no limit); set when several workers share a database.
    hosts_per_worker: int = 0
    # Host interface whose VLAN subinterfaces join the bridges of networks that have a VLAN id.
    vlan_uplink: str = ''
    # Per-account request rate limits: burst and refill per second, by kind of action (0: off).
    rate_limit_mutate: str = '200,5'
    rate_limit_describe: str = '100,20'
    rate_limits: bool = False


@dataclasses.dataclass(frozen=True)
class ServerSettings:
    """How the endpoint treats slow clients ([server] in reservoir.ini)."""
    # A Query API body must arrive whole within this; an upload may pause this long between chunks.
    body_timeout_seconds: float = 30.0
    upload_idle_seconds: float = 30.0
    # Uploads run on threads of their own: this many at once, and this many per client address.
    upload_threads: int = 4
    uploads_per_client: int = 2
    # The path a reverse proxy publishes this endpoint under and strips before passing requests on
    # (e.g. /cloud): clients sign it, so signatures are checked with it.
    path_prefix: str = ''
    # How far a SOAP sender's clock may be off, either way, for its WS-Security Timestamp.
    soap_clock_skew_seconds: float = 300.0


@dataclasses.dataclass(frozen=True)
class MonitorSettings:
    """What the monitor keeps for administrators to look back on ([monitor] in reservoir.ini)."""
    # A capacity sample of each host at most this often, at the start of each such interval.
    sample_interval_seconds: float = 60.0
    # Samples, placement failures and launch counts older than this are deleted.
    history_seconds: float = 86400.0


@dataclasses.dataclass(frozen=True)
class QuotaSettings:
    """What one account may hold at once by default ([quotas] in reservoir.ini)."""
    instances: int = 20
    vcpus: int = 64
    elastic_ips: int = 5
    images: int = 100


@dataclasses.dataclass(frozen=True)
class SecurityGroupLimits:
    """Limits of security groups ([security_groups] in reservoir.ini), AWS's defaults."""
    groups_per_vpc: int = 2500
    rules_per_group: int = 60            # each way: ingress and egress apart
    groups_per_interface: int = 5
    # The installation's nftables tables are named <table_prefix>_<digest of the state directory>.
    table_prefix: str = 'reservoir'
    # Simulated hosts write the tables they would hold to <state>/firewall/ (for tests and benchmarks).
    simulated_host_rules: bool = False


@dataclasses.dataclass(frozen=True)
class Config:
    home: Path
    conf_dir: Path
    database_url: str
    listen: str
    region: str
    zones: tuple
    instance_types: dict
    endpoint_host: str = ''
    # What the names of everything the installation makes on a machine start with (host_names).
    host_prefix: str = DEFAULT_PREFIX
    compute: ComputeSettings = ComputeSettings()
    quotas: QuotaSettings = QuotaSettings()
    server: ServerSettings = ServerSettings()
    monitor: MonitorSettings = MonitorSettings()
    security_groups: SecurityGroupLimits = SecurityGroupLimits()

    @property
    def images_dir(self):
        return self.home / 'images'

    @property
    def secret_key_path(self):
        return self.home / 'secret.key'

    @property
    def host_names(self):
        return HostNames(self.host_prefix, str(self.home))

    @property
    def endpoint_url(self):
        """The URL clients should use to reach the listening endpoint."""
        host, port = parse_listen(self.listen)
        if self.endpoint_host:
            host = self.endpoint_host
        elif host in _WILDCARD_HOSTS:
            host = '127.0.0.1'
        return f'http://{format_host_port(host, port)}'


def load_config(environ=None):
    """Build the configuration from the environment and the INI files."""
    environ = os.environ if environ is None else environ
    home = Path(environ.get('RESERVOIR_HOME') or Path.home() / '.reservoir').expanduser().absolute()
    conf_dir = Path(environ.get('RESERVOIR_CONF') or DEFAULT_CONF_DIR).expanduser().absolute()
    main = _read_ini(conf_dir, home, MAIN_FILE)
    listen = main.get('server', 'listen', fallback='127.0.0.1:8773').strip()
    parse_listen(listen)
    return Config(
        home=home,
        conf_dir=conf_dir,
        database_url=_database_url(environ, main, home),
        listen=listen,
        region=_required(main, 'cloud', 'region'),
        zones=_zones(main),
        instance_types=_instance_types(_read_ini(conf_dir, home, INSTANCE_TYPES_FILE)),
        endpoint_host=main.get('cloud', 'endpoint_host', fallback='').strip(),
        host_prefix=_host_prefix(main, environ),
        compute=_compute(main, environ),
        quotas=_quotas(main, environ),
        server=_server(main, environ),
        monitor=_monitor(main, environ),
        security_groups=_security_groups(main, environ),
    )


def parse_listen(text):
    """Split 'HOST:PORT' (or '[IPv6]:PORT') into (host, port)."""
    host, separator, port = text.rpartition(':')
    if not separator or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"listen address {text!r} is not HOST:PORT")
    if host.startswith('[') and host.endswith(']'):
        host = host[1:-1]
    return host, int(port)


def format_host_port(host, port):
    return f'[{host}]:{port}' if ':' in host else f'{host}:{port}'


def _read_ini(conf_dir, home, file_name):
    """The defaults file, then the state directory's copy over it, value by value."""
    parser = configparser.ConfigParser(interpolation=None)
    defaults = conf_dir / file_name
    if not defaults.is_file():
        raise ConfigError(f'configuration file {defaults} is missing')
    try:
        parser.read([defaults, home / file_name], encoding='utf-8')
    except configparser.Error as error:
        raise ConfigError(f'cannot parse {file_name}: {error}') from None
    return parser


def _database_url(environ, main, home):
    url = environ.get('RESERVOIR_DATABASE_URL') or main.get('database', 'url', fallback='').strip()
    return url or f"sqlite:///{home / 'reservoir.db'}"


def _required(parser, section, option):
    value = parser.get(section, option, fallback='').strip()
    if not value:
        raise ConfigError(f'[{section}] {option} must be set')
    return value


def _section(parser, environ, section, settings_type):
    """A section's settings, typed like the dataclass defaults; RESERVOIR_<SECTION>_<NAME> overrides."""
    values = {}
    for field in dataclasses.fields(settings_type):
        text = environ.get(f'RESERVOIR_{section.upper()}_{field.name.upper()}')
        if text is None:
            text = parser.get(section, field.name, fallback=None)
        if text is None or not text.strip():
            continue
        values[field.name] = _typed(section, field, text.strip())
    return settings_type(**values)


def _host_prefix(parser, environ):
    prefix = (environ.get('RESERVOIR_CLOUD_HOST_PREFIX') or
              parser.get('cloud', 'host_prefix', fallback='')).strip() or DEFAULT_PREFIX
    problem = prefix_problem(prefix)
    if problem:
        raise ConfigError(f'[cloud] host_prefix {prefix!r} {problem}')
    return prefix


def _security_groups(parser, environ):
    limits = _section(parser, environ, 'security_groups', SecurityGroupLimits)
    if min(limits.groups_per_vpc, limits.rules_per_group, limits.groups_per_interface) < 1:
        raise ConfigError('[security_groups] limits must be at least 1')
    if not re.fullmatch(r'[A-Za-z][A-Za-z0-9_]{0,31}', limits.table_prefix):
        raise ConfigError('[security_groups] table_prefix must be a letter, then letters, digits and _ (at most 32)')
    return limits


def _server(parser, environ):
    settings = _section(parser, environ, 'server', ServerSettings)
    if not 0 <= settings.soap_clock_skew_seconds <= 3600:
        raise ConfigError('[server] soap_clock_skew_seconds must be between 0 and 3600')
    if min(settings.body_timeout_seconds, settings.upload_idle_seconds) <= 0 or \
            min(settings.upload_threads, settings.uploads_per_client) < 1:
        raise ConfigError('[server] timeouts must be positive, upload_threads and uploads_per_client at least 1')
    # Only characters a client sends as they are, so the prefix is what every client signed.
    if settings.path_prefix and (not re.fullmatch(r'(/[A-Za-z0-9._~-]+)+', settings.path_prefix) or
                                 {'.', '..'} & set(settings.path_prefix.split('/'))):
        raise ConfigError('[server] path_prefix must be empty or /segment[/segment…] of letters, digits and ._~-, '
                          'without a trailing /')
    return settings


def _monitor(parser, environ):
    settings = _section(parser, environ, 'monitor', MonitorSettings)
    if settings.sample_interval_seconds < 1 or settings.history_seconds < settings.sample_interval_seconds:
        raise ConfigError('[monitor] sample_interval_seconds must be at least 1, and history_seconds at least that')
    return settings


def _quotas(parser, environ):
    quotas = _section(parser, environ, 'quotas', QuotaSettings)
    negative = [field.name for field in dataclasses.fields(quotas) if getattr(quotas, field.name) < 0]
    if negative:
        raise ConfigError(f'[quotas] {negative[0]} cannot be negative')
    return quotas


def _compute(parser, environ):
    settings = _section(parser, environ, 'compute', ComputeSettings)
    if settings.scheduler_policy not in ('packing', 'striping', 'load-aware'):
        raise ConfigError('[compute] scheduler_policy must be packing, striping or load-aware')
    return settings


def _typed(section, field, text):
    kind = type(field.default)
    try:
        if kind is bool:
            if text.lower() not in ('true', 'false', 'yes', 'no', 'on', 'off', '1', '0'):
                raise ValueError(text)
            return text.lower() in ('true', 'yes', 'on', '1')
        return kind(text)
    except ValueError:
        raise ConfigError(f'[{section}] {field.name}: {text!r} is not a {kind.__name__}') from None


def _zones(parser):
    zones = tuple(zone.strip() for zone in _required(parser, 'cloud', 'zones').split(',') if zone.strip())
    if not zones:
        raise ConfigError('[cloud] zones must name at least one zone')
    return zones


def _instance_types(parser):
    types = {name: _instance_type(name, parser[name]) for name in parser.sections()}
    if not types:
        raise ConfigError(f'{INSTANCE_TYPES_FILE} defines no instance type')
    return types


def _instance_type(name, section):
    def positive(option):
        try:
            value = section.getint(option)
        except ValueError:
            value = None
        if value is None or value <= 0:
            raise ConfigError(f'instance type {name}: {option} must be a positive integer')
        return value

    architecture = section.get('architecture', 'x86_64').strip()
    if architecture not in ARCHITECTURES:
        raise ConfigError(f'instance type {name}: architecture must be one of {", ".join(ARCHITECTURES)}')
    return InstanceType(name=name, vcpus=positive('vcpus'), memory_mib=positive('memory_mib'),
                        disk_gib=positive('disk_gib'), architecture=architecture)
