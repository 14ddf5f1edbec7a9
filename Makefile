.PHONY: run test lint format podctl

# Install what is needed, start PostgreSQL and Redis under DATA_DIR and run the console (README).
run:
	@./scripts/run.sh

# Install what is needed and pass the whole test suite against PostgreSQL, Redis and Chromium.
test:
	@./scripts/test.sh

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

format:
	.venv/bin/ruff format . && .venv/bin/ruff check --fix .

# Install the `podctl` command into the virtualenv (README: "podctl, the command line").
podctl:
	.venv/bin/pip install -q -e .
