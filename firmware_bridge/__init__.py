"""The line adapters: the tipring adapter protocol, the serial link, the voice modem, simulators."""
