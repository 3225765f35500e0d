"""`python -m highway_study.benchmark`: the command's name; the tool is highway_study.bench."""

import sys

from highway_study.bench.benchmark import main

if __name__ == "__main__":
    sys.exit(main())
