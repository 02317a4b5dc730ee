# Two entry points for a fresh machine:
#   make run   -- create .venv, install, start the app on the shipped defaults
#   make test  -- create .venv, install (plus chromium for browser tests), run the whole suite
# On a machine with a CUDA GPU:
#   make gpu-check -- the cuda-marked tests plus the GPU benchmarks (into benchmarks/README.md)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
PORT   ?= 8501

.PHONY: run test setup setup-dev browser-deps bench gpu-check clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt | $(PY)
	$(PIP) install -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(VENV)/.installed
	$(PIP) install -r requirements-dev.txt
	touch $@

setup: $(VENV)/.installed
setup-dev: $(VENV)/.installed-dev

browser-deps:
	@command -v chromium >/dev/null 2>&1 || ./scripts/install_chromium.sh

run: setup
	$(VENV)/bin/streamlit run streamlit_app.py --server.port $(PORT)

test: setup-dev browser-deps
	$(PY) -m pytest -q

bench: setup-dev
	$(PY) benchmarks/bench_metrics.py
	$(PY) benchmarks/bench_attack.py
	$(PY) benchmarks/bench_evaluate.py
	$(PY) benchmarks/bench_app.py --part fragment
	$(PY) benchmarks/bench_chance.py
	$(PY) benchmarks/bench_upload.py
	$(PY) benchmarks/bench_imagenet.py
	@echo "bench_memory.py (peak RSS of ImageNet attack steps, needs several GB) runs on its own"

gpu-check: setup-dev
	$(PY) benchmarks/gpu_check.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
