"""Subcommands of the `vsml-gym` command line that belong to the environment suite."""
