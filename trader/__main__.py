"""`python -m trader …` runs the command-line interface."""

from trader.cli import main

raise SystemExit(main())
