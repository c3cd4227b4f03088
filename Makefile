# One-command set-up: `make run` serves the app, `make test` runs the whole suite.
# Both create .venv when it is missing and (re)install when requirements.txt changes.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 8501

.PHONY: run test lint bench-tsne bench-vit bench-pages bench-cka clean

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/streamlit run app.py --server.port $(PORT) --browser.gatherUsageStats false

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -n 2

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench-tsne: $(STAMP)
	$(PY) bench/tsne.py

bench-vit: $(STAMP)
	$(PY) bench/vit.py

bench-pages: $(STAMP)
	$(PY) bench/pages.py

bench-cka: $(STAMP)
	$(PY) bench/cka.py

clean:
	rm -rf $(VENV) artifacts .pytest_cache .ruff_cache
