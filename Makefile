# tinycnn: `make install`, then `make test`. Everything runs inside .venv.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: install test gradcheck bench clean

install: $(PY)
	$(PY) -m pip install --upgrade pip >/dev/null
	$(PY) -m pip install -e '.[test]'

$(PY):
	$(PYTHON) -m venv $(VENV)

test:
	$(PY) -m pytest -q

# the finite-difference gradient checks alone, with many more hypothesis examples
gradcheck:
	HYPOTHESIS_PROFILE=gradcheck $(PY) -m pytest -q -m gradcheck

bench:
	$(PY) -m bench.conv

clean:
	rm -rf .pytest_cache .hypothesis build *.egg-info figures
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
