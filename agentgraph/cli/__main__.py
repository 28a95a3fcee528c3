import sys

from agentgraph.cli import main

sys.exit(main())
