"""``python -m graphnet``: the same as the ``graphnet`` command."""

from graphnet.cli import cli

if __name__ == "__main__":
    cli(prog_name="graphnet")
