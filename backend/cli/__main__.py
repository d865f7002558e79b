"""`python -m backend.cli`: the same as the `reservoir` command."""
import sys

from . import main

sys.exit(main())
