import sys

from bench.jwt_interop import main

sys.exit(main())
