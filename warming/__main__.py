import sys

from warming.cli import main

sys.exit(main())
