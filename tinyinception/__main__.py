"""``python -m tinyinception``: the same command as ``tinyinception`` (see tinyinception.cli)."""
import sys

from .cli import main

sys.exit(main())
