import sys

from mtm.cli import main

sys.exit(main())
