# The two commands a newcomer needs: `make demo` and `make test`. Both set everything up first.
PY := .venv/bin/python
PRESET ?= small

.PHONY: setup demo test bench clean
setup:
	@bash scripts/setup.sh

demo: setup
	$(PY) -m chatforge demo --preset $(PRESET)

test: setup
	$(PY) -m pytest

bench: setup
	$(PY) bench/demo_time.py --preset $(PRESET)

clean:
	rm -rf runs .pytest_cache
