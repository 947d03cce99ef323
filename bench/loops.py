"""End-to-end optimisation loops against PyTorch autograd on the same weights.

    python -m bench.loops            (part of make bench)

- class visualisation: 100 steps of CS231n's recipe (jitter, L2, blur every 10,
  clamp) on SqueezeNet 1.1 at 224x224;
- style transfer: 200 Adam steps of the Starry Night preset at 192 px.

Each loop runs in its own process (so imports and caches do not mix), once with
tinycnn and once with the same computation written with torch autograd, with the
same thread count. Reported: wall time, the ratio tinycnn / PyTorch, and the rise
of peak resident memory during the loop (on a GPU, with TINYCNN_BACKEND=cupy: the
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

STEPS = {"class_visualization": 100, "style_transfer": 200}
WARMUP = 3      # untimed steps first: CuPy compiles its kernels on first use, PyTorch picks cuDNN algorithms


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
    from tinycnn import backend
    from vis.class_visualization import class_visualization
    from vis.style_transfer import PRESETS, style_transfer
    net = _net()
    if task == "class_visualization":
        return lambda steps: class_visualization(net, 76, regularizer="cs231n", steps=steps)
    p = PRESETS["starry_night"]
    content, style = (backend.asarray(a) for a in _inputs(p["image_size"]))
    return lambda steps: style_transfer(net, content, style, content_weight=p["content_weight"],
                                        style_weights=p["style_weights"], tv_weight=p["tv_weight"], steps=steps)


def _device():
    from tinycnn import backend
    return "cuda" if backend.name() == "cupy" else "cpu"


def torch_blur(torch, x, sigma):
    """scipy.ndimage.gaussian_filter(x, (0, 0, sigma, sigma), mode="reflect") in torch, on x's device."""
    radius = int(4.0 * sigma + 0.5)                                     # SciPy's truncate=4
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    C = x.shape[1]
    x = torch.nn.functional.pad(x, (radius, radius, radius, radius), mode="replicate" if radius >= x.shape[-1]
                                else "reflect")
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
        return torch.cat([conv(s, f"{n}.expand.1x1.conv"), conv(s, f"{n}.expand.3x3.conv", padding=1)], 1)

    def features(x, keep=()):
        acts = {}
        x = acts["relu1"] = conv(x, "conv1", stride=2)
        x = F.max_pool2d(x, 3, 2, ceil_mode=True)
        for n in ("fire2", "fire3", "pool", "fire4", "fire5", "pool", "fire6", "fire7", "fire8", "fire9"):
            x = F.max_pool2d(x, 3, 2, ceil_mode=True) if n == "pool" else fire(x, n)
            acts[n] = x
            if keep and all(k in acts for k in keep):
                return acts
        return acts

    def scores(x):
        return conv(features(x)["fire9"], "conv10").mean(dim=(2, 3))
    return features, scores


def torch_loop(task):
    import torch
    from scipy import ndimage
    from vis.class_visualization import CS231N, pixel_range
    from vis._optimize import SYNTHESIS_DECAY_AT as DECAY_AT, SYNTHESIS_DECAYED_LR as DECAYED_LR, SYNTHESIS_LR as LR
    from vis.style_transfer import CONTENT_LAYER, PRESETS, STYLE_LAYERS
    net = _net()
    features, scores = torch_squeezenet(net, torch)
    from tinycnn.backend import to_numpy
    device = _device()
    lo, hi = (torch.from_numpy(to_numpy(a)).to(device) for a in pixel_range(net))
    if task == "class_visualization":
        def run(steps):
            x = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32) * 0.01)
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
                        x = torch.from_numpy(ndimage.gaussian_filter(x.numpy(), (0, 0, 0.5, 0.5), mode="reflect"))
                    elif step % CS231N["blur_every"] == 0:
                        x = torch_blur(torch, x, 0.5)
            return x
        return run
    p = PRESETS["starry_night"]
    content, style = (torch.from_numpy(a).to(device) for a in _inputs(p["image_size"]))

    def gram(f):
        n, c, h, w = f.shape
        f = f.reshape(n, c, h * w)
        return f @ f.transpose(1, 2) / (h * w * c)

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
            tv = ((x[..., :, 1:] - x[..., :, :-1]) ** 2).sum() + ((x[..., 1:, :] - x[..., :-1, :]) ** 2).sum()
            (loss + p["tv_weight"] * tv).backward()
            opt.step()
            with torch.no_grad():
                x.copy_(torch.minimum(torch.maximum(x, lo), hi))
        return x
    return run


def measure(task, impl, threads):
    """Run one loop in this process: {"seconds", "peak_mb"}."""
    if impl == "torch":
        import torch  # noqa: F401  (only: is it installed?)
        torch.set_num_threads(threads)
    fn = (tinycnn_loop if impl == "tinycnn" else torch_loop)(task)
    fn(WARMUP)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    before = _rss_kb("VmRSS:")
    t = time.perf_counter()
    fn(STEPS[task])
    if _device() == "cuda":  # the tinycnn loops end in a copy to the host; torch's must be waited for
        import torch
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t
    if _device() == "cuda":
        if impl == "torch":
            import torch
            return {"seconds": seconds, "peak_mb": torch.cuda.max_memory_reserved() / 2**20}
        from tinycnn import backend
        return {"seconds": seconds, "peak_mb": backend.active().get_default_memory_pool().total_bytes() / 2**20}
    return {"seconds": seconds, "peak_mb": (_rss_kb("VmHWM:") - before) / 1024}


def main(argv=None):
    p = argparse.ArgumentParser(description="End-to-end loops: tinycnn vs PyTorch autograd.")
    p.add_argument("--json", action="store_true")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(measure(*args.child, args.threads)))
        return
    try:
        import torch  # noqa: F401
        impls = ("tinycnn", "torch")
    except ImportError:
        print("PyTorch is not installed; install it (.venv/bin/pip install torch==2.13.0) for the comparison.",
              file=sys.stderr)
        impls = ("tinycnn",)
    rows = []
    for task in STEPS:
        row = {"name": task, "steps": STEPS[task]}
        for impl in impls:
            done = subprocess.run([sys.executable, "-m", "bench.loops", "--threads", str(args.threads),
                                   "--child", task, impl], capture_output=True, text=True)
            if done.returncode:
                sys.exit(f"{task} with {impl} failed:\n{done.stderr}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            row[f"{impl}_s"], row[f"{impl}_mb"] = result["seconds"], result["peak_mb"]
        row["ratio"] = row["tinycnn_s"] / row["torch_s"] if "torch_s" in row else None
        rows.append(row)
        if not args.json:
            ratio = f"{row['ratio']:.2f}" if row["ratio"] else "-"
            print(f"{task:22s} {row['steps']:4d} steps  tinycnn {row['tinycnn_s']:7.1f} s ({row['tinycnn_mb']:.0f} MB)"
                  + (f"  torch {row['torch_s']:7.1f} s ({row['torch_mb']:.0f} MB)  ratio {ratio}" if "torch_s" in row else ""),
                  flush=True)
    if args.json:
        print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
