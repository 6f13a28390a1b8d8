# Two commands on a fresh machine: `make train` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
CONFIG ?= configs/default.yaml
# The default task starts from a policy pretrained on the corpus (configs/pretrain.yaml): from
# random initialisation it collapses onto the bare Standard Model. Pretrained once, then reused.
PRETRAINED := runs/pretrained

.PHONY: train test bench venv clean dark

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

# The dark_u1 task (configs/dark_u1.yaml): its own pretrained policy (~10 minutes, once), then a
# 15-minute harvest of anomaly-free chiral U(1)' charge sets.
PRETRAINED_DARK := runs/pretrained_dark_u1

$(PRETRAINED_DARK)/.done: $(STAMP)
	rm -rf $(PRETRAINED_DARK)
	$(PY) scripts/pretrain.py --config pretrain_dark_u1 --output_dir $(PRETRAINED_DARK)
	@touch $@

dark: $(STAMP) $(PRETRAINED_DARK)/.done
	$(PY) scripts/train.py --config configs/dark_u1.yaml --checkpoint $(PRETRAINED_DARK) --max_minutes 15

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) scripts/bench.py --json
	$(PY) scripts/bench_reward.py --json

clean:
	rm -rf $(VENV) runs .pytest_cache
