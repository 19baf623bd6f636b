# robust_train: `make train` and `make test` do all the set-up on a fresh machine (see README.md).
#
#   make train       install what is missing, then run the default training job (Fashion-MNIST, CPU)
#   make test        install what is missing (incl. test extras), then run the default test suite
#   make test-full   ... including slow tests (reference parity, DDP, sweeps)
#   make test-gpu    ... GPU tests only
#   make gpu-check   GPU tests + CUDA benchmarks + end-to-end ImageNet-C evaluation (benchmarks/gpu_check.sh)
#   make lint        ruff check + format check
#   make bench       benchmarks (writes benchmarks/results/)

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python
PIP := $(PYTHON) -m pip
TORCH_PAIR ?= torch==2.13.0 torchvision==0.28.0
FMNIST_DIR ?= /usr/share/datasets/fashion-mnist
STAMP_DIR := .make
# pytest workers for `make test`: 2 cores -> 2 single-threaded workers (two 2-thread workers would oversubscribe the
# CPU, and multi-threaded torch ops slow down badly on an oversubscribed CPU)
PYTEST_WORKERS ?= 2
# ROBUST_TRAIN_FUSION=off: tests run the eager reference formulations (a compile costs seconds per kernel and
# shape); tests of the fused kernels and of the tiered default mode switch fusion themselves
PYTEST_ENV := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 ROBUST_TRAIN_FUSION=off
PYTEST_ARGS ?=
TRAIN_ARGS ?=

.PHONY: help install install-test torch data reference train test test-full test-gpu gpu-check lint format bench clean

help: ## show this help
	@grep -E '^[a-zA-Z_-]+:.*?## .*$$' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-12s %s\n", $$1, $$2}'

# ------------------------------------------------------------------------------------------------------------- set-up
torch: ## make sure a working torch + torchvision pair is installed
	@if $(PYTHON) -c "import torch, torchvision, torchvision.ops; torchvision.ops.nms(torch.zeros(1, 4), torch.zeros(1), 0.5)" >/dev/null 2>&1; then \
		echo "torch/torchvision OK"; \
	else \
		echo ">> torch/torchvision missing or broken: installing $(TORCH_PAIR) from PyPI"; \
		$(PIP) uninstall -y torch torchvision >/dev/null 2>&1 || true; \
		$(PIP) --isolated install $(TORCH_PAIR); \
	fi

data: ## make sure the embedded default dataset (Fashion-MNIST) is present
	@if [ -f $(FMNIST_DIR)/train-images-idx3-ubyte.gz ] || [ -f $(FMNIST_DIR)/train-images-idx3-ubyte ]; then \
		echo "Fashion-MNIST OK ($(FMNIST_DIR))"; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
		echo ">> installing Fashion-MNIST (apt-get install dataset-fashion-mnist)"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; \
	else \
		echo "!! Fashion-MNIST not found in $(FMNIST_DIR): run 'sudo apt-get install dataset-fashion-mnist'," \
			"or put the IDX files in ./data (robust-train falls back to it)"; \
	fi

reference: ## best effort: the original imagenet_c package and ImageMagick for Wand (reference tests skip without)
	@$(PYTHON) -c "import imagenet_c" >/dev/null 2>&1 || $(PIP) install -q --no-deps imagenet-c==0.0.3 || \
		echo "!! could not install imagenet-c: its reference tests will skip"
	@if ! $(PYTHON) -c "import wand.image" >/dev/null 2>&1; then \
		if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
			DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libmagickwand-6.q16-6 || \
			echo "!! could not install ImageMagick: imagenet_c reference tests will skip"; \
		else \
			echo "!! ImageMagick (libmagickwand-6.q16-6) missing: imagenet_c reference tests will skip"; \
		fi; \
	fi

$(STAMP_DIR)/install.stamp: pyproject.toml
	@mkdir -p $(STAMP_DIR)
	@$(MAKE) --no-print-directory torch
	$(PIP) install -q -e .
	@touch $@

$(STAMP_DIR)/install-test.stamp: pyproject.toml $(STAMP_DIR)/install.stamp
	$(PIP) install -q -e ".[test]"
	@$(MAKE) --no-print-directory reference
	@touch $@

install: $(STAMP_DIR)/install.stamp ## install the package (editable) and its dependencies
install-test: $(STAMP_DIR)/install-test.stamp ## install the package with the test extras and reference packages

# ------------------------------------------------------------------------------------------------------------- jobs
train: install data ## run the default training job (Fashion-MNIST, ResNet-8, CPU); TRAIN_ARGS="..." adds overrides
	$(PYTHON) -m robust_train.cli.train experiment=fmnist_default $(TRAIN_ARGS)

test: install-test data ## run the default test suite (not slow, not gpu)
	$(PYTEST_ENV) $(PYTHON) -m pytest -m "not slow and not gpu" -n $(PYTEST_WORKERS) -q $(PYTEST_ARGS)

test-full: install-test data ## run every test except GPU ones (slow included)
	$(PYTEST_ENV) $(PYTHON) -m pytest -m "not gpu" -n $(PYTEST_WORKERS) -q $(PYTEST_ARGS)

test-gpu: install-test ## run the GPU tests (skip without CUDA)
	$(PYTHON) -m pytest -m gpu -q $(PYTEST_ARGS)

gpu-check: install-test ## all GPU checks in one go (GPU tests, CUDA benchmarks, end-to-end ImageNet-C): needs CUDA
	PYTHON=$(PYTHON) bash benchmarks/gpu_check.sh

lint: install-test ## ruff lint and format check
	$(PYTHON) -m ruff check robust_train tests benchmarks
	$(PYTHON) -m ruff format --check robust_train tests benchmarks

format: install-test ## ruff autofix and format
	$(PYTHON) -m ruff check --fix robust_train tests benchmarks
	$(PYTHON) -m ruff format robust_train tests benchmarks

BENCH_ARGS ?=
bench: install-test ## run every benchmark script (see benchmarks/README.md; run on a quiet machine)
	@for f in benchmarks/[a-z]*.py; do \
		case "$$f" in benchmarks/common.py|benchmarks/reference.py|benchmarks/gpu_check.sh) continue;; esac; \
		echo ">> $(PYTHON) $$f $(BENCH_ARGS)"; $(PYTHON) $$f $(BENCH_ARGS) || exit $$?; \
	done

clean: ## remove the install stamps, logs and caches
	rm -rf $(STAMP_DIR) logs outputs multirun .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
