"""``python -m agentgraph`` (and ``accelerate launch -m agentgraph train roles ...``): the CLI."""

import sys

from agentgraph.cli import main

sys.exit(main())
