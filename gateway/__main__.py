"""`python -m gateway` is the `tipring` command."""

from gateway.cli import main

raise SystemExit(main())
