"""The VM manager: decides where VMs run, what they get and what state they are in."""
