"""``python -m pipelines.cli`` = ``trialpipe``."""

from pipelines.cli import main

main()
