import sys

from appendonly.cli import main

sys.exit(main())
