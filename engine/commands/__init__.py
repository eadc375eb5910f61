"""Command-line commands, one module each (see engine.cli.COMMANDS)."""
