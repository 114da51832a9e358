"""``python -m pipeline.alerts status|drain --config cameras.yaml``."""

import sys

from pipeline.alerts.relay import cli_main

sys.exit(cli_main(sys.argv[1:]))
