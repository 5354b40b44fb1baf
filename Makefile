# Two commands matter on a fresh machine: `make demo` and `make test`. Both set up what they need.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
ENV ?= dev
PYTHON ?= $(shell command -v python3.11 || command -v python3)

export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export SAGEMAKER_SUPPRESS_V2_WARNING := 1
export CDK_DISABLE_VERSION_CHECK := 1

.PHONY: help setup demo synth test lint bench-synth diagram report-screenshots clean

help:
	@echo "make setup            venv with pinned Python packages, and the pinned CDK CLI (npm ci)"
	@echo "make demo             set up, then run the whole lifecycle locally and synthesise dev"
	@echo "make test             set up, then run the whole test suite"
	@echo "make synth ENV=dev    synthesise one environment offline (dev, staging, prod)"
	@echo "make lint             ruff"
	@echo "make bench-synth      synth benchmark, results in bench/results/"
	@echo "make diagram          redraw docs/architecture.svg from docs/architecture.dot (needs graphviz)"
	@echo "make report-screenshots  README's report screenshots (docs/reports/) from the last make demo"
	@echo "make clean            remove local state (cdk.out, .local, .cache)"

$(VENV)/.installed: requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt -c constraints.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

node_modules/.installed: package.json package-lock.json
	@node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' || (echo "Node.js 20+ is required" && exit 1)
	npm ci --no-audit --no-fund
	touch $@

setup: $(VENV)/.installed node_modules/.installed

# The local lifecycle (dogbreeds/demo.py), then the CDK app for dev, as a user would deploy it.
demo: setup
	$(PY) -m dogbreeds demo --workdir .local/demo
	npx --no-install cdk synth -q -c env=dev -o cdk.out/dev
	@echo "CDK templates for dev are in cdk.out/dev/; 'make clean' removes .local and cdk.out"

synth: setup
	npx --no-install cdk synth -q -c env=$(ENV) -o cdk.out/$(ENV)
	@echo "Templates for $(ENV) are in cdk.out/$(ENV)/ (one folder per environment, so they never mix)"

# Test files run in parallel, each file on one worker (its module fixtures, such as the synthesised
# environments, are built once). TEST_WORKERS=0 runs everything in this process.
TEST_WORKERS ?= 2
test: setup
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

lint: setup
	$(PY) -m ruff check .

bench-synth: setup
	$(PY) bench/bench_synth.py

diagram: docs/architecture.svg

docs/architecture.svg: docs/architecture.dot
	@command -v dot >/dev/null || (echo "Graphviz's dot is needed: apt-get install graphviz / brew install graphviz" && exit 1)
	dot -Tsvg $< -o $@

# The README's pictures of the monitoring reports: the last `make demo`'s drifted run, opened in the
# headless Chromium the report tests use (REPORT_RENDER), top of each page.
DEMO_SUMMARY := .local/demo/demo_summary.json
REPORT_RENDER := tests/pipeline_code/container/monitoring/report_browser/render.mjs
report-screenshots: setup
	@test -f $(DEMO_SUMMARY) || (echo "run 'make demo' first: the screenshots show its reports" && exit 1)
	node $(REPORT_RENDER) --out docs/reports --width 1100 --max-height 2300 \
		$$($(PY) -c 'import json, sys; print(" ".join(json.load(open(sys.argv[1]))["reports"]))' $(DEMO_SUMMARY)) >/dev/null
	@# 256 colours (octree keeps the small red marks red) make each picture about a third the size.
	$(PY) -c 'import sys; from PIL import Image; [Image.open(p).convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE).save(p, optimize=True) for p in sys.argv[1:]]' docs/reports/*.png
	@ls -l docs/reports/

clean:
	rm -rf cdk.out .local .cache .pytest_cache
