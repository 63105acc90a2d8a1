"""The root of every error the firmware bridge raises."""


class BridgeError(Exception):
    """Base class of all errors raised by `firmware_bridge`."""
