# The two commands of the README:  `make demo`  and  `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_CONFIG := configs/demo/a2mim_resnet18_1xb16-coslr-30e_photos-128px.py
DEMO_WORK_DIR := work_dirs/a2mim_demo
PYTEST_ARGS ?=

INTERACTION_OUT ?= docs/interaction_demo
# The worked example's reduced protocol (the paper: 14 x 14 grid at 224 px, 50 pairs, 50 contexts).
INTERACTION_ARGS ?= --num-images 14 --grid 8 --pairs 6 --contexts 6 --batch-size 128
INTERACTION_TITLE ?= toy demo: 14 held-out photo crops, 8 x 8 grid, 6 pairs, 6 contexts

.PHONY: setup demo test interaction-demo

setup:
	bash tools/setup_env.sh

# A2MIM pre-training of a ResNet-18 on crops of real photos through `mim train mmpretrain`;
# the summary prints the k-NN top-1 (held-out crops) before training and every 10 epochs.
demo: setup
	$(PY) -c "from a2mim_plugin.datasets import make_demo_imagenet as m; print('data:', m('data/a2mim_demo'))"
	$(PY) -c "from a2mim_plugin.datasets import make_demo_classification as m; print('k-NN data:', m('data/a2mim_demo_cls'))"
	$(VENV)/bin/mim train mmpretrain $(DEMO_CONFIG) --work-dir $(DEMO_WORK_DIR)
	$(PY) tools/summarize_run.py $(DEMO_WORK_DIR)

$(DEMO_WORK_DIR)/epoch_30.pth:
	$(MAKE) demo

# Fine-tune the demo's A2MIM ResNet-18 and a random-init one as "which photo" classifiers,
# then draw both models' multi-order interaction curves (docs/analysis.md).
interaction-demo: setup $(DEMO_WORK_DIR)/epoch_30.pth
	$(PY) -c "from a2mim_plugin.datasets import make_demo_classification as m; print('data:', m('data/a2mim_demo_cls'))"
	$(VENV)/bin/mim train mmpretrain configs/demo/resnet18_a2mim-demo-pre_1xb32-30e_photo-cls-96px.py --work-dir work_dirs/a2mim_demo_ft
	$(VENV)/bin/mim train mmpretrain configs/demo/resnet18_scratch_1xb32-30e_photo-cls-96px.py --work-dir work_dirs/scratch_demo_ft
	$(PY) tools/interaction_strength.py \
	    --model A2MIM configs/demo/resnet18_a2mim-demo-pre_1xb32-30e_photo-cls-96px.py work_dirs/a2mim_demo_ft/epoch_30.pth \
	    --model scratch configs/demo/resnet18_scratch_1xb32-30e_photo-cls-96px.py work_dirs/scratch_demo_ft/epoch_30.pth \
	    --data-root data/a2mim_demo_cls --data-prefix val --resize 96 --crop-size 96 $(INTERACTION_ARGS) \
	    --out-dir $(INTERACTION_OUT) --cache-dir work_dirs/interaction_demo_cache \
	    --title '$(INTERACTION_TITLE)'

test: setup
	$(PY) -m pytest tests $(PYTEST_ARGS)
