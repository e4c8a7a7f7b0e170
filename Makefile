# The README's two commands. Each creates (or reuses) .venv, installs what it needs, and runs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.yolo-lat-installed
export YOLO_OFFLINE := 1
export MPLBACKEND := Agg

.PHONY: demo test install lint clean

$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: served from local disk on the project's machines (a bare `torch` may download GBs)
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	# constraints.txt: the versions the README's figures were measured with
	$(PY) -m pip install --quiet -e ".[dev]" -c constraints.txt
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/yolo-lat demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	# the documentation site: a broken link or a page missing from mkdocs.yml fails the tests
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet --site-dir site
	$(PY) -m pytest -n 2 --timeout 900

clean:
	rm -rf $(VENV) runs .pytest_cache build *.egg-info
