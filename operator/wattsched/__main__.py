"""`python -m wattsched` is the same as the `wattsched` command."""

from wattsched.cli import main

raise SystemExit(main())
