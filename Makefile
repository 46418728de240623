# The two commands a fresh machine needs (see README):
#   make train   set up .venv, train on the shipped corpus, evaluate, and predict an example
#   make test    set up .venv, lint, and run the test suite
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup train test
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

train: setup
	$(BIN)/ticket-nlp train
	$(BIN)/ticket-nlp evaluate
	$(BIN)/ticket-nlp predict "收到就发现有瑕疵，袖口开线" --claimed 七天无理由退货

test: setup
	$(BIN)/ruff check src tests scripts benchmarks notebooks
	$(BIN)/python -m pytest -m 'spark or not spark'
