"""The compute wing of the VM manager: what happens to instances across hosts (moving them)."""
