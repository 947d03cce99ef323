# tinycnn: `make install`, then `make test`; `make` alone lists every target.
# Everything runs inside .venv.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.DEFAULT_GOAL := help
.PHONY: help ready install test gradcheck fuzz bench gpu-check clean demo weights data train filters training_curve \
        saliency guided_backprop occlusion attribution max_patches neighbors embedding figures \
        class_visualization fooling deepdream style_transfer feature_inversion texture_synthesis multifaceted \
        thumbnails

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
# core and vis tests again, with CuPy's rules, so a host/device mistake fails here
test: ready ## the whole test suite, then again under the strict CuPy stand-in (about 3 minutes)
	$(PY) -m pytest -q
	TINYCNN_BACKEND=cupy PYTHONPATH=tests/strict_cupy $(PY) -m pytest -q -p no:cacheprovider --ignore=tests/test_gallery.py

# the finite-difference gradient checks alone, with many more hypothesis examples
gradcheck: ready ## only the finite-difference gradient checks, 400 examples each
	HYPOTHESIS_PROFILE=gradcheck $(PY) -m pytest -q -m gradcheck

# hostile input (forged checkpoints, .npz files, images, command lines), many hypothesis examples
fuzz: ready ## only the hostile-input fuzz tests, 1000 examples each (about 3 minutes)
	HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest -q -m fuzz

bench: ready ## speed and memory against PyTorch (needs torch)
	$(PY) -m bench.conv
	$(PY) -m bench.loops

# on a lent GPU machine (CuPy, PyTorch CUDA): no .venv needed there, plain python3 will do
GPU_PY = $(if $(wildcard $(PY)),$(PY),python3)
gpu-check: ## on a GPU: CuPy tests, NumPy vs CuPy, benchmarks vs PyTorch CUDA, figures (OUT=folder)
	$(GPU_PY) -m bench.gpu_check --out $(or $(OUT),gpu-check) $(if $(FIGURES),--figures $(FIGURES))

# figures from the shipped CIFAR-10 weights alone: no network, no ../shared needed
demo: filters training_curve ## figures from the shipped weights alone, offline
	@echo "demo figures are in $(CURDIR)/figures/"

filters: ready ## first- and higher-layer filters of the CIFAR-10 net
	$(PY) -m vis.filters --model cifar10 --layer conv1
	$(PY) -m vis.filters --model cifar10 --layer conv2 --max-out 16 --max-in 16

training_curve: ready ## the CIFAR-10 net's loss and accuracy per epoch
	$(PY) -m vis.training_curve

# techniques on SqueezeNet: need weights (make weights) and photos ($$TINYCNN_IMAGES_DIR);
# a bare image name is looked up in $$TINYCNN_IMAGES_DIR and its photos/ folder
FREE_PHOTOS = apple.jpg astronaut.png baboon.jpg building.jpg butterfly.jpg chelsea.png coffee.png dog.jpg \
              eagle.jpg fruits.jpg giraffe.jpg grace_hopper.jpg HappyFish.jpg home.jpg horses.jpg kite.jpg \
              motorcycle_left.png orange.jpg rocket.jpg squirrel_cls.jpg

saliency: ready ## saliency maps and segmentation (Simonyan et al. 2014)
	$(PY) -m vis.saliency --image coffee.png eagle.jpg squirrel_cls.jpg

guided_backprop: ready ## backprop / deconvnet / guided backprop of one neuron
	$(PY) -m vis.guided_backprop --layer fire6 --channel 330 --image chelsea.png dog.jpg

occlusion: ready ## occlusion maps (Zeiler & Fergus 2014)
	$(PY) -m vis.occlusion --image chelsea.png coffee.png

attribution: ready ## Grad-CAM, SmoothGrad, integrated gradients
	$(PY) -m vis.attribution --image eagle.jpg coffee.png

max_patches: ready ## maximally activating patches
	$(PY) -m vis.max_patches --model squeezenet --layer fire5 --channels 0 1 2 3 4 5 --image $(FREE_PHOTOS)
	$(PY) -m vis.max_patches --model cifar10 --layer relu4 --channels 0 1 2 3 4 5 6 7 --out figures/max_patches_cifar10.png

# on the CIFAR-10 test set: need data ($$TINYCNN_DATA_DIR or make data)
neighbors: ready ## nearest neighbours in feature vs pixel space
	$(PY) -m vis.neighbors --model cifar10

embedding: ready ## PCA and t-SNE of features, image-grid embedding
	$(PY) -m vis.embedding --model cifar10

class_visualization: ready ## class and neuron visualisation by gradient ascent
	$(PY) -m vis.class_visualization --model squeezenet
	$(PY) -m vis.class_visualization --model cifar10
	$(PY) -m vis.class_visualization --model squeezenet --layer fire6 --channels 330 100 --out figures/neuron_visualization_squeezenet.png

fooling: ready ## fooling images
	$(PY) -m vis.fooling --model squeezenet --image chelsea.png --target stingray

deepdream: ready ## DeepDream
	$(PY) -m vis.deepdream --model squeezenet --image kite.jpg --layer fire5

style_transfer: ready ## neural style transfer (CS231n's presets)
	$(PY) -m vis.style_transfer --content chelsea.png home.jpg

feature_inversion: ready ## feature inversion with total variation
	$(PY) -m vis.feature_inversion --model squeezenet --image giraffe.jpg

texture_synthesis: ready ## Gram-matrix texture synthesis
	$(PY) -m vis.texture_synthesis --texture textures/brick.png textures/grass.png styles/starry_night.jpg

multifaceted: ready ## multifaceted visualisation
	$(PY) -m vis.multifaceted --model cifar10 --target automobile

# every figure and the gallery page figures/index.html; FAST=1: reduced sizes and iterations
figures: ready ## every figure and figures/index.html (FAST=1: about a minute)
	$(PY) -m vis.gallery $(if $(FAST),--fast)

# the README's thumbnails (docs/) from the figures of a full `make figures`
thumbnails: ready ## the README's pictures in docs/, from figures/
	$(PY) -m vis.gallery --thumbnails docs

# SqueezeNet 1.1 from torchvision's public checkpoint -> weights/squeezenet1_1.npz
weights: ready ## download SqueezeNet 1.1 into weights/
	$(PY) -m tinycnn.weights

# the official CIFAR-10 "python version" -> data/cifar-10-batches-py
data: ready ## download CIFAR-10 into data/
	$(PY) -m tinycnn.data

# reproduces weights/cifar10_net.npz (about 70 minutes on 2 idle CPU cores; weights/README.md: 90 on busy ones)
train: ready ## retrain the shipped CIFAR-10 net (about 70 minutes)
	$(PY) -m tinycnn.train --epochs 20 --seed 0 --out weights/cifar10_net.npz

clean: ## remove caches and figures/
	rm -rf .pytest_cache .hypothesis build *.egg-info figures
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
