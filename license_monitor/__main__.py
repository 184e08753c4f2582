"""`python -m license_monitor`: see license_monitor.cli."""

import sys

from license_monitor.cli import main

sys.exit(main())
