# Set-up and the main jobs. `make run` and `make test` create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test bench clean

install: $(STAMP)

$(STAMP): setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/pip install -q --no-deps tinysoundfont==0.3.7  # audio; --no-deps: see setup.py
	touch $(STAMP)

# The embedded default: the music21 Bach chorales (no network, no SRNN_SOURCE_DIR), a small SRNN,
# and one sampled piece.
run: install
	test -f data/bach.h5 || $(BIN)/srnn prep --dataset bach
	$(BIN)/srnn train --dataset bach --d 30 --a 30 --z 10 --epochs 5 --run-dir runs/bach-demo --resume
	mkdir -p out
	$(BIN)/srnn sample --run runs/bach-demo -o out/bach-demo.mid --png out/bach-demo.png --force

test: install
	$(BIN)/python -m pytest -q tests

bench: install
	$(BIN)/srnn bench --size small
	$(BIN)/srnn bench --size paper

clean:
	rm -rf $(VENV) build *.egg-info
