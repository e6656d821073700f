"""Entry point of ``python -m include.infra``."""

from include.infra.cli import main

raise SystemExit(main())
