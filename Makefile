# The two commands a newcomer needs: `make demo` and `make test`. Both set themselves up.
.PHONY: demo test lint typecheck unit bench clean

DEMO_DIR ?= var/demo
PORT ?= 8000
SANDBOX_PORT ?= 18101

# make demo PORT=8080 SANDBOX_PORT=19101: the gateway's port and the first of the five sample
# agency systems' ports. A taken port stops the demo with a message naming it.
demo:
	@scripts/bootstrap.sh
	.venv/bin/gateway demo --data-dir $(DEMO_DIR) --port $(PORT) --sandbox-port $(SANDBOX_PORT)

test: lint typecheck unit

lint:
	@scripts/bootstrap.sh dev
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

typecheck:
	@scripts/bootstrap.sh dev
	.venv/bin/mypy

unit:
	@scripts/bootstrap.sh dev
	@scripts/services.sh
	@scripts/chromium.sh
	.venv/bin/python -m pytest -q -p no:cacheprovider -n auto

bench:
	@scripts/bootstrap.sh dev bench
	.venv/bin/python -m bench

clean:
	rm -rf .venv var .mypy_cache .ruff_cache .pytest_cache
