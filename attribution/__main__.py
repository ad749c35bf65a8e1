from attribution.cli import cli

cli(prog_name="attribution")
