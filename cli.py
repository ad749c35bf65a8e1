from attribution.cli import cli

cli()
