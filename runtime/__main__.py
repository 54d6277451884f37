"""``python -m runtime IMAGE ...`` is ``python -m runtime.classify IMAGE ...``."""

import sys

from runtime.classify import main

sys.exit(main())
