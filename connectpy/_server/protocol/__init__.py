"""The server half of each wire protocol, behind the interface in :mod:`.base`."""
