"""Drivers: how the VM manager talks to hypervisors (libvirt) and to peer clouds."""
