import sys

from originality.cli import main

sys.exit(main())
