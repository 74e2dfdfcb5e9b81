# depthdistill: every target installs what it needs into .venv itself.
# Fresh machine: `make demo` (the whole chain on the embedded default) and `make test`.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
DD     := $(VENV)/bin/depthdistill
STAMP  := $(VENV)/.installed
CONFIG ?= stages.yaml
# OpenMP threads that spin while waiting starve each other (and Ray's workers) on small machines.
export OMP_WAIT_POLICY ?= PASSIVE
STORE  ?=
RUN    ?= runs/demo
# Quiet pip, but keep errors. torch first: the pinned CPU build lies on local disk, and a bare
# `torch` requirement resolved later would pull a multi-GB CUDA build.
PIP    := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: install test test-all demo labels train eval predict teachers teachers-native bench science clean help

help:
	@echo "make demo     the whole chain on the embedded default (no GPU, no downloads)"
	@echo "make test     the fast test suite (what CI runs); make test-all adds the slow tests"
	@echo "make labels   depthdistill labels --config \$$(CONFIG)   (RAY_ADDRESS=... for a cluster)"
	@echo "make train    depthdistill train --shards \$$(STORE) --config \$$(CONFIG)"
	@echo "make eval     depthdistill eval on the embedded teachers"
	@echo "make teachers retrain the embedded tiny teachers (CPU, <= 60 min)"
	@echo "make bench    throughput / bytes / scaling benchmarks (print figures)"

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

test-all: $(STAMP)
	$(PY) -m pytest -q -m ""

# The embedded default writes both store formats (runs/labels and runs/labels-zarr); on a cluster
# pick one: make labels CONFIG=configs/paper.yaml FORMATS=webdataset
FORMATS ?= webdataset zarr
labels: $(STAMP)
	@for f in $(FORMATS); do \
	  out=runs/labels; [ $$f = webdataset ] || out=runs/labels-$$f; \
	  $(DD) labels --config $(CONFIG) --format $$f --out $$out || exit 1; done

train: $(STAMP)
	$(DD) train --config $(CONFIG) --shards $(STORE)

eval: $(STAMP)
	$(DD) eval --model embedded://dav2-tiny --model embedded://genpercept-tiny --dataset world

predict: $(STAMP)
	$(DD) predict $(IMAGES) --model embedded://dav2-tiny --out runs/predict

teachers: $(STAMP)
	$(DD) teachers train --out depthdistill/assets/teachers

# the headline's teachers: trained on native-resolution crops only (docs/science/README.md)
teachers-native: $(STAMP)
	$(DD) teachers train --out depthdistill/assets/teachers --crop-max 168 --whole-image-fraction 0 --suffix -native

# CPU benchmarks; the GPU ones (bench/*_gpu.py) need a CUDA machine: see docs/bench/gpu.md.
bench: $(STAMP)
	@for b in $(filter-out %_gpu.py,$(wildcard bench/bench_*.py)); do echo "== $$b"; $(PY) $$b || exit 1; done

demo: $(STAMP)
	$(PY) -m depthdistill.demo --config $(CONFIG) --out $(RUN)

science: $(STAMP)
	$(PY) -m depthdistill.demo.science --config $(CONFIG) --out runs/science --docs docs/science $(ARGS)

clean:
	rm -rf runs .pytest_cache
