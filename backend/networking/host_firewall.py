"""Security groups enforced on this machine: nftables tables kept equal to the database.

The worker calls `reconcile` at every dispatch round. It reads the policy of the ports on the hosts
it drives (only when it was woken by a change, or once a second, so an idle cloud costs little),
renders the installation's two tables (`nft_ruleset`), and applies the difference to what it applied
last, in one nft transaction: a rule change is one chain rewritten, a launch a few elements added. A
fresh process, a failed apply, or tables found changed behind its back (compared every
`VERIFY_SECONDS`) get the whole tables again, atomically; tracked connections survive that.

Hosts on this machine (qemu:/// URIs) share the kernel's tables. A simulated host has no kernel of its
own: when `[security_groups] simulated_host_rules` is on, it writes the tables it would hold to
`<dir>/<host id>.nft` (and the last change to `<host id>.change.nft`), so its rules and their cost
can be examined without real VMs. Remote libvirt
hosts are not filtered yet (that needs an agent or libvirt's nwfilter there); their ports are left out.
"""
import json
import logging
import subprocess
import threading
import time
from pathlib import Path

from . import nft_ruleset
from ..host_names import HostNames
from .host_network import installation_digest, is_on_this_machine, tap_prefix
from .security_policy import EMPTY, desired_policy, policies_by_host

log = logging.getLogger(__name__)

REFRESH_SECONDS = 1.0        # the policy is read at least this often, woken or not
VERIFY_SECONDS = 10.0        # and the kernel's tables compared with it this often
COMMAND_TIMEOUT_SECONDS = 60


class FirewallError(Exception):
    """nft refused or could not run."""


def table_name(prefix, installation):
    """The installation's table name: the configured prefix and a digest of its state directory, so
    two installations on one machine keep apart even with the same prefix."""
    return f'{prefix}_{installation_digest(installation)[:6]}'


def is_simulated(uri):
    return uri.startswith('test:')


class KernelTables:
    """The tables in this machine's kernel (or in the namespace `prefix` runs commands in)."""
    checkable = True

    def __init__(self, prefix=()):
        self.prefix = tuple(prefix)

    def apply(self, script, full, _tables):
        if full:   # bridged frames must meet the inet table
            self._run('sysctl', '-q', '-w', 'net.bridge.bridge-nf-call-iptables=1')
        self._run('nft', '-f', '-', input=script)

    def counts(self, family, name):
        """(rules per chain, elements per set) of the kernel's table, or None when it is missing."""
        try:
            listing = json.loads(self._run('nft', '-j', 'list', 'table', family, name))
        except (FirewallError, ValueError):
            return None
        chains, sets = {}, {}
        for entry in listing.get('nftables', ()):
            if 'chain' in entry:
                chains.setdefault(entry['chain']['name'], 0)
            elif 'rule' in entry:
                chains[entry['rule']['chain']] = chains.get(entry['rule']['chain'], 0) + 1
            elif 'set' in entry or 'map' in entry:
                found = entry.get('set') or entry.get('map')
                sets[found['name']] = len(found.get('elem', ()))
        return chains, sets

    def _run(self, *command, input=None):
        try:
            return subprocess.run([*self.prefix, *command], input=input, capture_output=True, text=True, check=True,
                                  timeout=COMMAND_TIMEOUT_SECONDS).stdout
        except subprocess.CalledProcessError as error:
            detail = (error.stderr or '').strip().splitlines()[:3]
            raise FirewallError(f"{' '.join(command[:3])} failed: {' / '.join(detail)}") from None
        except (OSError, subprocess.TimeoutExpired) as error:
            raise FirewallError(f'{command[0]}: {error}') from None


class ScriptFile:
    """A simulated host's stand-in for a kernel: the tables it would hold, written to a file."""
    checkable = False

    def __init__(self, path):
        self.path = Path(path)

    def apply(self, script, full, tables):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.with_suffix('.change.nft').write_text(script)
        self.path.write_text(script if full else ''.join(nft_ruleset.full_script(table) for table in tables))


class Target:
    """One place rules go (the machine's kernel, or a simulated host's file) and what it holds."""

    def __init__(self, sink, name, taps):
        self.sink = sink
        self.name = name
        self.taps = taps
        self.applied = None          # (inet Table, bridge Table) as last applied
        self.verified_at = 0.0

    def converge(self, policy, verify):
        """Apply what `policy` needs; True when something was applied."""
        wanted = nft_ruleset.tables(policy, self.name, self.taps)
        if self.applied is not None and verify and not self._intact():
            log.warning('firewall tables %s were changed outside Reservoir: applying them again', self.name)
            self.applied = None
        if self.applied == wanted:
            return False
        scripts = None if self.applied is None else [nft_ruleset.change_script(old, new)
                                                    for old, new in zip(self.applied, wanted)]
        full = scripts is None or None in scripts
        if full:
            scripts = [nft_ruleset.full_script(table) for table in wanted]
        self.applied = None              # until it is known to be in place
        self.sink.apply(''.join(scripts), full, wanted)
        self.applied = wanted
        return True

    def _intact(self):
        if not self.sink.checkable:
            return True
        return all(self.sink.counts(table.family, table.name) == table.counts() for table in self.applied)


class HostFirewall:
    """The firewall of this machine's hosts and of each simulated host this worker drives."""

    def __init__(self, prefix, installation, files_dir, command_prefix=(), simulated_host_rules=True, names=None):
        """`prefix`: of the table names; `names`: the installation's HostNames (bridge names)."""
        self.installation = str(installation)
        self.names = names or HostNames(installation=self.installation)
        self.simulated_host_rules = simulated_host_rules
        self.name = table_name(prefix, installation)
        self.taps = tap_prefix(installation)
        self.files_dir = Path(files_dir)
        self.kernel = Target(KernelTables(command_prefix), self.name, self.taps)
        self.simulated = {}           # host id -> Target
        self._read_at = 0.0
        self._generation = None
        self._last_error = None
        self.kernel_error = None      # why the kernel's tables could not be applied, until they are
        self._lock = threading.Lock()

    def reconcile(self, db, hosts, generation=None):
        """Bring every target's rules to the database's policy; True when something was applied.
        `hosts` is {host id: uri} of the hosts this worker drives; `generation` changes whenever the
        worker is woken (by an API change among others)."""
        now = time.monotonic()
        if generation == self._generation and now - self._read_at < REFRESH_SECONDS:
            return False
        self._generation, self._read_at = generation, now
        local = sorted(h for h, uri in hosts.items() if is_on_this_machine(uri) and not is_simulated(uri))
        simulated = sorted(h for h, uri in hosts.items() if is_simulated(uri)) if self.simulated_host_rules else []
        with self._lock:
            for host_id in set(self.simulated) - set(simulated):
                del self.simulated[host_id]
            with db.read() as session:
                policies = policies_by_host(session, simulated, self.installation, self.names)
                kernel_policy = desired_policy(session, local, self.installation, self.names) if local else None
            changed = False
            # A machine with no host of ours keeps its tables as they are (another worker may own them).
            if kernel_policy is not None or self.kernel.applied is not None:
                changed |= self._converge(self.kernel, kernel_policy or EMPTY, now)
                self.kernel_error = self._last_error
            for host_id, policy in policies.items():
                target = self.simulated.get(host_id) or self.simulated.setdefault(
                    host_id, Target(ScriptFile(self.files_dir / f'{host_id}.nft'), self.name, self.taps))
                changed |= self._converge(target, policy, now)
            return changed

    def _converge(self, target, policy, now):
        verify = now - target.verified_at >= VERIFY_SECONDS
        if verify:
            target.verified_at = now
        try:
            changed = target.converge(policy, verify)
        except (FirewallError, OSError, ValueError) as error:
            if str(error) != self._last_error:   # retried every round: say it once
                log.warning('cannot apply security groups on this host: %s', error)
                self._last_error = str(error)
            return False
        self._last_error = None
        return changed


def simulated_rules(files_dir, host_id):
    """The tables a simulated host was given (for tests and benchmarks), or ''."""
    path = Path(files_dir) / f'{host_id}.nft'
    return path.read_text() if path.exists() else ''
