"""The root of every error the firmware bridge raises, and what each tells the caller to do."""


class BridgeError(Exception):
    """Base class of all errors raised by `firmware_bridge`."""


class ProtocolError(BridgeError):
    """A message could not be decoded or broke the protocol's rules (never raised by the stream
    deframer, which drops and counts bad frames instead)."""


class LinkClosed(BridgeError):
    """We closed the link (shutdown): nothing to retry."""


class LinkBroken(BridgeError):
    """The device went away or stopped answering: the link reconnects by itself; retry later."""

    def __init__(self, device: str, reason: str) -> None:
        super().__init__(f"adapter {device}: {reason}")
        self.device = device
        self.reason = reason


def broken_reason(group: BaseExceptionGroup[LinkBroken]) -> str:
    """The reason of the first `LinkBroken` in a nursery's exception group."""
    first: BaseException = group
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first.reason if isinstance(first, LinkBroken) else repr(first)


async def raise_broken(device: str, reason: str) -> None:
    """Raise `LinkBroken`: started in a connection's nursery, it tears the connection down
    from code that is not inside it (a command's task, a reader's callback)."""
    raise LinkBroken(device, reason)


class CommandFailed(BridgeError):
    """A command was refused by the device or not acknowledged after every retry."""

    def __init__(self, port: int, command: str, reason: str) -> None:
        super().__init__(f"port {port}: {command} failed: {reason}")
        self.port = port
        self.command = command
        self.reason = reason


class PortUnsupported(CommandFailed):
    """The port cannot do this at all (ring on an FXO port, dial on FXS, a codec it lacks)."""
