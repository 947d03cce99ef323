"""End-to-end optimisation loops against PyTorch autograd on the same weights.

    python -m bench.loops            (part of make bench)

    python -m bench.loops --only dream --steps 1       (rows whose name contains "dream", 1 step)

- class_visualization: 100 steps of CS231n's recipe (jitter, L2, blur every 10,
  clamp) on SqueezeNet 1.1 at 224x224;
- style_transfer: 200 Adam steps of the Starry Night preset at 192 px;
- cifar_train_step: 20 training steps of the CIFAR-10 net, batch 64 at 32x32
  (tinycnn.train.train_step: forward, softmax cross-entropy, backward, Nesterov SGD);
- saliency_batch: saliency maps of 5 batches of 8 images at 224 (vis.saliency.saliency_map:
  one forward and one backward of the class scores to the input);
- deepdream_octave: 5 DeepDream octaves at 224, each 10 steps at fire5 with jitter, the
  step normalised by the gradient's mean magnitude, and clamping (vis.deepdream);
- texture_lbfgs: 20 L-BFGS iterations of Gram-matrix texture synthesis on a random
  160x160 texture, up to fire7 (vis.texture_synthesis); both sides are driven by the
  same SciPy L-BFGS-B, so only the loss and gradient computation differ;
- fast_style_train_step: 10 training steps of vis.fast_style's transform network (batch of
  4 crops at 128, the perceptual loss through SqueezeNet, Adam);
- fast_style_256: 10 stylisations of one 256 x 256 photo by that network (one forward pass).

Every row's input is random (no data set needed); the CIFAR-10 net starts from its
random initialisation, as ``make train`` does.

Each loop runs in its own process (so imports and caches do not mix), once with
tinycnn and once with the same computation written with torch autograd, with the
same thread count. Reported: wall time, the ratio tinycnn / PyTorch, and the rise
of peak resident memory over the warm-up and the loop (on a GPU, with TINYCNN_BACKEND=cupy: the
peak GPU memory each library's allocator held, against PyTorch CUDA). Random weights
are used when the SqueezeNet weights are absent: speed does not depend on their values.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

STEPS = {
    "class_visualization": 100,
    "style_transfer": 200,
    "cifar_train_step": 20,
    "saliency_batch": 5,
    "deepdream_octave": 5,
    "texture_lbfgs": 20,
    "fast_style_train_step": 10,
    "fast_style_256": 10,
}
# untimed steps first: CuPy compiles its kernels on first use, PyTorch picks cuDNN algorithms
WARMUP = 3


def _rss_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def _net():
    from tinycnn.models import squeezenet1_1
    try:
        return squeezenet1_1()
    except FileNotFoundError:
        return squeezenet1_1(weights=False)


def _inputs(size, n=2, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((1, 3, size, size)).astype(np.float32) for _ in range(n)]


def tinycnn_loop(task):
    if task in ROWS:
        net, inputs = row_inputs(task)
        return ROWS[task][0](net, *inputs)
    from tinycnn import backend
    from vis.class_visualization import class_visualization
    from vis.style_transfer import PRESETS, style_transfer
    net = _net()
    if task == "class_visualization":
        return lambda steps: class_visualization(net, 76, regularizer="cs231n", steps=steps)
    p = PRESETS["starry_night"]
    content, style = (backend.asarray(a) for a in _inputs(p["image_size"]))
    return lambda steps: style_transfer(
        net,
        content,
        style,
        content_weight=p["content_weight"],
        style_weights=p["style_weights"],
        tv_weight=p["tv_weight"],
        steps=steps,
    )


def torch_exact_float32(torch):
    """Turn off TF32 in torch: cuDNN convolutions use it by default on Ampere and later GPUs
    (10 mantissa bits, relative errors near 1e-3), while tinycnn computes in full float32.
    Same precision on both sides, for agreement and for a fair timing."""
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


def _device():
    from tinycnn import backend
    return "cuda" if backend.name() == "cupy" else "cpu"


def torch_blur(torch, x, sigma):
    """scipy.ndimage.gaussian_filter(x, (0, 0, sigma, sigma), mode="reflect") in torch, on x's
    device."""
    radius = int(4.0 * sigma + 0.5)                                     # SciPy's truncate=4
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    C = x.shape[1]
    x = torch.nn.functional.pad(
        x,
        (radius, radius, radius, radius),
        mode="replicate" if radius >= x.shape[-1] else "reflect",
    )
    x = torch.nn.functional.conv2d(x, k.view(1, 1, 1, -1).expand(C, 1, 1, -1), groups=C)
    return torch.nn.functional.conv2d(x, k.view(1, 1, -1, 1).expand(C, 1, -1, 1), groups=C)


def torch_squeezenet(net, torch):
    """SqueezeNet 1.1 forward in torch.nn.functional, reading tinycnn's parameters."""
    from tinycnn.backend import to_numpy
    F = torch.nn.functional
    P = {k: torch.from_numpy(to_numpy(v)).to(_device()) for k, v in net.named_params()}

    def conv(x, name, **kw):
        return F.relu(F.conv2d(x, P[name + ".weight"], P[name + ".bias"], **kw))

    def fire(x, n):
        s = conv(x, f"{n}.squeeze")
        return torch.cat(
            [conv(s, f"{n}.expand.1x1.conv"), conv(s, f"{n}.expand.3x3.conv", padding=1)], 1
        )

    def features(x, keep=()):
        acts = {}
        x = acts["relu1"] = conv(x, "conv1", stride=2)
        x = F.max_pool2d(x, 3, 2, ceil_mode=True)
        for n in (
            "fire2",
            "fire3",
            "pool",
            "fire4",
            "fire5",
            "pool",
            "fire6",
            "fire7",
            "fire8",
            "fire9",
        ):
            x = F.max_pool2d(x, 3, 2, ceil_mode=True) if n == "pool" else fire(x, n)
            acts[n] = x
            if keep and all(k in acts for k in keep):
                return acts
        return acts

    def scores(x):
        return conv(features(x)["fire9"], "conv10").mean(dim=(2, 3))
    return features, scores


def torch_pixel_range(net, torch):
    """vis._optimize.pixel_range(net) as two torch tensors on the benchmark's device."""
    from tinycnn.backend import to_numpy
    from vis._optimize import pixel_range
    return tuple(torch.from_numpy(to_numpy(a)).to(_device()) for a in pixel_range(net))


def torch_gram(f):
    """vis.objectives.gram_matrix in torch: F F^T / (H W C), (N, C, C)."""
    n, c, h, w = f.shape
    f = f.reshape(n, c, h * w)
    return f @ f.transpose(1, 2) / (h * w * c)


def torch_loop(task):
    if task in ROWS:
        net, inputs = row_inputs(task)
        return ROWS[task][1](net, *inputs)
    import torch
    from scipy import ndimage
    from vis.class_visualization import CS231N
    from vis._optimize import (
        SYNTHESIS_DECAY_AT as DECAY_AT,
        SYNTHESIS_DECAYED_LR as DECAYED_LR,
        SYNTHESIS_LR as LR,
    )
    from vis.style_transfer import CONTENT_LAYER, PRESETS, STYLE_LAYERS
    net = _net()
    features, scores = torch_squeezenet(net, torch)
    device = _device()
    lo, hi = torch_pixel_range(net, torch)
    if task == "class_visualization":
        def run(steps):
            x = torch.from_numpy(
                np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
                * 0.01
            )
            x = x.to(device)
            rng = np.random.default_rng(0)
            for step in range(steps):
                dy, dx = (int(v) for v in rng.integers(-16, 17, size=2))
                x = torch.roll(x, (dy, dx), (2, 3)).requires_grad_(True)
                objective = scores(x)[0, 76] - CS231N["l2"] * (x * x).sum()
                objective.backward()
                with torch.no_grad():
                    x = torch.roll(x + CS231N["lr"] * x.grad, (-dy, -dx), (2, 3))
                    x = torch.minimum(torch.maximum(x, lo), hi)
                    if step % CS231N["blur_every"] == 0 and device == "cpu":
                        x = torch.from_numpy(
                            ndimage.gaussian_filter(x.numpy(), (0, 0, 0.5, 0.5), mode="reflect")
                        )
                    elif step % CS231N["blur_every"] == 0:
                        x = torch_blur(torch, x, 0.5)
            return x
        return run
    p = PRESETS["starry_night"]
    content, style = (torch.from_numpy(a).to(device) for a in _inputs(p["image_size"]))
    gram = torch_gram
    def run(steps):
        with torch.no_grad():
            target = features(content)[CONTENT_LAYER]
            style_acts = features(style)
            grams = {k: gram(style_acts[k]) for k in STYLE_LAYERS}
        x = content.clone().requires_grad_(True)
        opt = torch.optim.Adam([x], lr=LR)
        for step in range(steps):
            if step == DECAY_AT:
                opt.param_groups[0]["lr"] = DECAYED_LR
            opt.zero_grad()
            acts = features(x, keep=STYLE_LAYERS + (CONTENT_LAYER,))
            loss = p["content_weight"] * ((acts[CONTENT_LAYER] - target) ** 2).sum()
            for k, w in zip(STYLE_LAYERS, p["style_weights"]):
                loss = loss + w * ((gram(acts[k]) - grams[k]) ** 2).sum()
            tv = ((x[..., :, 1:] - x[..., :, :-1]) ** 2).sum() + (
                (x[..., 1:, :] - x[..., :-1, :]) ** 2
            ).sum()
            (loss + p["tv_weight"] * tv).backward()
            opt.step()
            with torch.no_grad():
                x.copy_(torch.minimum(torch.maximum(x, lo), hi))
        return x
    return run


# -- the rows of issue 15: a pair of functions each, (net, *inputs) -> run(steps) -> the result
# as NumPy, tinycnn's calling the code a student's command runs, torch's the same computation
# CIFAR-10 batch of the benchmark; tinycnn.train's peak rate
CIFAR_BATCH, CIFAR_LR = 64, 0.05
SALIENCY_BATCH, IMAGE_SIZE = 8, 224
DREAM_LAYER = "fire5"
TEXTURE_SIZE = 160                       # vis.texture_synthesis's default --size, the figure's


def row_inputs(task, seed=0):
    """(net, inputs) of one of the rows below: random images, the net the technique runs on."""
    if task.startswith("fast_style"):
        return fast_style_inputs(task, seed)
    rng = np.random.default_rng(seed)
    if task == "cifar_train_step":
        from tinycnn.models import cifar10_net
        x = rng.standard_normal((CIFAR_BATCH, 3, 32, 32)).astype(np.float32)
        return cifar10_net(weights=False, seed=seed).train(), (x, rng.integers(0, 10, CIFAR_BATCH))
    size = TEXTURE_SIZE if task == "texture_lbfgs" else IMAGE_SIZE
    n = SALIENCY_BATCH if task == "saliency_batch" else 1
    x = rng.standard_normal((n, 3, size, size)).astype(np.float32)
    return _net(), ((x, rng.integers(0, 1000, n)) if task == "saliency_batch" else (x,))


def tinycnn_cifar_train_step(net, x, y):
    """``steps`` training steps on one batch with tinycnn.train's optimiser; returns the
    parameters."""
    from tinycnn import backend
    from tinycnn.optim import SGD
    from tinycnn.train import train_step
    opt, xb = SGD(net), backend.asarray(x)

    def run(steps):
        for _ in range(steps):
            train_step(net, opt, xb, y, CIFAR_LR)
        return {k: backend.to_numpy(v) for k, v in net.named_params()}
    return run


def torch_cifar10(net, torch):
    """The CIFAR-10 net (tinycnn.models.cifar10_net) in torch.nn.functional, on copies of
    tinycnn's parameters; dropout as net's drop6 is set (p, training or not).

    Returns (forward, params): forward(x) -> {layer: output} for every layer of the net, by
    tinycnn's names; params {name: leaf tensor requiring grad}, by tinycnn's names.
    """
    from tinycnn.backend import to_numpy
    F = torch.nn.functional
    P = {
        k: torch.from_numpy(to_numpy(v).copy()).to(_device()).requires_grad_(True)
        for k, v in net.named_params()
    }
    drop = net.layer("drop6")

    def forward(x):
        acts = {}
        # conv-relu, conv-relu, ..., max pool 2
        for block in (("1",), ("2", "3"), ("4", "5")):
            for i in block:
                w = P[f"conv{i}.weight"]
                x = acts[f"conv{i}"] = F.conv2d(x, w, P[f"conv{i}.bias"], padding=w.shape[-1] // 2)
                x = acts[f"relu{i}"] = F.relu(x)
            x = acts[f"pool{block[-1]}"] = F.max_pool2d(x, 2)
        x = acts["flatten"] = x.flatten(1)
        x = acts["fc6"] = F.linear(x, P["fc6.weight"], P["fc6.bias"])
        x = acts["relu6"] = F.relu(x)
        x = acts["drop6"] = F.dropout(x, drop.p, training=drop.training)
        acts["fc7"] = F.linear(x, P["fc7.weight"], P["fc7.bias"])
        return acts
    return forward, P


def torch_cifar_train_step(net, x, y):
    """The same steps in torch: cross-entropy, autograd, torch.optim.SGD with tinycnn's
    hyper-parameters (Nesterov momentum; weight decay on weights only, as tinycnn.optim.SGD)."""
    import torch
    from tinycnn.optim import SGD
    ours = SGD(net)
    forward, P = torch_cifar10(net, torch)
    groups = [
        {
            "params": [p for k, p in P.items() if k.endswith("weight")],
            "weight_decay": ours.weight_decay,
        },
        {"params": [p for k, p in P.items() if not k.endswith("weight")], "weight_decay": 0.0},
    ]
    opt = torch.optim.SGD(groups, lr=CIFAR_LR, momentum=ours.momentum, nesterov=ours.nesterov)
    xb, yb = torch.from_numpy(x).to(_device()), torch.from_numpy(y).to(_device())

    def run(steps):
        for _ in range(steps):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(forward(xb)["fc7"], yb).backward()
            opt.step()
        return {k: p.detach().cpu().numpy() for k, p in P.items()}
    return run


def tinycnn_saliency_batch(net, x, target):
    """``steps`` times the saliency maps of the batch x for classes ``target``; returns the
    last."""
    from tinycnn import backend
    from vis.saliency import saliency_map
    xb = backend.asarray(x)

    def run(steps):
        for _ in range(steps):
            out = saliency_map(net, xb, target)
        return out
    return run


def torch_saliency_batch(net, x, target):
    """The same maps in torch: the scores, each image's target's gathered and summed, backward
    to the input, max over colour channels of the gradient's magnitude."""
    import torch
    _, scores = torch_squeezenet(net, torch)
    xb, t = torch.from_numpy(x).to(_device()), torch.from_numpy(target).to(_device())

    def run(steps):
        for _ in range(steps):
            xg = xb.clone().requires_grad_(True)
            scores(xg).gather(1, t[:, None]).sum().backward()
            out = xg.grad.abs().amax(dim=1)
        return out.cpu().numpy()
    return run


def tinycnn_deepdream_octave(net, x, dream_steps=None):
    """``steps`` single-octave DeepDreams of x at DREAM_LAYER (vis.deepdream's 10 steps each)."""
    from tinycnn import backend
    from vis.deepdream import STEPS as DREAM_STEPS, deepdream
    xb = backend.asarray(x)

    def run(steps):
        for _ in range(steps):
            out = deepdream(net, xb, DREAM_LAYER, octaves=1, steps=dream_steps or DREAM_STEPS)
        return out
    return run


def torch_deepdream_octave(net, x, dream_steps=None):
    """The same octave in torch: ascent on 1/2 ||a||^2 at DREAM_LAYER, the gradient blurred by
    SMOOTH px and divided by its mean magnitude, vis._optimize's roll jitter (same generator,
    same draws), clamping."""
    import torch
    from scipy.ndimage import gaussian_filter

    from vis.deepdream import JITTER, LR, SMOOTH, STEPS as DREAM_STEPS
    features, _ = torch_squeezenet(net, torch)
    lo, hi = torch_pixel_range(net, torch)
    # as vis.deepdream: 0-255 units -> normalised
    lr = LR / (255.0 * float(np.mean(net.meta["std"])))
    jitter = min(JITTER, x.shape[2] // 4)
    x0 = torch.from_numpy(x).to(_device())

    def run(steps):
        for _ in range(steps):
            # optimize's generator, the octave's seed 0
            rng, img = np.random.default_rng(0), x0.clone()
            for _ in range(dream_steps or DREAM_STEPS):
                dy, dx = (int(v) for v in rng.integers(-jitter, jitter + 1, size=2))
                img.requires_grad_(True)
                a = features(torch.roll(img, (dy, dx), (2, 3)), keep=(DREAM_LAYER,))[DREAM_LAYER]
                (0.5 * (a * a).sum()).backward()
                with torch.no_grad():
                    # vis.deepdream blurs the gradient of the rolled image, then rolls it back
                    rolled = torch.roll(img.grad, (dy, dx), (2, 3)).cpu().numpy()
                    blurred = gaussian_filter(rolled, (0, 0, SMOOTH, SMOOTH), mode="reflect")
                    g = torch.roll(torch.from_numpy(blurred).to(img.device), (-dy, -dx), (2, 3))
                    img = torch.minimum(
                        torch.maximum(img + lr * g / (g.abs().mean() + 1e-12), lo), hi
                    )
        return img.cpu().numpy()
    return run


def tinycnn_texture_lbfgs(net, texture):
    """A texture synthesised from ``texture`` with ``steps`` L-BFGS iterations, up to the deepest
    layer set."""
    from tinycnn import backend
    from vis.texture_synthesis import LAYER_SETS, synthesize_texture
    t = backend.asarray(texture)
    return lambda steps: synthesize_texture(net, t, LAYER_SETS[-1], steps=steps)


def torch_texture_lbfgs(net, texture):
    """The same synthesis with the loss and gradient from torch autograd: the Grams of the same
    layers, weighted by the numbers tinycnn's layer_weights computes, from the same start.

    Driven by the project's own L-BFGS (vis._optimize.optimize(method="lbfgs"): SciPy's
    L-BFGS-B with the pixel range as bounds, maxiter = steps, ftol = gtol = 0), so both rows
    run the same optimiser and differ only in how they compute the loss and gradient.
    torch.optim.LBFGS would be a different algorithm (no bounds, its own line search and
    stopping rules), so it is not used.
    """
    import torch
    from tinycnn import backend
    from vis._optimize import optimize, pixel_range
    from vis.texture_synthesis import LAYER_SETS, layer_weights, start_image
    layers = LAYER_SETS[-1]
    weights = layer_weights(net, backend.asarray(texture), layers)
    features, _ = torch_squeezenet(net, torch)
    device = _device()
    with torch.no_grad():
        acts = features(torch.from_numpy(texture).to(device), keep=layers)
        targets = {k: torch_gram(acts[k]) for k in layers}

    def objective(x):                        # x: the driver's backend array (a CuPy one on a GPU)
        x = torch.as_tensor(x, device=device).requires_grad_(True)
        acts = features(x, keep=layers)
        loss = sum(w * ((torch_gram(acts[k]) - targets[k]) ** 2).sum() for k, w in weights.items())
        loss.backward()
        return loss.item(), x.grad.cpu().numpy()
    lo, hi = pixel_range(net)
    # synthesize_texture's start, seed 0
    x0 = start_image(backend.asarray(texture), texture.shape, lo, hi, 0)

    def run(steps):
        out, _, _ = optimize(objective, x0, steps=steps, method="lbfgs", bounds=(lo, hi))
        return backend.to_numpy(out)
    return run


# -- fast style transfer (issue 13): the transform network at vis.fast_style's sizes
def fast_style_inputs(task, seed=0):
    """(loss net, (transform net, inputs)): a batch of crops and a style image for a training
    step, or one 256 x 256 photo for stylisation; the transform network from its initialisation."""
    from vis.fast_style import BATCH, CROP, transform_net
    rng = np.random.default_rng(seed)
    if task == "fast_style_train_step":
        x = rng.standard_normal((BATCH, 3, CROP, CROP)).astype(np.float32)
        style = rng.standard_normal((1, 3, 192, 192)).astype(np.float32)
        return _net(), (transform_net(seed=seed), x, style)
    return _net(), (
        transform_net(seed=seed),
        rng.standard_normal((1, 3, 256, 256)).astype(np.float32),
    )


def tinycnn_fast_style_train_step(net, tnet, x, style):
    """``steps`` training steps of vis.fast_style on one batch; returns the transform net's
    parameters."""
    from tinycnn import backend
    from tinycnn.optim import Adam
    from vis.fast_style import CROP, LR, perceptual_loss, training_weights
    from vis.objectives import style_targets_of
    from vis.style_transfer import PRESETS, STYLE_LAYERS
    xb = backend.asarray(x)
    loss = perceptual_loss(net, style_targets_of(net, backend.asarray(style), STYLE_LAYERS),
                           training_weights(PRESETS["starry_night"], CROP))
    opt = Adam(tnet)

    def run(steps):
        for _ in range(steps):
            y, cache = tnet.forward(xb)
            _, dy = loss(y, xb)
            _, grads = tnet.backward(dy, cache)
            opt.step(grads, LR)
        return {k: backend.to_numpy(v) for k, v in tnet.named_params()}
    return run


def tinycnn_fast_style_256(net, tnet, x):
    """``steps`` stylisations of one 256 x 256 photo (vis.fast_style.stylize); returns the last."""
    from tinycnn import backend
    from vis.fast_style import stylize
    xb = backend.asarray(x)

    def run(steps):
        for _ in range(steps):
            out = backend.to_numpy(stylize(tnet, net, xb))
        return out
    return run


def torch_transform_net(tnet, torch):
    """vis.fast_style.transform_net in torch.nn.functional on copies of tinycnn's parameters:
    (forward, params by tinycnn's names)."""
    from tinycnn.backend import to_numpy
    F = torch.nn.functional
    P = {
        k: torch.from_numpy(to_numpy(v).copy()).to(_device()).requires_grad_(True)
        for k, v in tnet.named_params()
    }
    blocks = sorted({k.split(".")[0] for k in P if k.startswith("res")})

    def conv(x, name, conv="conv", norm="norm", stride=1, relu=True, up=False):
        if up:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        w = P[f"{name}.{conv}.weight"]
        k = w.shape[-1] // 2
        x = F.conv2d(
            F.pad(x, (k, k, k, k), mode="reflect"), w, P[f"{name}.{conv}.bias"], stride=stride
        )
        if f"{name}.{norm}.weight" in P:
            x = F.instance_norm(
                x, weight=P[f"{name}.{norm}.weight"], bias=P[f"{name}.{norm}.bias"], eps=1e-5
            )
        return F.relu(x) if relu else x

    def forward(x):
        x = conv(conv(conv(x, "down1"), "down2", stride=2), "down3", stride=2)
        for b in blocks:
            x = x + conv(conv(x, b), b, "conv2", "norm2", relu=False)
        return conv(conv(conv(x, "up1", up=True), "up2", up=True), "out", relu=False)
    return forward, P


def torch_fast_style_train_step(net, tnet, x, style):
    """The same steps in torch: the transform net, the perceptual loss (batch mean of content,
    Gram and TV terms with training_weights), autograd, torch.optim.Adam."""
    import torch
    from vis.fast_style import CROP, LR, training_weights
    from vis.style_transfer import CONTENT_LAYER, PRESETS, STYLE_LAYERS
    p = training_weights(PRESETS["starry_night"], CROP)
    features, _ = torch_squeezenet(net, torch)
    transform, P = torch_transform_net(tnet, torch)
    opt = torch.optim.Adam(list(P.values()), lr=LR)
    xb = torch.from_numpy(x).to(_device())
    with torch.no_grad():
        grams = {
            k: torch_gram(a)
            for k, a in features(torch.from_numpy(style).to(_device()), keep=STYLE_LAYERS).items()
            if k in STYLE_LAYERS
        }
        target = features(xb, keep=(CONTENT_LAYER,))[CONTENT_LAYER]

    def run(steps):
        for _ in range(steps):
            opt.zero_grad()
            y = transform(xb)
            acts = features(y, keep=STYLE_LAYERS + (CONTENT_LAYER,))
            loss = p["content_weight"] * ((acts[CONTENT_LAYER] - target) ** 2).sum()
            for k, w in zip(STYLE_LAYERS, p["style_weights"]):
                loss = loss + w * ((torch_gram(acts[k]) - grams[k]) ** 2).sum()
            tv = ((y[..., :, 1:] - y[..., :, :-1]) ** 2).sum() + (
                (y[..., 1:, :] - y[..., :-1, :]) ** 2
            ).sum()
            ((loss + p["tv_weight"] * tv) / len(xb)).backward()
            opt.step()
        return {k: v.detach().cpu().numpy() for k, v in P.items()}
    return run


def torch_fast_style_256(net, tnet, x):
    """The same stylisations in torch (no autograd), clamped to the pixel range."""
    import torch
    transform, _ = torch_transform_net(tnet, torch)
    lo, hi = torch_pixel_range(net, torch)
    xb = torch.from_numpy(x).to(_device())

    def run(steps):
        with torch.no_grad():
            for _ in range(steps):
                out = torch.minimum(torch.maximum(transform(xb), lo), hi).cpu().numpy()
        return out
    return run


ROWS = {"cifar_train_step": (tinycnn_cifar_train_step, torch_cifar_train_step),
        "saliency_batch": (tinycnn_saliency_batch, torch_saliency_batch),
        "deepdream_octave": (tinycnn_deepdream_octave, torch_deepdream_octave),
        "texture_lbfgs": (tinycnn_texture_lbfgs, torch_texture_lbfgs),
        "fast_style_train_step": (tinycnn_fast_style_train_step, torch_fast_style_train_step),
        "fast_style_256": (tinycnn_fast_style_256, torch_fast_style_256)}


def measure(task, impl, threads, steps=None):
    """Run one loop in this process: {"seconds", "peak_mb"}; ``steps`` (and at most as many
    warm-up steps) instead of STEPS[task] when given."""
    if impl == "torch":
        import torch
        torch.set_num_threads(threads)
        torch_exact_float32(torch)
    else:
        from tinycnn.engine.malloc import keep_freed_memory
        from tinycnn.engine.threads import set_blas_threads
        set_blas_threads(threads)       # NumPy's OpenBLAS, as many threads as torch's
        # as the vis commands do (tinycnn/engine/malloc.py); torch keeps its default
        keep_freed_memory()
    from tinycnn import backend
    fn = (tinycnn_loop if impl == "tinycnn" else torch_loop)(task)
    # peak memory from before the warm-up: memory an allocator keeps from the warm-up (as
    # tinycnn's keep_freed_memory does) is memory the loop uses, so it must count
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    before = _rss_kb("VmRSS:")
    fn(WARMUP if steps is None else min(WARMUP, steps))
    t = time.perf_counter()
    fn(steps or STEPS[task])
    # wait for the GPU; torch was imported above, never inside the timing
    if _device() == "cuda":
        torch.cuda.synchronize() if impl == "torch" else backend.active().cuda.Device().synchronize()
    seconds = time.perf_counter() - t
    if _device() == "cuda":
        if impl == "torch":
            return {"seconds": seconds, "peak_mb": torch.cuda.max_memory_reserved() / 2**20}
        return {
            "seconds": seconds,
            "peak_mb": backend.active().get_default_memory_pool().total_bytes() / 2**20,
        }
    return {"seconds": seconds, "peak_mb": (_rss_kb("VmHWM:") - before) / 1024}


def _parser():
    p = argparse.ArgumentParser(description="End-to-end loops: tinycnn vs PyTorch autograd.")
    p.add_argument("--json", action="store_true")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--only", metavar="TEXT", help="only the rows whose name contains TEXT")
    p.add_argument("--steps", type=int, metavar="N",
                   help="N steps per row (and at most N warm-up steps): a smoke test")
    p.add_argument("--load", action="store_true",
                   help="time every row twice: idle, then beside one competing CPU-bound process")
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    return p


def main(argv=None):
    p = _parser()
    args = p.parse_args(argv)
    if args.steps is not None and args.steps < 1:
        p.error("--steps must be at least 1")
    if args.child:
        print(json.dumps(measure(*args.child, args.threads, args.steps)))
        return
    tasks = [t for t in STEPS if args.only is None or args.only in t]
    if not tasks:
        sys.exit(f"no row's name contains {args.only!r}; the rows: {', '.join(STEPS)}")
    try:
        import torch  # noqa: F401
        impls = ("tinycnn", "torch")
    except ImportError:
        print("PyTorch is not installed; install it (.venv/bin/pip install torch==2.13.0) for the "
              "comparison.", file=sys.stderr)
        impls = ("tinycnn",)
    rows = [_row(task, impls, args, load)
            for task in tasks for load in ((False, True) if args.load else (False,))]
    if args.json:
        print(json.dumps(rows, indent=1))


def _row(task, impls, args, load):
    """One row: each implementation in a child process; with load, beside a busy process."""
    row = {"name": task, "steps": args.steps or STEPS[task], "load": int(load)}
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if load else None
    try:
        for impl in impls:
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bench.loops",
                    "--threads",
                    str(args.threads),
                    "--child",
                    task,
                    impl,
                ]
                + (["--steps", str(args.steps)] if args.steps else []),
                capture_output=True,
                text=True,
            )
            if done.returncode:
                sys.exit(f"{task} with {impl} failed:\n{done.stderr}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            row[f"{impl}_s"], row[f"{impl}_mb"] = result["seconds"], result["peak_mb"]
    finally:
        if busy:
            busy.kill()
            busy.wait()
    row["ratio"] = row["tinycnn_s"] / row["torch_s"] if "torch_s" in row else None
    if not args.json:
        ratio = f"{row['ratio']:.2f}" if row["ratio"] else "-"
        name = task + (" +busy" if load else "")
        print(
            f"{name:22s} {row['steps']:4d} steps  tinycnn {row['tinycnn_s']:7.1f} s ({row['tinycnn_mb']:.0f} MB)"
            + (
                f"  torch {row['torch_s']:7.1f} s ({row['torch_mb']:.0f} MB)  ratio {ratio}"
                if "torch_s" in row
                else ""
            ),
            flush=True,
        )
    return row
    if args.json:
        print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
