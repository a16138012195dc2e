"""The ``retalk`` command line: one module per group of subcommands."""
