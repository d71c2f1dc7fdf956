import sys

from ourvoice.cli import main

sys.exit(main())
