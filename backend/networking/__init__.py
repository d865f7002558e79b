"""The networking wing of the VM manager: VPCs, subnets and their leases, elastic IPs, and the
host side that makes them real (bridges, router namespaces, NAT)."""
