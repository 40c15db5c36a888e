# The two commands of the README: `make demo` (the whole loop) and `make test`.
.PHONY: setup demo test bench lint

setup:
	./scripts/bootstrap.sh

demo: setup
	uv run --frozen tenure demo $(ARGS)

test: setup
	uv run --frozen pytest $(ARGS)

lint: setup
	uv run --frozen ruff check .
