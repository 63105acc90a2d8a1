"""The root of every error the gateway package raises."""


class GatewayError(Exception):
    """Base class of all errors raised by `gateway`."""


class ConfigError(GatewayError):
    """The configuration is wrong: the operator must fix it. The message names the key."""
