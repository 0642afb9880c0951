"""``python -m terry`` is ``terry``."""

from terry.cli import main

main()
