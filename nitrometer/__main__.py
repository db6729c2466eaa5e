import sys

from nitrometer.cli import main

sys.exit(main())
