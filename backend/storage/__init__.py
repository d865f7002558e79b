"""The storage wing of the VM manager: EBS volumes (and, after them, snapshots)."""
