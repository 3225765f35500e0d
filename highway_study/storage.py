"""`python -m highway_study.storage STUDY_NAME`: the command's name; the code is in
highway_study.runtime.storage."""

import sys

from highway_study.runtime.storage import main

if __name__ == "__main__":
    sys.exit(main())
