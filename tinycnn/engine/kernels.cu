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

// ---------------------------------------------------------------------------------------------
// ReLU forward: out = max(x, 0) and the mask positive_x = (x > 0) the backward rules read.
// NumPy twin: ReLU.forward in tinycnn/layers.py, `maximum(x, 0), x > 0`, two launches there.
//
// As np.maximum: NaN propagates, and -0 gives +0 (the 0 is the larger).
template <typename T>
__device__ void relu_forward_body(const T* x, T* out, unsigned char* positive_x, long long total)
{
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    T v = x[i];
    out[i] = (v > 0 || v != v) ? v : (T)0;
    positive_x[i] = v > 0;
}

extern "C" __global__ void relu_forward_f32(const float* x, float* out,
                                            unsigned char* positive_x, long long total)
{ relu_forward_body<float>(x, out, positive_x, total); }

extern "C" __global__ void relu_forward_f64(const double* x, double* out,
                                            unsigned char* positive_x, long long total)
{ relu_forward_body<double>(x, out, positive_x, total); }

// ---------------------------------------------------------------------------------------------
// Adam's step (Kingma & Ba 2015, Algorithm 1) on one array: moments updated in place, the
// change written to `step`. NumPy twin: adam_step in tinycnn/optim.py, a dozen launches there:
//
//     m = b1 m + (1 - b1) g,   v = b2 v + (1 - b2) g^2
//     step = lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
//
// Every operation in NumPy's order, each rounded to T, with the constants already in T (the
// caller casts them as NumPy casts a Python float): the same bits as the array code, given no
// fused multiply-add (kernels.py compiles with --fmad=false, the stand-in with
// -ffp-contract=off).
template <typename T>
__device__ void adam_step_body(const T* g, T* m, T* v, T* step, T b1, T one_minus_b1, T b2,
                               T one_minus_b2, T correction1, T correction2, T lr, T eps,
                               long long total)
{
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    T gi = g[i];
    T mi = m[i] * b1;
    mi = mi + one_minus_b1 * gi;
    T vi = v[i] * b2;
    vi = vi + one_minus_b2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    step[i] = lr * (mi / correction1) / (sqrt(vi / correction2) + eps);
}

extern "C" __global__ void adam_step_f32(const float* g, float* m, float* v, float* step,
                                         float b1, float one_minus_b1, float b2,
                                         float one_minus_b2, float correction1,
                                         float correction2, float lr, float eps, long long total)
{
    adam_step_body<float>(g, m, v, step, b1, one_minus_b1, b2, one_minus_b2, correction1,
                          correction2, lr, eps, total);
}

extern "C" __global__ void adam_step_f64(const double* g, double* m, double* v, double* step,
                                         double b1, double one_minus_b1, double b2,
                                         double one_minus_b2, double correction1,
                                         double correction2, double lr, double eps,
                                         long long total)
{
    adam_step_body<double>(g, m, v, step, b1, one_minus_b1, b2, one_minus_b2, correction1,
                           correction2, lr, eps, total);
}

// ---------------------------------------------------------------------------------------------
// Total variation, R = sum_ij (dh_ij^2 + dv_ij^2)^(beta/2), per pixel: its term of R and its
// gradient. NumPy twin: tv_loss in vis/objectives.py, two dozen launches there, with
//
//     dh[i, j] = x[i, j+1] - x[i, j]  (0 on the last column),  dv likewise down the rows,
//     s = dh^2 + dv^2,  ds = dR/ds = (beta/2) (s + eps)^(beta/2 - 1)  (1 for beta = 2),
//     gh = 2 ds dh,  gv = 2 ds dv,
//     dx[i, j] = gh[i, j-1] - gh[i, j] + gv[i-1, j] - gv[i, j]   (terms off the image are 0)
//
// A pixel's gradient gathers gh and gv of itself and of its left and upper neighbours, each
// recomputed from x here; the sum runs in the order NumPy adds its slices, so for beta = 2 the
// result has the array code's bits (pow, for other beta, may differ in its last bits between
// math libraries). `terms` holds each pixel's term of R; the caller sums it and scales both
// by the weight.
template <typename T>
__device__ void tv_differences(const T* x, long long plane, int H, int W, int r, int c,
                               int squared, T half_beta, T exponent, T eps, T* gh, T* gv,
                               T* term)
{
    const T* p = x + plane * H * W;
    T dh = c + 1 < W ? p[r * W + c + 1] - p[r * W + c] : (T)0;
    T dv = r + 1 < H ? p[(r + 1) * W + c] - p[r * W + c] : (T)0;
    T s = dh * dh + dv * dv;
    T ds = 1;
    if (!squared) {                 // beta != 2: half_beta = beta/2, exponent = beta/2 - 1
        s = s + eps;
        ds = half_beta * pow(s, exponent);
        s = pow(s, half_beta);
    }
    *gh = 2 * ds * dh;
    *gv = 2 * ds * dv;
    if (term) *term = s;
}

template <typename T>
__device__ void tv_loss_body(const T* x, T* terms, T* dx, int H, int W, int squared,
                             T half_beta, T exponent, T eps, long long total)
{
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    int c = (int)(i % W);
    int r = (int)(i / W % H);
    long long plane = i / ((long long)H * W);
    T gh, gv, left_gh, up_gv, unused, d = 0;
    tv_differences<T>(x, plane, H, W, r, c, squared, half_beta, exponent, eps, &gh, &gv,
                      &terms[i]);
    if (c > 0) {
        tv_differences<T>(x, plane, H, W, r, c - 1, squared, half_beta, exponent, eps,
                          &left_gh, &unused, (T*)0);
        d = d + left_gh;
    }
    if (c + 1 < W) d = d - gh;
    if (r > 0) {
        tv_differences<T>(x, plane, H, W, r - 1, c, squared, half_beta, exponent, eps,
                          &unused, &up_gv, (T*)0);
        d = d + up_gv;
    }
    if (r + 1 < H) d = d - gv;
    dx[i] = d;
}

extern "C" __global__ void tv_loss_f32(const float* x, float* terms, float* dx, int H, int W,
                                       int squared, float half_beta, float exponent, float eps,
                                       long long total)
{ tv_loss_body<float>(x, terms, dx, H, W, squared, half_beta, exponent, eps, total); }

extern "C" __global__ void tv_loss_f64(const double* x, double* terms, double* dx, int H,
                                       int W, int squared, double half_beta, double exponent,
                                       double eps, long long total)
{ tv_loss_body<double>(x, terms, dx, H, W, squared, half_beta, exponent, eps, total); }
