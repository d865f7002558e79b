#!/usr/bin/env python3
"""Build the stock "tiny" guest image offline, from Debian packages only.

    python3 images/build_stock.py [--out images/build/tiny] [--force]

Downloads the Debian kernel that linux-image-amd64 points at and busybox-static
(apt-get download, cached under images/build/cache), then writes into --out:

    vmlinux        uncompressed kernel; boots directly through its PVH note
    vmlinuz        the original bzImage, for loaders that want one
    initrd.img     busybox + drivers; mounts root=/dev/vda and switches to it
    root.qcow2     64 MiB ext4 root: busybox userland + the context agent
    manifest.json  what the files are, how to boot them, their sha256

Nothing is rebuilt while the packages, this script and images/stock/ are
unchanged (unless --force). Needs apt-get, dpkg, depmod, mke2fs and qemu-img;
run it as root so that the files on the root disk belong to root.
"""

import argparse
import contextlib
import fcntl
import gzip
import hashlib
import json
import lzma
import os
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IMAGES_DIR = Path(__file__).resolve().parent
STOCK_DIR = IMAGES_DIR / "stock"
DEFAULT_OUT = IMAGES_DIR / "build" / "tiny"
DEFAULT_CACHE = IMAGES_DIR / "build" / "cache"

KERNEL_METAPACKAGE = "linux-image-amd64"
BUSYBOX_PACKAGE = "busybox-static"
# A small SSH server (dropbear: about 1 MB with the libraries it needs), so that
# `ssh -i key.pem root@address` works as users expect right after run-instances.
SSH_PACKAGE = "dropbear-bin"
SSH_PROGRAMS = ["usr/sbin/dropbear", "usr/bin/dropbearkey"]
# Where the dynamic libraries of those programs come from (dropbear-bin's Depends, and theirs).
LIBRARY_PACKAGES = ["libc6", "libcrypt1", "libtomcrypt1", "libtommath1", "libgmp10", "zlib1g"]

# Drivers for an i440fx machine: virtio disk/NIC/RNG, the IDE CD holding the
# context, the ext4 root, and the ACPI power button as an input device (acpid).
# modules.dep supplies their dependencies; ext4 only names crc32c as a soft
# dependency (metadata checksums), so it is listed here, before ext4.
WANTED_MODULES = [
    "virtio_pci", "virtio_net", "virtio_blk", "virtio_scsi",
    "ata_piix", "ahci", "sr_mod", "isofs",
    "crc32c_generic", "crc32c_intel", "ext4",
    "virtio_rng", "button", "evdev",
]

IMAGE_NAME = "reservoir-tiny"
KERNEL_CMDLINE = "console=ttyS0 panic=-1 quiet root=/dev/vda"
ROOT_DISK_SIZE = "64M"
MIN_MEMORY_MIB = 128
CONTEXT_READY_MARKER = "reservoir-context: contextualized"
# A fixed timestamp makes the initramfs depend on its content only.
FIXED_MTIME = 1700000000
OUTPUT_FILES = ["vmlinux", "vmlinuz", "initrd.img", "root.qcow2"]

# Directories the root disk needs besides those in images/stock/rootfs.
ROOT_DIRS = {
    "dev": 0o755, "proc": 0o555, "sys": 0o555, "run": 0o755, "mnt": 0o755,
    "tmp": 0o1777, "root": 0o700, "var/log": 0o755, "var/lib": 0o755,
}


def log(message):
    print(f"build_stock: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def timed(step):
    started = time.monotonic()
    yield
    log(f"{step}: {time.monotonic() - started:.1f} s")


def run(args, **kwargs):
    return subprocess.run([str(a) for a in args], check=True, text=True,
                          stdout=subprocess.PIPE, **kwargs).stdout


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- Debian packages ---------------------------------------------------------

def apt_records(*names):
    """Candidate version of each package (apt-cache show), by package name."""
    text = run(["apt-cache", "show", "--no-all-versions", *names])
    records = {}
    for stanza in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line)
        records[fields["Package"]] = {
            "package": fields["Package"], "version": fields["Version"],
            "file": Path(fields["Filename"]).name, "sha256": fields["SHA256"],
            "size": int(fields["Size"]), "depends": fields.get("Depends", ""),
        }
    return records


def package_records():
    """{role: record}: the kernel linux-image-amd64 depends on, busybox-static, dropbear
    and the libraries dropbear links against."""
    records = apt_records(KERNEL_METAPACKAGE, BUSYBOX_PACKAGE, SSH_PACKAGE, *LIBRARY_PACKAGES)
    kernels = [d.split()[0] for d in records[KERNEL_METAPACKAGE]["depends"].split(", ")
               if d.startswith("linux-image-")]
    if not kernels:
        raise SystemExit(f"{KERNEL_METAPACKAGE} names no kernel package")
    return {"kernel": apt_records(kernels[0])[kernels[0]], "busybox": records[BUSYBOX_PACKAGE],
            "ssh": records[SSH_PACKAGE], **{name: records[name] for name in LIBRARY_PACKAGES}}


def fetch_deb(record, cache_dir):
    """Returns the cached .deb of a package, downloading it when missing.

    Downloads are checked against the archive's sha256 before they enter the cache.
    """
    path = cache_dir / record["file"]
    if path.exists() and path.stat().st_size == record["size"]:
        return path
    log(f"downloading {record['package']} {record['version']}")
    # apt drops privileges to _apt for downloads, which cannot write a private dir.
    sandbox = ["-o", "APT::Sandbox::User=root"] if os.geteuid() == 0 else []
    with tempfile.TemporaryDirectory(dir=cache_dir) as download_dir:
        run(["apt-get", "download", "-q", *sandbox,
             f"{record['package']}={record['version']}"], cwd=download_dir)
        (downloaded,) = Path(download_dir).glob("*.deb")
        if sha256_file(downloaded) != record["sha256"]:
            raise SystemExit(f"{downloaded.name}: sha256 differs from the archive's")
        os.replace(downloaded, path)
    return path


def inputs_digest(records):
    """Identifies everything an image is built from: packages, recipe, stock files."""
    digest = hashlib.sha256()
    for record in records:
        digest.update(f"{record['package']} {record['sha256']}\n".encode())
    digest.update(Path(__file__).read_bytes())
    for path in sorted(p for p in STOCK_DIR.rglob("*") if not p.is_dir()):
        digest.update(f"{path.relative_to(STOCK_DIR)}\n".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


# --- kernel ------------------------------------------------------------------

def extract_vmlinux(bzimage):
    """The ELF kernel inside a bzImage (x86 boot protocol: payload_offset/length)."""
    setup_sectors = bzimage[0x1F1] or 4
    payload_offset, payload_length = struct.unpack_from("<II", bzimage, 0x248)
    start = (setup_sectors + 1) * 512 + payload_offset
    payload = bzimage[start:start + payload_length]
    if payload.startswith(b"\xfd7zXZ\x00"):
        elf = lzma.LZMADecompressor(lzma.FORMAT_XZ).decompress(payload)
    elif payload.startswith(b"\x1f\x8b"):
        elf = gzip.decompress(payload)
    else:
        raise SystemExit(f"kernel payload compression {payload[:6].hex()} not supported")
    if not elf.startswith(b"\x7fELF"):
        raise SystemExit("kernel payload is not an ELF file")
    return elf


def module_name(path):
    return path.name.removesuffix(".ko").replace("-", "_")


def module_load_order(modules_dir):
    """WANTED_MODULES and their dependencies, each after what it depends on."""
    dependencies = {}
    for line in (modules_dir / "modules.dep").read_text().splitlines():
        module, _, needs = line.partition(":")
        dependencies[module] = needs.split()
    by_name = {module_name(Path(m)): m for m in dependencies}
    order = []

    def visit(module):
        if module in order:
            return
        # modprobe loads a module's dependency list from the end.
        for dependency in reversed(dependencies[module]):
            visit(dependency)
        order.append(module)

    for name in WANTED_MODULES:
        if name not in by_name:
            raise SystemExit(f"kernel has no module {name}")
        visit(by_name[name])
    for module in order:
        if not module.endswith(".ko"):
            raise SystemExit(f"{module}: only uncompressed modules are supported")
    return [modules_dir / m for m in order]


# --- initramfs ---------------------------------------------------------------

class CpioWriter:
    """Writes a "newc" cpio archive, the format the kernel unpacks as initramfs.

    Entries belong to root and carry a fixed time whoever builds the image.
    """

    def __init__(self, stream):
        self.stream = stream
        self.inode = 0
        self.directories = set()

    def _entry(self, name, mode, data=b"", rdev=(0, 0)):
        self.inode += 1
        encoded_name = name.encode() + b"\0"
        nlink = 2 if stat.S_ISDIR(mode) else 1
        fields = (self.inode, mode, 0, 0, nlink, FIXED_MTIME, len(data), 0, 0,
                  rdev[0], rdev[1], len(encoded_name), 0)
        header = b"070701" + b"".join(b"%08x" % field for field in fields)
        self.stream.write(header + encoded_name + self._padding(len(header) + len(encoded_name)))
        self.stream.write(data + self._padding(len(data)))

    @staticmethod
    def _padding(length):
        return b"\0" * (-length % 4)

    def _parents(self, name):
        parent = os.path.dirname(name)
        if parent and parent not in self.directories:
            self.directory(parent)

    def directory(self, name, permissions=0o755):
        self._parents(name)
        self.directories.add(name)
        self._entry(name, stat.S_IFDIR | permissions)

    def file(self, name, data, permissions=0o644):
        self._parents(name)
        self._entry(name, stat.S_IFREG | permissions, data)

    def symlink(self, name, target):
        self._parents(name)
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def char_device(self, name, major, minor, permissions=0o600):
        self._parents(name)
        self._entry(name, stat.S_IFCHR | permissions, rdev=(major, minor))

    def close(self):
        self._entry("TRAILER!!!", 0)


def write_initramfs(path, busybox, applets, modules):
    with open(path, "wb") as raw, \
            gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as stream:
        cpio = CpioWriter(stream)
        for name in ("dev", "proc", "sys", "newroot"):
            cpio.directory(name)
        # The kernel opens the console before /init runs, ahead of any devtmpfs.
        cpio.char_device("dev/console", 5, 1)
        cpio.file("bin/busybox", busybox.read_bytes(), 0o755)
        for applet in applets:
            cpio.symlink(applet, "/bin/busybox")
        cpio.file("init", (STOCK_DIR / "initramfs" / "init").read_bytes(), 0o755)
        for module in modules:
            cpio.file(f"lib/modules/{module.name}", module.read_bytes())
        order = "".join(f"{module.name}\n" for module in modules)
        cpio.file("lib/modules/load-order", order.encode())
        cpio.close()


# --- root disk ---------------------------------------------------------------

def busybox_applets(busybox):
    """Applet paths such as bin/sh and sbin/init, busybox itself excluded."""
    return [a for a in run([busybox, "--list-full"]).split()
            if a not in ("bin/busybox", "linuxrc")]


def stage_root(root, busybox, applets):
    (root / "bin").mkdir(parents=True)
    shutil.copy(busybox, root / "bin" / "busybox")
    for applet in applets:
        link = root / applet
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to("/bin/busybox")
    shutil.copytree(STOCK_DIR / "rootfs", root, symlinks=True, dirs_exist_ok=True)
    # Scripts must be executable whatever mode the checkout gave them.
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.read_bytes()[:2] == b"#!":
            path.chmod(0o755)
    for name, permissions in ROOT_DIRS.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        (root / name).chmod(permissions)
    (root / "var" / "run").symlink_to("/run")


def stage_ssh_server(root, work, debs):
    """dropbear's programs, and each shared library they need (found through their
    ELF NEEDED entries, transitively), at the paths the dynamic loader looks in."""
    unpacked = work / "ssh"
    for role in ["ssh", *LIBRARY_PACKAGES]:
        run(["dpkg", "-x", debs[role], unpacked])
    library_dirs = [unpacked / "lib" / "x86_64-linux-gnu", unpacked / "usr" / "lib" / "x86_64-linux-gnu"]
    wanted, seen = [unpacked / program for program in SSH_PROGRAMS], set()
    while wanted:
        path = wanted.pop()
        target = root / path.relative_to(unpacked)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target, follow_symlinks=True)
        for library in needed_libraries(path):
            if library in seen:
                continue
            seen.add(library)
            found = [d / library for d in library_dirs if (d / library).exists()]
            if not found:
                raise SystemExit(f"{path.name} needs {library}, which no package provides")
            wanted.append(found[0])
    # The loader itself: its path is written into every program (PT_INTERP).
    loader = unpacked / "lib" / "x86_64-linux-gnu" / "ld-linux-x86-64.so.2"
    (root / "lib64").mkdir(exist_ok=True)
    shutil.copy(loader, root / "lib64" / "ld-linux-x86-64.so.2", follow_symlinks=True)
    (root / "etc" / "dropbear").mkdir(parents=True, exist_ok=True)


def needed_libraries(path):
    """The DT_NEEDED entries of an ELF file (readelf, from binutils)."""
    output = run(["readelf", "-d", path])
    return [line.split("[", 1)[1].split("]", 1)[0] for line in output.splitlines() if "(NEEDED)" in line]


def make_root_disk(root, qcow2, scratch):
    """ext4 labelled "root" filled from a directory, without loop mounts."""
    raw = scratch / "root.ext4"
    run(["mke2fs", "-q", "-t", "ext4", "-L", "root", "-E", "root_owner=0:0",
         "-d", root, raw, ROOT_DISK_SIZE])
    run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, qcow2])


# --- the build ---------------------------------------------------------------

def assemble(work, out, debs):
    """Builds every output file into out, unpacking in work; returns the kernel version."""
    out.mkdir()
    kernel_root, busybox_root = work / "kernel", work / "busybox"
    with timed("unpack packages"):
        run(["dpkg", "-x", debs["kernel"], kernel_root])
        run(["dpkg", "-x", debs["busybox"], busybox_root])
        (kernel_version,) = [p.name for p in (kernel_root / "lib" / "modules").iterdir()]
        run(["depmod", "-b", kernel_root, kernel_version])

    with timed("kernel"):
        bzimage = kernel_root / "boot" / f"vmlinuz-{kernel_version}"
        shutil.copy(bzimage, out / "vmlinuz")
        (out / "vmlinux").write_bytes(extract_vmlinux(bzimage.read_bytes()))

    busybox = busybox_root / "bin" / "busybox"
    applets = busybox_applets(busybox)
    with timed("initramfs"):
        modules = module_load_order(kernel_root / "lib" / "modules" / kernel_version)
        write_initramfs(out / "initrd.img", busybox, applets, modules)

    with timed("root disk"):
        stage_root(work / "root", busybox, applets)
        stage_ssh_server(work / "root", work, debs)
        make_root_disk(work / "root", out / "root.qcow2", work)
    return kernel_version


def write_manifest(out, kernel_version, records, digest):
    manifest = {
        "name": IMAGE_NAME,
        "description": "Tiny Linux guest: Debian 12 kernel, busybox userland, "
                       "Reservoir context agent",
        "architecture": "x86_64",
        "kernel_version": kernel_version,
        "kernel_cmdline": KERNEL_CMDLINE,
        "root_device": "/dev/vda",
        "min_memory_mib": MIN_MEMORY_MIB,
        "context": {"cdrom_label": "CONTEXT", "file": "context.sh",
                    "ready_marker": CONTEXT_READY_MARKER},
        "packages": {r["package"]: r["version"] for r in records},
        "inputs_sha256": digest,
        "files": {name: {"sha256": sha256_file(out / name), "size": (out / name).stat().st_size}
                  for name in OUTPUT_FILES},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def current_manifest(out, digest):
    """The manifest of out if it was built from these inputs and is intact."""
    try:
        manifest = json.loads((out / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    files = manifest.get("files", {})
    if manifest.get("inputs_sha256") != digest or set(files) != set(OUTPUT_FILES):
        return None
    for name, entry in files.items():
        path = out / name
        if not path.exists() or sha256_file(path) != entry["sha256"]:
            return None
    return manifest


def publish(staged, out):
    """Replaces out with staged by renames, so out is never seen half written."""
    if out.exists():
        old = staged.parent / "previous"
        os.rename(out, old)
    os.rename(staged, out)


@contextlib.contextmanager
def exclusive_lock(path):
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def build(out=DEFAULT_OUT, cache=DEFAULT_CACHE, force=False):
    """Builds the image into out unless it is up to date; returns its manifest."""
    out, cache = Path(out).resolve(), Path(cache).resolve()
    cache.mkdir(parents=True, exist_ok=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(cache / ".lock"):
        records = package_records()
        debs = {role: fetch_deb(record, cache) for role, record in records.items()}
        records = list(records.values())
        digest = inputs_digest(records)
        manifest = None if force else current_manifest(out, digest)
        if manifest:
            log(f"{out.name} is up to date")
            return manifest
        # Unpacking goes to the system's temporary directory (the kernel tree is
        # 400 MB); outputs are staged beside out so that publishing is a rename.
        with tempfile.TemporaryDirectory(prefix="reservoir-image-") as work, \
                tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}-") as staging:
            staged = Path(staging) / "out"
            kernel_version = assemble(Path(work), staged, debs)
            manifest = write_manifest(staged, kernel_version, records, digest)
            publish(staged, out)
        return manifest


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                        help="where downloaded .deb files are kept")
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = parser.parse_args()
    started = time.monotonic()
    try:
        manifest = build(args.out, args.cache, args.force)
    except subprocess.CalledProcessError as error:
        command = " ".join(str(a) for a in error.cmd)
        raise SystemExit(f"build_stock: {command} failed with status {error.returncode}")
    for name, entry in manifest["files"].items():
        log(f"{name:<11} {entry['size']:>10} bytes  sha256 {entry['sha256'][:16]}")
    log(f"done in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
