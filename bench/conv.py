"""Conv and max-pool speed and memory against PyTorch, layer shape by layer shape.

    make bench                     # the table
    python -m bench.conv --json    # the same rows as JSON
    TINYCNN_BACKEND=cupy python -m bench.conv    # CuPy against PyTorch CUDA

Shapes: every distinct conv and max-pool of SqueezeNet 1.1 at 224x224 (batch 1 and
8) and of the CIFAR-10 net at 32x32 (batch 64), float32, found by running the
models of ``tinycnn.models`` once. Each row times
the forward pass and forward + backward (input and parameter gradients) with the
median of several runs after a warm-up, both libraries using the same number of
threads. ``ratio`` is tinycnn / PyTorch: below 1 tinycnn is faster. Peak memory is
the rise of the process's peak resident memory during one call (Linux only;
glibc is told to return large blocks to the system at once so that the rise is
the call's own).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

import tinycnn as tc
from tinycnn import backend

def distinct_layers(net, input_shape):
    """[(name, layer, input shape)] for every conv and max-pool of ``net`` whose
    (hyper-parameters, input shape) differ from all earlier ones, found by running
    the network once with each such layer recording its input."""
    seen, found = set(), []
    for name, layer in net.named_layers():
        if isinstance(layer, (tc.Conv2d, tc.MaxPool2d)):
            def record(x, name=name, layer=layer, forward=layer.forward):
                key = (repr(layer), x.shape)
                if key not in seen:
                    seen.add(key)
                    found.append((name, layer, x.shape))
                return forward(x)
            layer.forward = record  # an instance attribute: this network only
    net(backend.asarray(np.zeros(input_shape, dtype=np.float32)))
    for _, layer in net.named_layers():
        layer.__dict__.pop("forward", None)  # back to the class's forward: record only once
    return found


def cases():
    """Yield (row name, tinycnn layer, input shape) for both models' distinct layers."""
    from tinycnn.models import cifar10_net, squeezenet1_1
    for model, build, size, batches in (("squeezenet", squeezenet1_1, 224, (1, 8)),
                                        ("cifar", cifar10_net, 32, (64,))):
        layers = distinct_layers(build(weights=False), (1, 3, size, size))
        for n in batches:
            for name, layer, shape in layers:
                yield f"{model}.{name} b{n}", layer, (n,) + tuple(shape[1:])


def sync():
    """Wait for queued GPU work of both libraries, so wall time is what the GPU took."""
    if backend.name() == "cupy":
        backend.active().cuda.Device().synchronize()
        try:
            import torch
        except ImportError:
            return
        if torch.cuda.is_available():
            torch.cuda.synchronize()


def timed(fn, min_time=0.3, max_runs=50):
    """Median wall time of fn() in milliseconds, after one warm-up call."""
    fn()
    sync()
    times = []
    while len(times) < 3 or (sum(times) < min_time and len(times) < max_runs):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def _status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    raise KeyError(field)


def peak_mb(fn):
    """Rise of the peak resident set size during one fn() call, in MB (None if unknown)."""
    if backend.name() != "numpy":
        return None
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM, the peak RSS, to the current RSS
        before = _status_kb("VmRSS:")
        fn()
        return (_status_kb("VmHWM:") - before) / 1024
    except OSError:
        return None


def tinycnn_fns(layer, x):
    dout = None

    def forward():
        return layer.forward(x)

    def forward_backward():
        nonlocal dout
        out, cache = layer.forward(x)
        if dout is None:
            dout = backend.active().ones_like(out)
        return layer.backward(dout, cache)
    return forward, forward_backward


def torch_fns(torch, layer, x_np, device):
    F = torch.nn.functional
    x = torch.from_numpy(x_np).to(device)
    s, p = layer.stride, layer.padding
    if isinstance(layer, tc.Conv2d):
        w = torch.from_numpy(backend.to_numpy(layer.params["weight"])).to(device)
        b = torch.from_numpy(backend.to_numpy(layer.params["bias"])).to(device)

        def op(x, w, b):
            return F.conv2d(x, w, b, s, p)
        args = (x, w, b)
    else:
        def op(x):
            return F.max_pool2d(x, layer.kernel_size, s, p, ceil_mode=layer.ceil_mode)
        args = (x,)
    grad_args = [a.detach().clone().requires_grad_(True) for a in args]
    dout = None

    def forward():
        with torch.no_grad():
            return op(*args)

    def forward_backward():
        nonlocal dout
        for a in grad_args:
            a.grad = None
        out = op(*grad_args)
        if dout is None:
            dout = torch.ones_like(out)
        out.backward(dout)
    return forward, forward_backward


def run(threads, measure, only=""):
    """Yield one row per (case, pass); ``measure`` is "time" or "memory"."""
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        from bench.loops import torch_exact_float32
        torch.set_num_threads(threads)
        torch_exact_float32(torch)                # no TF32: full float32, as tinycnn computes
    if measure == "time":
        from tinycnn.engine.malloc import keep_freed_memory
        # as the vis commands do (tinycnn/engine/malloc.py); torch, in this process, too
        keep_freed_memory()
    device = "cuda" if backend.name() == "cupy" else "cpu"
    rng = np.random.default_rng(0)
    for name, layer, shape in cases():
        if only not in name:
            continue
        x_np = rng.standard_normal(shape).astype(np.float32)
        x = backend.asarray(x_np)
        ours = tinycnn_fns(layer, x)
        theirs = torch_fns(torch, layer, x_np, device) if torch else (None, None)
        for pass_name, fn, tfn in zip(("fwd", "fwd+bwd"), ours, theirs):
            if measure == "memory":
                yield {"tinycnn_mb": peak_mb(fn), "torch_mb": peak_mb(tfn) if tfn else None}
                continue
            row = {
                "name": name,
                "pass": pass_name,
                "tinycnn_ms": timed(fn),
                "torch_ms": None,
                "ratio": None,
            }
            if tfn is not None:
                row.update(torch_ms=timed(tfn))
                row["ratio"] = row["tinycnn_ms"] / row["torch_ms"]
            yield row


def memory_rows(threads, only):
    """Peak memory of every row, measured in a child process (see the module docstring)."""
    if sys.platform != "linux":
        return None
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", MALLOC_TRIM_THRESHOLD_="131072")
    code = f"import json, bench.conv as b; print(json.dumps(list(b.run({threads}, 'memory', {only!r}))))"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"(memory not measured: {done.stderr.strip().splitlines()[-1:]})", file=sys.stderr)
        return None
    return json.loads(done.stdout)


def fmt(v, spec):
    """format(v, spec), or a dash of the same width for a missing value."""
    return format(v, spec) if v is not None else "-".rjust(int(spec.split(".")[0]))


NO_TORCH = ("PyTorch is not installed, so there is nothing to compare with; install the CPU build "
            "with\n    .venv/bin/pip install torch==2.13.0   (or: pip install torch --index-url "
            "https://download.pytorch.org/whl/cpu)\nTimings of tinycnn alone follow.")


def print_table(rows, threads):
    """The rows as a table, then the ratios' geometric mean, median and maximum."""
    print(f"backend {backend.name()}, float32, {threads} threads; ratio = tinycnn / PyTorch")
    print(f"{'layer':36s} {'pass':8s} {'tinycnn ms':>10s} {'torch ms':>9s} {'ratio':>6s} "
          f"{'tinycnn MB':>10s} {'torch MB':>9s}")
    ratios = []
    for r in rows:
        print(f"{r['name']:36s} {r['pass']:8s} {fmt(r['tinycnn_ms'], '10.2f')} "
              f"{fmt(r['torch_ms'], '9.2f')} {fmt(r['ratio'], '6.2f')} "
              f"{fmt(r.get('tinycnn_mb'), '10.1f')} {fmt(r.get('torch_mb'), '9.1f')}", flush=True)
        if r["ratio"] is not None:
            ratios.append(r["ratio"])
    if ratios:
        print(f"\nratio: geometric mean {np.exp(np.mean(np.log(ratios))):.2f}, "
              f"median {np.median(ratios):.2f}, max {max(ratios):.2f}; "
              f"{sum(r <= 1.5 for r in ratios)} of {len(ratios)} rows <= 1.5")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true",
                        help="print the rows as JSON instead of a table")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="threads for both libraries")
    parser.add_argument("--only", default="", help="run only the rows whose name contains this")
    args = parser.parse_args(argv)
    try:
        import torch  # noqa: F401
    except ImportError:
        print(NO_TORCH, file=sys.stderr)
    memory = memory_rows(args.threads, args.only)
    rows = run(args.threads, "time", args.only)
    if memory is not None:
        rows = ({**r, **m} for r, m in zip(rows, memory))
    if args.json:
        print(json.dumps(list(rows), indent=1))
    else:
        print_table(rows, args.threads)


if __name__ == "__main__":
    main()
