# tinycnn: `make install`, then `make test`; `make` alone lists every target.
# Everything runs inside .venv.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.DEFAULT_GOAL := help
# the targets that draw one technique's figures (their commands are written once, in vis/gallery.py)
FIGURE_TARGETS = filters training_curve saliency guided_backprop occlusion attribution max_patches neighbors \
                 embedding class_visualization fooling deepdream style_transfer style_controls fast_style feature_inversion \
                 texture_synthesis multifaceted

.PHONY: help ready install test gradcheck fuzz bench gpu-check gpu-data clean demo weights data images train train_fast_style figures thumbnails \
        $(FIGURE_TARGETS)

help: ## this list
	@echo "tinycnn: make <target>   (first: make install)"
	@grep -E '^[a-z_-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z_-]+):.*## (.*)/\1|\2/' | awk -F'|' '{printf "  %-22s %s\n", $$1, $$2}'

ready:
	@test -x $(PY) || { echo "error: $(PY) does not exist yet: run 'make install' first" >&2; exit 1; }

install: $(PY) ## .venv with tinycnn, numpy, scipy, pillow, pytest, hypothesis
	$(PY) -m pip install --upgrade pip >/dev/null
	$(PY) -m pip install -e '.[test]'

$(PY):
	$(PYTHON) -m venv $(VENV)

# the second run puts the strict CuPy stand-in (tests/strict_cupy) on the path: the
# core and vis tests again, with CuPy's rules, so a host/device mistake fails here; the third
# runs the layers, networks and models on the layers' clear path alone (the engine off:
# tinycnn/engine/__init__.py), against the naive loops, PyTorch and the shipped reference
CLEAR_PATH_TESTS = tests/test_layers.py tests/test_net.py tests/test_models.py tests/test_torch_oracle.py \
                   tests/test_shipped_weights.py tests/test_backends_agree.py
test: ready ## the whole test suite, again under the strict CuPy stand-in, the layers on their clear path
	$(PY) -m pytest -q
	TINYCNN_BACKEND=cupy PYTHONPATH=tests/strict_cupy $(PY) -m pytest -q -p no:cacheprovider --ignore=tests/test_gallery.py
	TINYCNN_ENGINE=0 $(PY) -m pytest -q -p no:cacheprovider $(CLEAR_PATH_TESTS)

# the finite-difference gradient checks alone, with many more hypothesis examples
gradcheck: ready ## only the finite-difference gradient checks, 400 examples each
	HYPOTHESIS_PROFILE=gradcheck $(PY) -m pytest -q -m gradcheck

# hostile input (forged checkpoints, .npz files, images, command lines), many hypothesis examples
fuzz: ready ## only the hostile-input fuzz tests, 1000 examples each (several minutes)
	HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest -q -m fuzz

# the loops twice: at every core, then at one thread (what python -m vis.* uses) idle and
# beside a competing CPU-bound process
bench: ready ## speed and memory against PyTorch (needs torch)
	$(PY) -m bench.conv
	$(PY) -m bench.loops
	$(PY) -m bench.loops --threads 1 --load

# on a lent GPU machine (CuPy, PyTorch CUDA): no .venv needed there, plain python3 will do
GPU_PY = $(if $(wildcard $(PY)),$(PY),python3)
gpu-check: ## on a GPU: launch cost, NumPy vs CuPy, benchmarks vs PyTorch CUDA, CuPy tests, figures (OUT=folder)
	$(GPU_PY) -m bench.gpu_check --out $(or $(OUT),gpu-check) $(if $(FIGURES),--figures $(FIGURES))

gpu-data: ready ## a CIFAR-10 subset of a few MB in gpu-data/, to carry to a GPU machine for make gpu-check
	$(PY) -m bench.cifar_subset --out gpu-data

# figures from the shipped CIFAR-10 weights alone: no network, no ../shared needed
demo: filters training_curve ## figures from the shipped weights alone, offline
	@echo "demo figures are in $(CURDIR)/figures/"

# one target per technique (make help lists them); each runs `python -m vis.gallery --only <target>`,
# which runs that target's commands from vis/gallery.py (add --print to see them) and updates
# figures/index.html; ARGS='--seed 1' appends options to every command
GALLERY_ARGS = $(if $(ARGS), --args="$(ARGS)")
filters: ## first- and higher-layer filters of the CIFAR-10 net, first-layer filters of SqueezeNet
training_curve: ## the CIFAR-10 net's loss and accuracy per epoch
# techniques on SqueezeNet: the shipped weights (weights/) and images (images/);
# a bare image name is looked up in $$TINYCNN_IMAGES_DIR, then images/, each with its photos/ folder
saliency: ## saliency maps and segmentation (Simonyan et al. 2014)
guided_backprop: ## backprop / deconvnet / guided backprop of one neuron
occlusion: ## occlusion maps (Zeiler & Fergus 2014)
attribution: ## Grad-CAM, SmoothGrad, integrated gradients
max_patches: ## maximally activating patches
# on the CIFAR-10 test set: need data ($$TINYCNN_DATA_DIR or make data)
neighbors: ## nearest neighbours in feature vs pixel space
embedding: ## PCA and t-SNE of features, image-grid embedding
class_visualization: ## class and neuron visualisation by gradient ascent
fooling: ## fooling images
deepdream: ## DeepDream
style_transfer: ## neural style transfer (CS231n's presets)
style_controls: ## style transfer: blended styles, kept colours, content vs style
fast_style: ## fast style transfer: held-out photos through the shipped network, beside L-BFGS
feature_inversion: ## feature inversion with total variation
texture_synthesis: ## texture synthesis: Gram matrices, and Efros & Leung's nearest neighbours
multifaceted: ## multifaceted visualisation
$(FIGURE_TARGETS): ready
	$(PY) -m vis.gallery --only $@$(GALLERY_ARGS)

# every figure and the gallery page figures/index.html, one per core at a time (JOBS=1: one by one);
# FAST=1: reduced sizes and iterations;
# ARGS as above
figures: ready ## every figure and figures/index.html (FAST=1: about half a minute)
	$(PY) -m vis.gallery$(if $(FAST), --fast)$(if $(JOBS), --jobs $(JOBS))$(GALLERY_ARGS)

# the README's thumbnails (docs/) from the figures of a full `make figures`
thumbnails: ready ## the README's pictures in docs/, from figures/
	$(PY) -m vis.gallery --thumbnails docs

# torchvision's SqueezeNet 1.1 -> weights/squeezenet1_1_torchvision.npz (the shipped one is the ONNX zoo's)
# (-W: the package itself imports tinycnn.io.weights, and runpy warns that the module it runs is loaded already)
weights: ready ## download torchvision's SqueezeNet 1.1 (another run than the shipped one)
	$(PY) -W "ignore::RuntimeWarning:runpy" -m tinycnn.io.weights

# the optional photos (not CC0, so not committed) -> images/photos/, sha256-checked
images: ready ## download 14 more sample photos into images/photos/
	$(PY) -m tinycnn.io.sample_images

# the official CIFAR-10 "python version" -> data/cifar-10-batches-py
data: ready ## download CIFAR-10 into data/
	$(PY) -m tinycnn.io.data

# reproduces weights/cifar10_net.npz (about 70 minutes on 2 idle CPU cores; weights/README.md:
# 90 on busy ones); ARGS=--resume continues an interrupted run from its checkpoint
train: ready ## retrain the shipped CIFAR-10 net (about 70 minutes)
	$(PY) -m tinycnn.train --epochs 20 --seed 0 --out weights/cifar10_net.npz $(ARGS)

# reproduces weights/fast_style_starry_night.npz (weights/README.md: recipe, time, loss);
# ARGS=--resume continues an interrupted run from its checkpoint
STYLE ?= starry_night
train_fast_style: ready ## train a fast style-transfer network (STYLE=starry_night; about 40 minutes)
	$(PY) -m vis.fast_style_train --style $(STYLE) $(ARGS)

clean: ## remove caches and figures/
	rm -rf .pytest_cache .hypothesis build *.egg-info figures
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
