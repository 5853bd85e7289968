import sys

from warming.cli.main import main

sys.exit(main())
