"""Everything a lent GPU should prove, in one command: `make gpu-check`.

    python -m bench.gpu_check --out gpu-check        (make gpu-check; OUT=folder to choose)

Steps, in order, the numbers first and the figures last, each with its own time limit so
that the whole run fits the 10 minutes a lent machine allows one command (a step that runs out
of time is recorded as such, and the rest go on; a timeout loses only figures):

1. device:    CuPy sees the GPU (name, memory, CuPy / CUDA / PyTorch versions);
2. launches:  the CPU cost of one launch: a hand-written kernel (kernels.cu), a CuPy
              elementwise operation, a PyTorch operation, each on 256 numbers;
3. agreement: SqueezeNet forward and backward on NumPy and on CuPy, float32 and
              float64, largest relative difference;
4. bench:     bench.loops (every row) and bench.conv against PyTorch CUDA eager (cuDNN) in
              the same run, and the class-visualisation and style-transfer loops again with
              the kernels off (TINYCNN_KERNELS=0);
5. tests:     the test suite with TINYCNN_BACKEND=cupy on the real GPU, including the
              check that every name and keyword of the strict stand-in exists in CuPy
              and the NumPy-vs-CuPy agreement test;
6. figures:   `make figures FAST=1` drawn on the GPU, then the full `make figures` if
              time is left (figures whose inputs are absent are skipped and listed). The
              CIFAR-10 figures draw from ``--data`` (default gpu-data/, written by
              ``make gpu-data``: a few MB that travel with the repository).

Writes gpu_check.json (every number) and gpu_check.log (every command's output) to
the output folder. Needs CuPy and a GPU; PyTorch with CUDA for the comparisons.
"""
import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = 560          # the whole run, start to end; the full figures only run if it allows


class Run:
    def __init__(self, out):
        self.out = out
        self.out.mkdir(parents=True, exist_ok=True)
        self.log = open(out / "gpu_check.log", "w")
        self.result = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "host": platform.node(),
                       "steps": {}}
        self.start = time.perf_counter()

    def left(self):
        return BUDGET_S - (time.perf_counter() - self.start)

    def say(self, text):
        print(text, flush=True)
        self.log.write(text + "\n")
        self.log.flush()

    def command(self, name, argv, timeout, env=None):
        """Run argv, log its output, record {seconds, rc, tail}; returns the completed output."""
        shown = " ".join(a if "\n" not in a else "<script>" for a in argv)   # scripts: not echoed
        self.say(f"== {name}: {shown} (limit {timeout:.0f} s)")
        t = time.perf_counter()
        try:
            done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                                  env=dict(os.environ, **(env or {})))
            rc, output = done.returncode, done.stdout + done.stderr
        except subprocess.TimeoutExpired as e:
            rc = "timeout"
            output = ((e.stdout or b"").decode(errors="replace")
                      + (e.stderr or b"").decode(errors="replace"))
        seconds = time.perf_counter() - t
        self.log.write(output + "\n")
        tail = output.strip().splitlines()[-3:]
        self.result["steps"][name] = {"seconds": round(seconds, 1), "rc": rc, "tail": tail}
        self.say(f"   {name}: rc {rc} in {seconds:.1f} s; " + (tail[-1] if tail else ""))
        self.save()
        return output if rc == 0 else None

    def save(self):
        self.result["total_s"] = round(time.perf_counter() - self.start, 1)
        (self.out / "gpu_check.json").write_text(json.dumps(self.result, indent=1))


DEVICE = r"""
import json, cupy
props = cupy.cuda.runtime.getDeviceProperties(0)
info = {"gpu": props["name"].decode(), "memory_gib": round(props["totalGlobalMem"] / 2**30, 1),
        "cupy": cupy.__version__, "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion()}
try:
    import torch
    info.update(torch=torch.__version__, torch_cuda=torch.cuda.is_available(),
                cudnn=torch.backends.cudnn.version() if torch.cuda.is_available() else None)
except ImportError:
    info["torch"] = None
print(json.dumps(info))
"""

LAUNCHES = r"""
import json, time, numpy as np, cupy
from tinycnn.engine import kernels

def microseconds_per_call(call, synchronize, n=2000):
    call()
    synchronize()
    start = time.perf_counter()
    for _ in range(n):
        call()
    synchronize()
    return round((time.perf_counter() - start) / n * 1e6, 2)

x = cupy.ones(256, dtype=cupy.float32)
out, mask = cupy.empty_like(x), cupy.empty(x.shape, dtype=bool)
sync = cupy.cuda.Device().synchronize
cost = {"kernel_us": microseconds_per_call(
            lambda: kernels._launch(cupy, "relu_forward", x.dtype, x.size, x, out, mask), sync),
        "cupy_elementwise_us": microseconds_per_call(lambda: cupy.add(x, 1, out=out), sync)}
try:
    import torch
    if torch.cuda.is_available():
        t = torch.ones(256, device="cuda")
        u = torch.empty_like(t)
        cost["torch_us"] = microseconds_per_call(lambda: torch.add(t, 1, out=u),
                                                 torch.cuda.synchronize)
except ImportError:
    pass
print(json.dumps(cost))
"""

AGREEMENT = r"""
import json, numpy as np
from tests.test_backends_agree import compare_squeezenet
print(json.dumps({"float32": compare_squeezenet(np.float32, 224),
                  "float64": compare_squeezenet(np.float64, 224)}))
"""


def last_json(output):
    """The JSON document at the end of a command's output."""
    text = output.strip()
    for start in [i for i, c in enumerate(text) if c in "[{"]:
        try:
            return json.loads(text[start:])
        except ValueError:
            continue
    return None


CUPY_ENV = {"TINYCNN_BACKEND": "cupy", "PYTHONUNBUFFERED": "1"}


def check_device(run, py):
    """Step 1: CuPy sees a GPU; exits (status 2) where it does not, since nothing else can run."""
    if importlib.util.find_spec("cupy") is None:
        run.say(f"error: CuPy is not installed for {py}; make gpu-check is for a GPU machine with "
                "CuPy (pip install -e '.[gpu]' there)")
        sys.exit(2)
    out = run.command("device", [py, "-c", DEVICE], 120)
    if out is None:
        run.say("error: CuPy does not see a GPU here; nothing else can be checked")
        sys.exit(2)
    run.result["device"] = last_json(out)
    run.say(f"   {run.result['device']}")


def check_launches(run, py, args):
    """Step 2: what one launch costs the CPU, for a kernel of kernels.cu, CuPy and PyTorch."""
    out = run.command("launches", [py, "-c", LAUNCHES], 60, CUPY_ENV)
    run.result["launch_cost"] = last_json(out) if out else None


def check_agreement(run, py, args):
    """Step 3: SqueezeNet forward and backward on NumPy and on CuPy, float32 and float64."""
    out = run.command("agreement", [py, "-c", AGREEMENT], 90, CUPY_ENV)
    run.result["agreement_max_relative_error"] = last_json(out) if out else None


def check_bench(run, py, args):
    """Step 4: bench.loops and bench.conv against PyTorch CUDA, with the convolutions' geometric
    mean ratio; then the two optimisation loops with the kernels off."""
    out = run.command("bench_loops", [py, "-m", "bench.loops", "--json"], min(150, run.left()),
                      CUPY_ENV)
    run.result["bench_loops"] = last_json(out) if out else None
    for task in ("class_visualization", "style_transfer"):
        out = run.command(f"bench_loops_{task}_without_kernels",
                          [py, "-m", "bench.loops", "--json", "--only", task],
                          min(45, run.left()), dict(CUPY_ENV, TINYCNN_KERNELS="0"))
        run.result[f"bench_loops_{task}_without_kernels"] = last_json(out) if out else None
    out = run.command("bench_conv", [py, "-m", "bench.conv", "--json"], min(120, run.left()),
                      CUPY_ENV)
    rows = last_json(out) if out else None
    if rows:
        ratios = [r["ratio"] for r in rows if r.get("ratio")]
        geo = float(np.exp(np.log(ratios).mean())) if ratios else None
        run.result["bench_conv"] = {"geometric_mean_ratio": geo, "rows": rows}


def check_tests(run, py, args):
    """Step 5: the test suite on the real GPU (pytest-xdist's workers where present)."""
    parallel = ["-n", "8"] if importlib.util.find_spec("xdist") else []
    run.command("tests", [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE",
                          "--durations=8", "--ignore=tests/test_gallery.py"] + parallel,
                min(150, run.left()), dict(CUPY_ENV, HYPOTHESIS_PROFILE="gpu"))
    run.result["tests"] = run.result["steps"]["tests"]["tail"][-1:] or None


def check_figures(run, py, args):
    """Step 6: make figures FAST=1 on the GPU, then the full figures if the budget allows."""
    figures = Path(args.figures) if args.figures else run.out / "figures"
    env = dict(CUPY_ENV)
    if Path(args.data).is_dir():
        env["TINYCNN_DATA_DIR"] = str(Path(args.data).resolve())
    run.command("figures_fast",
                [py, "-m", "vis.gallery", "--fast", "--out", str(figures / "fast")],
                min(150, run.left()), env)
    if run.left() > 100:
        run.command("figures_full", [py, "-m", "vis.gallery", "--out", str(figures / "full")],
                    run.left() - 10, env)
    else:
        run.say(f"   figures_full: not run, {run.left():.0f} s left of the {BUDGET_S} s budget")


STEPS = {"launches": check_launches, "agreement": check_agreement, "bench": check_bench,
         "tests": check_tests, "figures": check_figures}


def main(argv=None):
    p = argparse.ArgumentParser(description="Prove and measure tinycnn on a lent GPU "
                                "(make gpu-check).")
    p.add_argument("--out", default="gpu-check",
                   help="folder for gpu_check.json and gpu_check.log (default: %(default)s)")
    p.add_argument("--figures", default=None, help="folder for the figures (default: OUT/figures)")
    p.add_argument("--data", default="gpu-data",
                   help="TINYCNN_DATA_DIR for the figures, where it exists (default: %(default)s,"
                        " written by make gpu-data)")
    p.add_argument("--skip", nargs="*", default=[], choices=list(STEPS), help="steps to leave out")
    args = p.parse_args(argv)
    run = Run(Path(args.out))
    check_device(run, sys.executable)
    for name, step in STEPS.items():
        if name not in args.skip:
            step(run, sys.executable, args)
    run.save()
    failed = [k for k, v in run.result["steps"].items() if v["rc"] != 0]
    run.say(f"done in {run.result['total_s']:.0f} s; "
            + (f"failed: {', '.join(failed)}" if failed else "all steps passed"))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
