"""tipring's appliance: the actors around a call, the realtime client and server, the CLI."""
