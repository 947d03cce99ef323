// The sliding-window operations as CUDA kernels: the engine's GPU path.
//
// On a GPU the NumPy-style code of tinycnn/im2col.py and tinycnn/engine/pool.py costs one
// kernel launch per array operation (K*K slices for an im2col, a dozen per max pool); each
// kernel here does the whole operation in one launch. They are written to be read beside
// their NumPy twins, after Caffe's im2col.cu:
//
// - one thread per OUTPUT element: thread i decomposes i into the output's indices, in the
//   output's C order (the last index varies fastest), and computes that one element;
// - gathers, never scatters: where NumPy adds slices onto an array (col2im, the pooling
//   gradient), each output element here sums the entries that land on it, in the order NumPy
//   adds them. No atomics, so a run is deterministic, like the NumPy path;
// - float and double alike: one template body per kernel and one extern "C" wrapper per type
//   (suffix _f32, _f64), so CuPy finds each by a plain name.
//
// Every array is C-contiguous and every scalar has exactly the parameter's type: the caller,
// tinycnn/engine/kernels.py, sees to both (CuPy's RawKernel checks neither). Sizes fit an
// int; flat indices, which may not, are long long.
//
// The same text compiles with nvcc (tests/test_kernels.py: nvcc --ptx for sm_80 and sm_90)
// and with g++ through the strict CuPy stand-in's shim header, which defines __global__,
// __device__ and the thread indices away and loops over blocks and threads on the CPU.

// ---------------------------------------------------------------------------------------------
// im2col: x (N, C, H, W) -> cols (C*KH*KW, N*OH*OW), rows (c, i, j), columns (n, y, x).
// NumPy twin: im2col in tinycnn/im2col.py, where pad_input pads with zeros first and each
// kernel offset (i, j) copies one strided slice:
//
//     cols[(c, i, j), (n, y, x)] = x_pad[n, c, y*stride + i, x*stride + j]
//
// Here the padding is fused in: the pixel read is x[n, c, y*stride + i - pad, x*stride + j - pad],
// and a position outside the image reads zero.
template <typename T>
__device__ void im2col_body(const T* x, T* cols, int N, int C, int H, int W, int KH, int KW,
                            int stride, int pad, int OH, int OW, long long total)
{
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    // i = ((((c*KH + ki)*KW + kj)*N + n)*OH + y)*OW + x
    long long t = i;
    int x_ = (int)(t % OW); t /= OW;
    int y = (int)(t % OH); t /= OH;
    int n = (int)(t % N); t /= N;
    int kj = (int)(t % KW); t /= KW;
    int ki = (int)(t % KH);
    int c = (int)(t / KH);
    int row = y * stride + ki - pad;        // in the unpadded image
    int col = x_ * stride + kj - pad;
    T value = 0;
    if (row >= 0 && row < H && col >= 0 && col < W) {
        value = x[(((long long)n * C + c) * H + row) * W + col];
    }
    cols[i] = value;
}

extern "C" __global__ void im2col_f32(const float* x, float* cols, int N, int C, int H, int W,
                                      int KH, int KW, int stride, int pad, int OH, int OW,
                                      long long total)
{ im2col_body<float>(x, cols, N, C, H, W, KH, KW, stride, pad, OH, OW, total); }

extern "C" __global__ void im2col_f64(const double* x, double* cols, int N, int C, int H, int W,
                                      int KH, int KW, int stride, int pad, int OH, int OW,
                                      long long total)
{ im2col_body<double>(x, cols, N, C, H, W, KH, KW, stride, pad, OH, OW, total); }

// ---------------------------------------------------------------------------------------------
// The windows that contain one padded coordinate p (0 <= p < padded size): window y covers
// y*stride .. y*stride + K - 1, so p lies in windows y with p - K < y*stride <= p, that is
//
//     first = p < K ? 0 : (p - K) / stride + 1,     last = min(p / stride, OUT - 1),
//
// and there it is the window's entry i = p - y*stride. Shared by col2im and the max-pool
// gradient, the two gathers.
__device__ int first_window(int p, int K, int stride)
{
    return p < K ? 0 : (p - K) / stride + 1;
}

__device__ int last_window(int p, int stride, int out)
{
    int last = p / stride;
    return last < out - 1 ? last : out - 1;
}

// ---------------------------------------------------------------------------------------------
// col2im: cols (C*KH*KW, N*OH*OW) -> dx (N, C, H, W), the exact adjoint of im2col.
// NumPy twin: col2im in tinycnn/im2col.py, a scatter that adds each offset's slice onto the
// padded image, offset (i, j) after offset (i, j - 1):
//
//     dx_pad[n, c, y*stride + i, x*stride + j] += cols[(c, i, j), (n, y, x)]
//
// As a gather: pixel (row, col) of the image is (row + pad, col + pad) of the padded image; it
// sums the column entries of every window (y, x) that contains it, at entry i = row + pad -
// y*stride, j = col + pad - x*stride. Walking y and x downwards walks i and j upwards: the
// same additions as NumPy's, in the same order, onto the same zero.
template <typename T>
__device__ void col2im_body(const T* cols, T* dx, int N, int C, int H, int W, int KH, int KW,
                            int stride, int pad, int OH, int OW, long long total)
{
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    // i = ((n*C + c)*H + row)*W + col
    long long t = i;
    int col = (int)(t % W); t /= W;
    int row = (int)(t % H); t /= H;
    int c = (int)(t % C);
    int n = (int)(t / C);
    int pr = row + pad, pc = col + pad;     // in the padded image
    long long columns = (long long)N * OH * OW;
    T sum = 0;
    for (int y = last_window(pr, stride, OH); y >= first_window(pr, KH, stride); --y) {
        int ki = pr - y * stride;
        for (int x_ = last_window(pc, stride, OW); x_ >= first_window(pc, KW, stride); --x_) {
            int kj = pc - x_ * stride;
            long long r = ((long long)c * KH + ki) * KW + kj;
            sum += cols[r * columns + ((long long)n * OH + y) * OW + x_];
        }
    }
    dx[i] = sum;
}

extern "C" __global__ void col2im_f32(const float* cols, float* dx, int N, int C, int H, int W,
                                      int KH, int KW, int stride, int pad, int OH, int OW,
                                      long long total)
{ col2im_body<float>(cols, dx, N, C, H, W, KH, KW, stride, pad, OH, OW, total); }

extern "C" __global__ void col2im_f64(const double* cols, double* dx, int N, int C, int H, int W,
                                      int KH, int KW, int stride, int pad, int OH, int OW,
                                      long long total)
{ col2im_body<double>(cols, dx, N, C, H, W, KH, KW, stride, pad, OH, OW, total); }

// ---------------------------------------------------------------------------------------------
// Max-pool forward: x_pad (N, C, Hp, Wp), already padded with -inf (MaxPool2d pads, ceil_mode's
// extra cells included) -> out (N, C, OH, OW) and winner (N, C, OH, OW).
// NumPy twin: max_pool in tinycnn/engine/pool.py (and MaxPool2d's clear path, max and argmax
// over the stacked window offsets):
//
//     out[n, c, y, x] = max over (i, j) of x_pad[n, c, y*stride + i, x*stride + j]
//     winner[n, c, y, x] = i*K + j of the first maximum in window order (row-major)
//
// Only a strictly larger value replaces the best so far, so a tie keeps the earlier offset.
// The winner is a signed char when K*K < 128 (as NumPy's int8), else an int.
template <typename T, typename Winner>
__device__ void max_pool_forward_body(const T* x_pad, T* out, Winner* winner, int Hp, int Wp,
                                      int K, int stride, int OH, int OW, long long total)
{
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    // i = ((n*C + c)*OH + y)*OW + x, and (n, c) is one plane of x_pad
    int x_ = (int)(i % OW);
    int y = (int)((i / OW) % OH);
    long long plane = i / ((long long)OW * OH);
    const T* window = x_pad + (plane * Hp + (long long)y * stride) * Wp + (long long)x_ * stride;
    T best = window[0];
    int best_k = 0;
    for (int ki = 0; ki < K; ++ki) {
        for (int kj = 0; kj < K; ++kj) {
            T v = window[(long long)ki * Wp + kj];
            if (v > best) {
                best = v;
                best_k = ki * K + kj;
            }
        }
    }
    out[i] = best;
    winner[i] = (Winner)best_k;
}

extern "C" __global__ void max_pool_forward_f32(
    const float* x_pad, float* out, signed char* winner, int Hp, int Wp, int K, int stride,
    int OH, int OW, long long total)
{
    max_pool_forward_body<float, signed char>(x_pad, out, winner, Hp, Wp,
                                              K, stride, OH, OW, total);
}

extern "C" __global__ void max_pool_forward_f64(
    const double* x_pad, double* out, signed char* winner, int Hp, int Wp, int K, int stride,
    int OH, int OW, long long total)
{
    max_pool_forward_body<double, signed char>(x_pad, out, winner, Hp, Wp,
                                               K, stride, OH, OW, total);
}

extern "C" __global__ void max_pool_forward_int_f32(
    const float* x_pad, float* out, int* winner, int Hp, int Wp, int K, int stride,
    int OH, int OW, long long total)
{
    max_pool_forward_body<float, int>(x_pad, out, winner, Hp, Wp, K, stride, OH, OW, total);
}

extern "C" __global__ void max_pool_forward_int_f64(
    const double* x_pad, double* out, int* winner, int Hp, int Wp, int K, int stride,
    int OH, int OW, long long total)
{
    max_pool_forward_body<double, int>(x_pad, out, winner, Hp, Wp, K, stride, OH, OW, total);
}

// ---------------------------------------------------------------------------------------------
// Max-pool backward: dout (N, C, OH, OW) and winner -> dx_pad (N, C, Hp, Wp), the gradient on
// the padded input (MaxPool2d crops the padding off).
// NumPy twin: MaxPool2d.backward in tinycnn/layers.py through engine.spread, a scatter over the
// window offsets k = i*K + j in order:
//
//     dx_pad[n, c, y*stride + i, x*stride + j] += (winner[n, c, y, x] == k) * dout[n, c, y, x]
//
// As a gather: padded pixel (pr, pc) sums dout over the windows (y, x) that contain it and
// whose winner is its own offset k = (pr - y*stride)*K + (pc - x*stride); y and x downwards,
// so k upwards, NumPy's order. Windows that another pixel won add nothing (NumPy adds 0).
template <typename T, typename Winner>
__device__ void max_pool_backward_body(const T* dout, const Winner* winner, T* dx_pad, int Hp,
                                       int Wp, int K, int stride, int OH, int OW, long long total)
{
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    // i = ((n*C + c)*Hp + pr)*Wp + pc
    int pc = (int)(i % Wp);
    int pr = (int)((i / Wp) % Hp);
    long long plane = i / ((long long)Wp * Hp);
    T sum = 0;
    for (int y = last_window(pr, stride, OH); y >= first_window(pr, K, stride); --y) {
        int ki = pr - y * stride;
        for (int x_ = last_window(pc, stride, OW); x_ >= first_window(pc, K, stride); --x_) {
            int k = ki * K + (pc - x_ * stride);
            long long o = (plane * OH + y) * OW + x_;
            if ((int)winner[o] == k) sum += dout[o];
        }
    }
    dx_pad[i] = sum;
}

extern "C" __global__ void max_pool_backward_f32(
    const float* dout, const signed char* winner, float* dx_pad, int Hp, int Wp, int K, int stride,
    int OH, int OW, long long total)
{
    max_pool_backward_body<float, signed char>(dout, winner, dx_pad, Hp, Wp,
                                               K, stride, OH, OW, total);
}

extern "C" __global__ void max_pool_backward_f64(
    const double* dout, const signed char* winner, double* dx_pad, int Hp, int Wp, int K,
    int stride, int OH, int OW, long long total)
{
    max_pool_backward_body<double, signed char>(dout, winner, dx_pad, Hp, Wp,
                                                K, stride, OH, OW, total);
}

extern "C" __global__ void max_pool_backward_int_f32(
    const float* dout, const int* winner, float* dx_pad, int Hp, int Wp, int K, int stride,
    int OH, int OW, long long total)
{
    max_pool_backward_body<float, int>(dout, winner, dx_pad, Hp, Wp, K, stride, OH, OW, total);
}

extern "C" __global__ void max_pool_backward_int_f64(
    const double* dout, const int* winner, double* dx_pad, int Hp, int Wp, int K, int stride,
    int OH, int OW, long long total)
{
    max_pool_backward_body<double, int>(dout, winner, dx_pad, Hp, Wp, K, stride, OH, OW, total);
}

// ---------------------------------------------------------------------------------------------
// ReLU backward, the three rules of Springenberg et al. 2015, fig. 1, chosen by `rule`:
// NumPy twin: ReLU.backward in tinycnn/layers.py, with positive_x = (x > 0) from the forward pass:
//
//     rule 0, backprop:  dx = (x > 0) * dout
//     rule 1, deconvnet: dx = (dout > 0) * dout
//     rule 2, guided:    dx = (x > 0) * (dout > 0) * dout
//
// A multiplication, as in NumPy, not a choice between dout and 0: a masked -1 gives -0 and a
// masked NaN stays NaN in both.
template <typename T>
__device__ void relu_backward_body(const unsigned char* positive_x, const T* dout, T* dx,
                                   int rule, long long total)
{
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    T d = dout[i];
    bool pass;
    if (rule == 0) {
        pass = positive_x[i] != 0;
    } else if (rule == 1) {
        pass = d > 0;
    } else {
        pass = positive_x[i] != 0 && d > 0;
    }
    dx[i] = (T)pass * d;
}

extern "C" __global__ void relu_backward_f32(const unsigned char* positive_x, const float* dout,
                                             float* dx, int rule, long long total)
{ relu_backward_body<float>(positive_x, dout, dx, rule, total); }

extern "C" __global__ void relu_backward_f64(const unsigned char* positive_x, const double* dout,
                                             double* dx, int rule, long long total)
{ relu_backward_body<double>(positive_x, dout, dx, rule, total); }
