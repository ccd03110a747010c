"""`python -m devstack up|down|status`."""

from devstack.cli import main

raise SystemExit(main())
