"""`python -m highway_study.benchmark_sweep`: the command's name; the tool is
highway_study.bench.sweep."""

import sys

from highway_study.bench.sweep import main

if __name__ == "__main__":
    sys.exit(main())
