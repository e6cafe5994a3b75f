"""Subcommands of the graphc command line."""
