# The two commands of the README:  `make demo`  and  `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_CONFIG := configs/demo/a2mim_resnet18_1xb16-coslr-30e_photos-128px.py
DEMO_WORK_DIR := work_dirs/a2mim_demo
PYTEST_ARGS ?=

.PHONY: setup demo test

setup:
	bash tools/setup_env.sh

# A2MIM pre-training of a ResNet-18 on crops of real photos through `mim train mmpretrain`.
demo: setup
	$(PY) -c "from a2mim_plugin.datasets import make_demo_imagenet as m; print('data:', m('data/a2mim_demo'))"
	$(VENV)/bin/mim train mmpretrain $(DEMO_CONFIG) --work-dir $(DEMO_WORK_DIR)
	$(PY) tools/summarize_run.py $(DEMO_WORK_DIR)

test: setup
	$(PY) -m pytest tests $(PYTEST_ARGS)
