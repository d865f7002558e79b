#!/usr/bin/env bash
# Installs the Debian 12 packages Reservoir needs, and the system users that embedded QEMU expects.
# Idempotent and non-interactive; a stamp keyed on the package list makes repeated runs instant.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
    libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients libvirt-dev pkg-config gcc
    python3-dev python3-venv qemu-system-x86 qemu-utils busybox-static cpio kmod genisoimage
    iputils-ping iproute2 iptables nftables postgresql patch binutils openssh-client
    chromium chromium-driver
)
# The JS client tests need node >= 18; keep a newer node that is already installed.
if command -v npm >/dev/null && command -v node >/dev/null &&
        node -e 'process.exit(+process.versions.node.split(".")[0] >= 18 ? 0 : 1)'; then
    :
else
    packages+=(nodejs npm)
fi

stamp=".install-stamp-system-$(printf '%s\n' "${packages[@]}" | sha256sum | cut -c1-16)"
if [ -e "$stamp" ]; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    as_root=()
else
    # -n: fail at once rather than wait for a password on a missing terminal.
    as_root=(sudo -n)
fi

missing=()
for package in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)
    [ "$status" = installed ] || missing+=("$package")
done

if [ ${#missing[@]} -gt 0 ]; then
    echo "Installing Debian packages: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt_install=("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive
                 apt-get install -y -q --no-install-recommends "${missing[@]}")
    # Refresh the package lists only when they are missing or too old to install from.
    if ! "${apt_install[@]}" </dev/null; then
        "${as_root[@]}" apt-get update -q </dev/null
        "${apt_install[@]}" </dev/null
    fi
fi

# Debian creates these with libvirt-daemon-system, which is not installed: QEMU run through
# libvirt's embedded driver looks them up all the same.
getent group kvm >/dev/null || "${as_root[@]}" groupadd -r kvm
getent group libvirt-qemu >/dev/null || "${as_root[@]}" groupadd -r libvirt-qemu
getent passwd libvirt-qemu >/dev/null ||
    "${as_root[@]}" useradd -r -g libvirt-qemu -G kvm -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu

rm -f .install-stamp-system-*
touch "$stamp"
