"""``python -m fastconv ...``: the ``fastconv`` console script (``bench``, ``train``)."""

import sys

from .cli import main

sys.exit(main())
