# Two commands on a fresh machine: `make train` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
CONFIG ?= configs/default.yaml
# The default task starts from a policy pretrained on the corpus (configs/pretrain.yaml): from
# random initialisation it collapses onto the bare Standard Model. Pretrained once, then reused.
PRETRAINED := runs/pretrained

.PHONY: train test bench venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

$(PRETRAINED)/.done: $(STAMP)
	rm -rf $(PRETRAINED)
	$(PY) scripts/pretrain.py --config pretrain --output_dir $(PRETRAINED)
	@touch $@

ifeq ($(CONFIG),configs/default.yaml)
train: $(STAMP) $(PRETRAINED)/.done
	$(PY) scripts/train.py --config $(CONFIG) --checkpoint $(PRETRAINED)
else
train: $(STAMP)
	$(PY) scripts/train.py --config $(CONFIG)
endif

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) scripts/bench.py --json
	$(PY) scripts/bench_reward.py --json

clean:
	rm -rf $(VENV) runs .pytest_cache
