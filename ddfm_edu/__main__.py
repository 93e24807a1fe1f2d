"""`python -m ddfm_edu` runs the command line (`ddfm-edu`)."""

import sys

from ddfm_edu.cli import main

sys.exit(main())
