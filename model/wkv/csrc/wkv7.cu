// WKV-7 forward and backward for one head size N (template), fp32 or bf16
// inputs, fp32 state and arithmetic. Our own kernels; the maths is the one
// in model/wkv/reference.py:
//
//   sa_t = S_{t-1} a_t;  S_t = S_{t-1} diag(w_t) + sa_t b_t^T + v_t k_t^T;  y_t = S_t r_t
//
// with w_t = exp(log_w_t). Layouts: r, log_w, k, v, a, b, y: [B, T, H, N]
// contiguous; states [B, H, N(value i), N(key j)].
//
// Forward: one block per (batch, head), thread i keeps row i of S in
// registers. Every CH steps it stores the state (a checkpoint) for backward.
// Backward: per chunk, last to first, recompute the chunk's states from its
// checkpoint into a global scratch (L2-resident), then walk the chunk back
// with the adjoint dS kept in shared memory:
//   dS_t += dy_t r_t^T
//   dr_t = S_t^T dy_t,  dsa_t = dS_t b_t,  dv_t = dS_t k_t
//   dw_t = colsum(dS_t * S_{t-1}),  db_t = dS_t^T sa_t,  dk_t = dS_t^T v_t,  da_t = S_{t-1}^T dsa_t
//   dS_{t-1} = dS_t diag(w_t) + dsa_t a_t^T
// Recomputing instead of inverting the decay keeps gradients exact to fp32.

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>

namespace wkv7 {

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
template <typename T> __device__ __forceinline__ T from_f(float x);
template <> __device__ __forceinline__ float from_f<float>(float x) { return x; }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float x) { return __float2bfloat16(x); }

template <typename T, int N>
__global__ void forward_kernel(int B, int T_len, int H, int CH,
                               const T* __restrict__ r, const float* __restrict__ log_w, const T* __restrict__ k,
                               const T* __restrict__ v, const T* __restrict__ a, const T* __restrict__ b,
                               const float* __restrict__ s0, T* __restrict__ y, float* __restrict__ s_out,
                               float* __restrict__ ckpt) {
    const int bh = blockIdx.x, bi = bh / H, h = bh % H, i = threadIdx.x;
    const int NC = (T_len + CH - 1) / CH;
    __shared__ float sr[N], sw[N], sk[N], sa_[N], sb[N];
    float S[N];
    const float* s0_row = s0 + ((size_t)bh * N + i) * N;
#pragma unroll
    for (int j = 0; j < N; j++) S[j] = s0 ? s0_row[j] : 0.f;

    for (int t = 0; t < T_len; t++) {
        if (t % CH == 0) {
            float* c = ckpt + (((size_t)bh * NC + t / CH) * N + i) * N;
#pragma unroll
            for (int j = 0; j < N; j++) c[j] = S[j];
        }
        const size_t idx = (((size_t)bi * T_len + t) * H + h) * N + i;
        __syncthreads();  // previous step done reading the shared vectors
        sr[i] = to_f(r[idx]); sw[i] = __expf(log_w[idx]); sk[i] = to_f(k[idx]);
        sa_[i] = to_f(a[idx]); sb[i] = to_f(b[idx]);
        const float vi = to_f(v[idx]);
        __syncthreads();
        float sa = 0.f;
#pragma unroll
        for (int j = 0; j < N; j++) sa += S[j] * sa_[j];
        float yi = 0.f;
#pragma unroll
        for (int j = 0; j < N; j++) {
            S[j] = S[j] * sw[j] + sa * sb[j] + vi * sk[j];
            yi += S[j] * sr[j];
        }
        y[idx] = from_f<T>(yi);
    }
    float* o = s_out + ((size_t)bh * N + i) * N;
#pragma unroll
    for (int j = 0; j < N; j++) o[j] = S[j];
}

template <typename T, int N>
__global__ void backward_kernel(int B, int T_len, int H, int CH,
                                const T* __restrict__ r, const float* __restrict__ log_w, const T* __restrict__ k,
                                const T* __restrict__ v, const T* __restrict__ a, const T* __restrict__ b,
                                const T* __restrict__ dy, const float* __restrict__ ds_out,
                                const float* __restrict__ ckpt, float* __restrict__ scratch, float* __restrict__ sa_buf,
                                float* __restrict__ dr, float* __restrict__ dlog_w, float* __restrict__ dk,
                                float* __restrict__ dv, float* __restrict__ da, float* __restrict__ db,
                                float* __restrict__ ds0) {
    const int bh = blockIdx.x, bi = bh / H, h = bh % H, tid = threadIdx.x;
    const int NC = (T_len + CH - 1) / CH;
    __shared__ float dS[N][N + 1];  // +1: conflict-free row access
    __shared__ float sr[N], sw[N], sk[N], sv[N], sa_[N], sb[N], sdy[N], ssa[N], sdsa[N];
    float* scr = scratch + (size_t)bh * (CH + 1) * N * N;  // states before/after each step of a chunk
    float* sab = sa_buf + (size_t)bh * CH * N;  // sa_t of the chunk's steps

    {
        const float* g = ds_out ? ds_out + ((size_t)bh * N + tid) * N : nullptr;
        for (int j = 0; j < N; j++) dS[tid][j] = g ? g[j] : 0.f;
    }
    for (int c = NC - 1; c >= 0; c--) {
        const int t0 = c * CH, t1 = min(T_len, t0 + CH);
        // -- recompute this chunk's states (thread = row i)
        float S[N];
        const float* ck = ckpt + (((size_t)bh * NC + c) * N + tid) * N;
#pragma unroll
        for (int j = 0; j < N; j++) { S[j] = ck[j]; scr[(size_t)tid * N + j] = S[j]; }
        for (int t = t0; t < t1; t++) {
            const size_t idx = (((size_t)bi * T_len + t) * H + h) * N + tid;
            __syncthreads();
            sw[tid] = __expf(log_w[idx]); sk[tid] = to_f(k[idx]); sa_[tid] = to_f(a[idx]); sb[tid] = to_f(b[idx]);
            const float vi = to_f(v[idx]);
            __syncthreads();
            float sa = 0.f;
#pragma unroll
            for (int j = 0; j < N; j++) sa += S[j] * sa_[j];
            sab[(size_t)(t - t0) * N + tid] = sa;
            float* dst = scr + ((size_t)(t - t0 + 1) * N + tid) * N;
#pragma unroll
            for (int j = 0; j < N; j++) {
                S[j] = S[j] * sw[j] + sa * sb[j] + vi * sk[j];
                dst[j] = S[j];
            }
        }
        __syncthreads();  // scratch and sa_buf visible to the whole block

        // -- walk the chunk backwards
        for (int t = t1 - 1; t >= t0; t--) {
            const int tau = t - t0;
            const size_t idx = (((size_t)bi * T_len + t) * H + h) * N + tid;
            sr[tid] = to_f(r[idx]); sw[tid] = __expf(log_w[idx]); sk[tid] = to_f(k[idx]); sv[tid] = to_f(v[idx]);
            sa_[tid] = to_f(a[idx]); sb[tid] = to_f(b[idx]); sdy[tid] = to_f(dy[idx]);
            ssa[tid] = sab[(size_t)tau * N + tid];
            __syncthreads();
            // phase A, thread = row i
            {
                const int i = tid;
                const float dyi = sdy[i];
                float dsa = 0.f, dvi = 0.f;
                for (int j = 0; j < N; j++) {
                    const float g = dS[i][j] + dyi * sr[j];
                    dS[i][j] = g;
                    dsa += g * sb[j];
                    dvi += g * sk[j];
                }
                sdsa[i] = dsa;
                dv[idx] = dvi;
            }
            __syncthreads();
            // phase B, thread = column j
            {
                const int j = tid;
                const float* s_prev = scr + (size_t)tau * N * N;
                const float* s_cur = s_prev + (size_t)N * N;
                float drj = 0.f, dwj = 0.f, dbj = 0.f, dkj = 0.f, daj = 0.f;
                for (int i = 0; i < N; i++) {
                    const float g = dS[i][j], sp = s_prev[(size_t)i * N + j];
                    drj += sdy[i] * s_cur[(size_t)i * N + j];
                    dwj += g * sp;
                    dbj += g * ssa[i];
                    dkj += g * sv[i];
                    daj += sdsa[i] * sp;
                }
                dr[idx] = drj;
                dlog_w[idx] = dwj * sw[j];  // d/dlog_w of exp(log_w)
                db[idx] = dbj;
                dk[idx] = dkj;
                da[idx] = daj;
            }
            __syncthreads();
            // phase C, thread = row i: carry the adjoint to S_{t-1}
            {
                const int i = tid;
                const float dsa = sdsa[i];
                for (int j = 0; j < N; j++) dS[i][j] = dS[i][j] * sw[j] + dsa * sa_[j];
            }
            __syncthreads();
        }
    }
    float* o = ds0 + ((size_t)bh * N + tid) * N;
    for (int j = 0; j < N; j++) o[j] = dS[tid][j];
}

}  // namespace wkv7

// ---- launchers (called from wkv7.cpp)

template <typename T, int N>
void wkv7_forward_launch(int B, int T_len, int H, int CH, const void* r, const float* log_w, const void* k,
                         const void* v, const void* a, const void* b, const float* s0, void* y, float* s_out,
                         float* ckpt, cudaStream_t stream) {
    wkv7::forward_kernel<T, N><<<B * H, N, 0, stream>>>(
        B, T_len, H, CH, (const T*)r, log_w, (const T*)k, (const T*)v, (const T*)a, (const T*)b, s0, (T*)y, s_out, ckpt);
}

template <typename T, int N>
void wkv7_backward_launch(int B, int T_len, int H, int CH, const void* r, const float* log_w, const void* k,
                          const void* v, const void* a, const void* b, const void* dy, const float* ds_out,
                          const float* ckpt, float* scratch, float* sa_buf, float* dr, float* dlog_w, float* dk,
                          float* dv, float* da, float* db, float* ds0, cudaStream_t stream) {
    wkv7::backward_kernel<T, N><<<B * H, N, 0, stream>>>(
        B, T_len, H, CH, (const T*)r, log_w, (const T*)k, (const T*)v, (const T*)a, (const T*)b, (const T*)dy, ds_out,
        ckpt, scratch, sa_buf, dr, dlog_w, dk, dv, da, db, ds0);
}

#define INSTANTIATE(T, N)                                                                                              \
    template void wkv7_forward_launch<T, N>(int, int, int, int, const void*, const float*, const void*, const void*, \
                                            const void*, const void*, const float*, void*, float*, float*,          \
                                            cudaStream_t);                                                           \
    template void wkv7_backward_launch<T, N>(int, int, int, int, const void*, const float*, const void*,           \
                                             const void*, const void*, const void*, const void*, const float*,      \
                                             const float*, float*, float*, float*, float*, float*, float*, float*,  \
                                             float*, float*, cudaStream_t);

INSTANTIATE(float, 64)
INSTANTIATE(__nv_bfloat16, 64)
INSTANTIATE(float, 32)
INSTANTIATE(__nv_bfloat16, 32)
