"""`python -m hpa_scc`: the `hpa-scc` command line."""

import sys

from hpa_scc.app.cli import main

if __name__ == "__main__":
    sys.exit(main())
