// The few CUDA names a tinycnn kernel uses, for the system C++ compiler.
//
// The strict CuPy stand-in (tests/strict_cupy/cupy/_raw.py) compiles the very same .cu text
// with `g++ -include cuda_shim.h` and runs a launch as two loops, over blocks and over
// threads, setting the four index variables below before each call of the kernel.
// Launches run one after another, so plain globals are enough (no thread_local).
// Anything else CUDA offers (__shared__, __syncthreads, atomics, 2-D/3-D grids) is
// deliberately missing: a kernel that uses it fails to compile here.
#ifndef TINYCNN_CUDA_SHIM_H
#define TINYCNN_CUDA_SHIM_H

#include <cmath>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__

struct dim3 {
    unsigned x, y, z;
};

static dim3 blockIdx, threadIdx, blockDim, gridDim;

// CUDA's fmax, fmin, sqrt and pow come with float and double overloads, as std:: ones do;
// fmaxf, fminf and INFINITY come from <cmath> itself.
using std::fmax;
using std::fmin;
using std::pow;
using std::sqrt;

#endif
