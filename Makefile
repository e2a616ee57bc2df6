# streamproc — everything a fresh clone needs, installed by the project's own files.
#   make demo   the main job end to end on the local broker
#   make test   the whole suite (unit + integration on the real local Kafka)

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SP := $(VENV)/bin/streamproc
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: help deps venv kafka-jars kafka-up kafka-down kafka-status observe-up observe-down test test-unit demo bench fuzz model lint typecheck clean

help:
	@echo "make demo | make test | make kafka-up | make kafka-down | make observe-up | make observe-down | make bench | make fuzz | make model | make lint"

# Debian packages the commands need (Java 17 for the broker, Maven for its jars, Prometheus,
# promtool and Alertmanager for alerts, Chromium for report tests). Installed only when
# missing; needs root or sudo.
deps:
	@.ci/install-debian-deps

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev,plot]'
	@# pycanon (the tests' k-anonymity oracle) pins exact old numpy/pandas/scipy releases;
	@# it runs on the constrained ones, so it is installed without its pins.
	$(PY) -m pip install -q --no-deps -c constraints.txt pycanon tabulate beartype
	@touch $(STAMP)

venv: $(STAMP)

kafka-jars: deps venv
	@$(SP) kafka fetch

kafka-up: kafka-jars
	@$(SP) kafka up

kafka-down: venv
	@$(SP) kafka down

kafka-status: venv
	@$(SP) kafka status

# A local Prometheus (:9490) and Alertmanager (:9493) on loopback with the project's scrape
# config, rules and route; they scrape the worker at OBSERVE_TARGET and deliver alerts to
# OBSERVE_WEBHOOK. Data and PID files under .cache/observe/.
OBSERVE_TARGET ?= 127.0.0.1:9464
OBSERVE_WEBHOOK ?= http://127.0.0.1:9499/alerts
observe-up: deps venv
	@$(SP) observe up --config deploy/prometheus/prometheus.yml \
	  --rules deploy/prometheus/rules.yml --alertmanager-config deploy/alertmanager/alertmanager.yml \
	  --target $(OBSERVE_TARGET) --webhook $(OBSERVE_WEBHOOK)

observe-down: venv
	@$(SP) observe down

# Starts the broker if none answers, runs the whole suite, stops what it started.
test: kafka-jars
	@started=0; \
	if ! $(SP) kafka status >/dev/null 2>&1; then $(SP) kafka up || exit 1; started=1; fi; \
	$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$started = 1 ]; then $(SP) kafka down; fi; \
	exit $$rc

test-unit: venv
	$(PY) -m pytest -m "not integration" $(PYTEST_ARGS)

demo: kafka-jars
	@started=0; \
	if ! $(SP) kafka status >/dev/null 2>&1; then $(SP) kafka up || exit 1; started=1; fi; \
	$(SP) demo; rc=$$?; \
	if [ $$started = 1 ]; then $(SP) kafka down; fi; \
	exit $$rc

bench: kafka-jars
	$(PY) -m pip install -q -c constraints.txt -e '.[dev,plot,bench]'
	@started=0; \
	if ! $(SP) kafka status >/dev/null 2>&1; then $(SP) kafka up || exit 1; started=1; fi; \
	rc=0; for b in load/bench_*.py; do echo "== $$b"; $(PY) -m load.$$(basename $$b .py) || rc=1; done; \
	if [ $$started = 1 ]; then $(SP) kafka down; fi; \
	exit $$rc

fuzz: venv
	$(PY) -m load.fuzz_decode --inputs 1000000

# The detector model topologies/access.yaml expects, trained on a synthetic clean baseline
# (80 principals, 21 days; about 20 s). Train on your own access log for production.
model: venv
	mkdir -p .cache models
	$(PY) -m streamproc.testing.access_traces --seed 1000 --principals 80 --days 21 --baseline --out .cache/baseline.jsonl
	$(SP) detector train --events .cache/baseline.jsonl --model models/access-detector.skops

lint: venv
	$(VENV)/bin/ruff check streamproc tests load deploy/grafana
	$(VENV)/bin/ruff format --check streamproc tests load deploy/grafana

typecheck: venv
	$(VENV)/bin/mypy

clean: kafka-down observe-down
	rm -rf .cache/kafka/default .cache/worker .cache/observe/default
