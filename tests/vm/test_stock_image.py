"""Boots the stock tiny image under plain QEMU (TCG) and checks its context agent.

Each test gets its own qcow2 overlay on the built root disk and a context CD
(label CONTEXT, OpenNebula context.sh). The NIC is a QEMU datagram link to a
socket the test holds, so the only traffic is between the test and the guest.
"""

import base64
import io
import json
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pycdlib
import pytest

QEMU = shutil.which("qemu-system-x86_64")

pytestmark = [
    pytest.mark.vm,
    pytest.mark.skipif(QEMU is None, reason="qemu-system-x86_64 is not installed"),
]

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "images" / "build_stock.py"
IMAGE_DIR = REPO / "images" / "build" / "tiny"

BOOT_TIMEOUT = 90
POWERDOWN_TIMEOUT = 30
GUEST_MAC = "02:00:0a:00:00:05"
GUEST_MASK = "255.255.240.0"
HOST_MAC = bytes.fromhex("02000a000001")
HOST_IP = "10.0.0.1"


@pytest.fixture(scope="session")
def stock_image():
    """The built image's manifest; builds it first (a no-op when up to date)."""
    started = time.monotonic()
    result = subprocess.run([sys.executable, str(BUILD_SCRIPT), "--out", str(IMAGE_DIR)],
                            capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        pytest.fail(f"image build failed:\n{result.stderr}")
    print(f"\nimage build: {time.monotonic() - started:.1f} s")
    return json.loads((IMAGE_DIR / "manifest.json").read_text())


def context_sh(variables):
    """context.sh text: KEY='value' lines, as OpenNebula writes them."""
    def quote(value):
        return "'" + str(value).replace("'", "'\\''") + "'"
    return "".join(f"{key}={quote(value)}\n" for key, value in variables.items())


def make_context_iso(path, variables):
    data = context_sh(variables).encode()
    iso = pycdlib.PyCdlib()
    iso.new(vol_ident="CONTEXT", joliet=3, rock_ridge="1.09")
    iso.add_fp(io.BytesIO(data), len(data), "/CONTEXT.SH;1",
               rr_name="context.sh", joliet_path="/context.sh")
    iso.write(str(path))
    iso.close()


def make_overlay(path):
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2",
                    "-b", str(IMAGE_DIR / "root.qcow2"), str(path)], check=True)


def user_data_context(ip, hostname, script):
    """A context for the guest's NIC; with ip None the guest derives it from the MAC."""
    context = {
        "ETH0_MAC": GUEST_MAC,
        "ETH0_MASK": GUEST_MASK,
        "HOSTNAME": hostname,
        "SSH_PUBLIC_KEY": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTests test@reservoir",
        "USERDATA_ENCODING": "base64",
        "USER_DATA": base64.b64encode(script.encode()).decode(),
    }
    if ip is not None:
        context["ETH0_IP"] = ip
    return context


def arp_request(ip):
    ethernet = b"\xff" * 6 + HOST_MAC + b"\x08\x06"
    arp = (b"\x00\x01\x08\x00\x06\x04\x00\x01" + HOST_MAC + socket.inet_aton(HOST_IP)
           + b"\x00" * 6 + socket.inet_aton(ip))
    return ethernet + arp


def arp_reply_sender(frame, ip):
    """The sender MAC of an ARP reply for ip, or None for any other frame."""
    is_arp_reply = frame[12:14] == b"\x08\x06" and frame[20:22] == b"\x00\x02"
    if is_arp_reply and frame[28:32] == socket.inet_aton(ip):
        return frame[22:28].hex(":")
    return None


class Guest:
    """One QEMU process booting the stock image with a disk and a context CD."""

    def __init__(self, manifest, overlay, context_iso, workdir, sockets_dir):
        self.manifest = manifest
        self.console_path = workdir / "console.log"
        self.console_path.unlink(missing_ok=True)
        self.monitor_path = sockets_dir / "monitor"
        self.guest_link_path = sockets_dir / "guest-link"
        self.link = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        host_link_path = sockets_dir / "host-link"
        for path in (self.monitor_path, self.guest_link_path, host_link_path):
            path.unlink(missing_ok=True)
        self.link.bind(str(host_link_path))
        self.command = [
            QEMU, "-machine", "pc", "-accel", "tcg", "-m", str(manifest["min_memory_mib"]),
            "-nodefaults", "-display", "none",
            "-kernel", str(IMAGE_DIR / "vmlinux"), "-initrd", str(IMAGE_DIR / "initrd.img"),
            "-append", manifest["kernel_cmdline"],
            "-drive", f"file={overlay},if=virtio,format=qcow2",
            "-cdrom", str(context_iso),
            "-netdev", f"dgram,id=net0,local.type=unix,local.path={self.guest_link_path},"
                       f"remote.type=unix,remote.path={host_link_path}",
            "-device", f"virtio-net-pci,netdev=net0,mac={GUEST_MAC}",
            "-serial", f"file:{self.console_path}",
            "-monitor", f"unix:{self.monitor_path},server=on,wait=off",
        ]
        self.qemu_log = open(workdir / "qemu.log", "w")
        self.started = time.monotonic()
        self.process = subprocess.Popen(self.command, stdout=self.qemu_log,
                                        stderr=subprocess.STDOUT)

    def console(self):
        try:
            return self.console_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for(self, text, timeout=BOOT_TIMEOUT):
        """Seconds from QEMU's start until text shows on the console."""
        deadline = time.monotonic() + timeout
        while text not in self.console():
            if self.process.poll() is not None:
                pytest.fail(f"qemu exited ({self.process.returncode}) before {text!r}:\n"
                            f"{self.console()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {text!r} within {timeout} s:\n{self.console()}")
            time.sleep(0.1)
        return time.monotonic() - self.started

    def wait_until_contextualized(self):
        return self.wait_for(self.manifest["context"]["ready_marker"])

    def arp_reply_mac(self, ip, timeout=10):
        """The MAC address that answers an ARP request for ip on the guest's link."""
        deadline = time.monotonic() + timeout
        self.link.settimeout(0.5)
        while time.monotonic() < deadline:
            self.link.sendto(arp_request(ip), str(self.guest_link_path))
            try:
                while True:
                    sender = arp_reply_sender(self.link.recv(65536), ip)
                    if sender:
                        return sender
            except socket.timeout:
                continue
        return None

    def powerdown(self):
        """Presses the ACPI power button; seconds until QEMU exits by itself."""
        pressed = time.monotonic()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as monitor:
            monitor.connect(str(self.monitor_path))
            monitor.sendall(b"system_powerdown\n")
            self.process.wait(timeout=POWERDOWN_TIMEOUT)
        return time.monotonic() - pressed

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.link.close()
        self.qemu_log.close()


@pytest.fixture
def boot(stock_image, tmp_path):
    """boot(context, overlay=None) starts a guest; every guest is killed at teardown."""
    guests = []
    sockets = tempfile.TemporaryDirectory(prefix="vm-")  # socket paths must stay short

    def start(context, overlay=None):
        if overlay is None:
            overlay = tmp_path / "overlay.qcow2"
            make_overlay(overlay)
        context_iso = tmp_path / f"context-{len(guests)}.iso"
        make_context_iso(context_iso, context)
        guest = Guest(stock_image, overlay, context_iso, tmp_path, Path(sockets.name))
        guests.append(guest)
        return guest

    yield start
    for guest in guests:
        guest.kill()
    sockets.cleanup()


def read_guest_file(overlay, path, workdir):
    """A file's content on the guest's ext4 root, read from the host side."""
    raw = workdir / "disk.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(overlay), str(raw)], check=True)
    try:
        state = subprocess.run(["dumpe2fs", "-h", str(raw)], capture_output=True, text=True)
        content = subprocess.run(["debugfs", "-R", f"cat {path}", str(raw)],
                                 capture_output=True, text=True, check=True)
    finally:
        raw.unlink()
    assert "Filesystem state:         clean" in state.stdout, "root not unmounted cleanly"
    return content.stdout


def test_boot_applies_context(boot):
    token = secrets.token_hex(6)
    script = f"#!/bin/sh\necho \"user-data says {token}\"\necho {token} > /root/marker\n"
    guest = boot(user_data_context("10.0.0.5", "i-0abc1234", script))

    seconds = guest.wait_until_contextualized()
    print(f"\ncontextualized after {seconds:.1f} s")

    console = guest.console()
    assert "reservoir-context: ip 10.0.0.5/20 on eth0" in console
    assert "reservoir-context: hostname i-0abc1234" in console
    assert "reservoir-context: ssh keys 1 for root" in console
    assert f"user-data says {token}" in console
    assert "reservoir-context: user-data exit 0" in console
    assert guest.arp_reply_mac("10.0.0.5") == GUEST_MAC


def test_disk_persists_and_powerdown_is_clean(boot, tmp_path):
    overlay = tmp_path / "overlay.qcow2"
    make_overlay(overlay)
    token = secrets.token_hex(6)
    script = f"#!/bin/sh\necho \"user-data says {token}\"\necho {token} > /root/marker\n"

    first = boot(user_data_context(None, "i-0first", script), overlay)
    first.wait_until_contextualized()
    assert "reservoir-context: ip 10.0.0.5/20 on eth0" in first.console()
    seconds = first.powerdown()
    print(f"\npowered off {seconds:.1f} s after the button press")
    assert first.process.returncode == 0
    assert read_guest_file(overlay, "/root/marker", tmp_path) == f"{token}\n"

    # Same disk, a new context CD: the new address applies, the user data
    # already ran on this disk so it does not run again.
    second = boot(user_data_context("10.0.0.9", "i-0first", script), overlay)
    second.wait_until_contextualized()
    console = second.console()
    assert "reservoir-context: ip 10.0.0.9/20 on eth0" in console
    assert "reservoir-context: user-data already ran" in console
    assert f"user-data says {token}" not in console
    assert second.arp_reply_mac("10.0.0.9") == GUEST_MAC
    second.powerdown()
    assert second.process.returncode == 0
    assert read_guest_file(overlay, "/root/marker", tmp_path) == f"{token}\n"
