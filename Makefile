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

# The demo, offline: the music21 Bach chorales (no network, no SRNN_SOURCE_DIR), a small RNN-NADE (chosen for
# the statistics of its samples against the test chorales: docs/RESULTS.md section 8), one piece as MIDI,
# picture and sound, the run's report page, and the statistics table. A rerun does not train again.
DEMO := --dataset bach --z 0 --emission nade --d 100 --hidden 200 --epochs 10
run: install
	test -f data/bach.h5 || $(BIN)/srnn prep --dataset bach
	$(BIN)/srnn train $(DEMO) --run-dir runs/bach-demo-rnn-nade --resume
	mkdir -p out
	$(BIN)/srnn sample --run runs/bach-demo-rnn-nade --steps 64 -o out/bach-demo.mid --png out/bach-demo.png \
	  --wav out/bach-demo.wav --force
	$(BIN)/srnn report runs/bach-demo-rnn-nade --evaluate -o out/bach-demo.html --force
	$(BIN)/srnn evaluate runs/bach-demo-rnn-nade --music
	@echo "wrote out/bach-demo.mid and out/bach-demo.wav (a sampled chorale: play the WAV in any audio player),"
	@echo "      out/bach-demo.png (its piano roll) and out/bach-demo.html (the run's page: numbers, samples"
	@echo "      beside test chorales with players, statistics; open it in a browser). The table above compares"
	@echo "      32 sampled pieces with the test chorales (ratio 1 and overlap 1: the same)."

# two pytest-xdist workers: most tests wait on `srnn` subprocesses starting torch (-n 0: one process)
test: install
	$(BIN)/python -m pytest -q -n 2 tests

bench: install
	$(BIN)/srnn bench --size small
	$(BIN)/srnn bench --size paper

clean:
	rm -rf $(VENV) build *.egg-info
