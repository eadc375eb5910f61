"""``python -m engine`` is ``trident``."""
import sys

from engine.cli import main

sys.exit(main())
