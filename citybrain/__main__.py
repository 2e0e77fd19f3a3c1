import sys

from citybrain.cli import main

sys.exit(main())
