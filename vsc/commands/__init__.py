"""Command groups of the `vsc` command line, registered on `vsc.cli.app` when imported."""
