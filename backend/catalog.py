"""What the cloud offers, as configured: its region, availability zones and instance types."""


class Catalog:
    def __init__(self, config):
        self._config = config

    def regions(self):
        """Region names; a Reservoir cloud is one region."""
        return [self._config.region]

    def zones(self):
        """Availability zone names of the region, in configured order."""
        return list(self._config.zones)

    def instance_types(self):
        """Instance types by name."""
        return dict(self._config.instance_types)
