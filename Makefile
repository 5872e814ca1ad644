# The two commands of the README: `make demo` runs the main job, `make test` runs the tests.
VENV ?= .venv
export VENV

.PHONY: demo test lint bootstrap clean

bootstrap:
	@scripts/bootstrap.sh

demo: bootstrap
	$(VENV)/bin/rewind demo

test: bootstrap
	scripts/test.sh

lint: bootstrap
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	cargo clippy --release --manifest-path native/Cargo.toml -- -D warnings

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache native/target
