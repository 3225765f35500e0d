"""`python -m highway_study.benchmark_stack`: the command's name; the tool is
highway_study.bench.stack."""

import sys

from highway_study.bench.stack import main

if __name__ == "__main__":
    sys.exit(main())
