// Fused RWKV-7 recurrent step for CPU, fp32, one thread.
//
// Why: eager PyTorch spends ~10 us of dispatch per op and a step has ~40 ops
// per layer, so a 6-layer step costs milliseconds of overhead for well under
// a millisecond of arithmetic. This file does the whole step (all layers, the
// head) in one call with plain loops the compiler vectorises.
//
// Deliberately no torch headers: it builds in ~2 s with the system C++
// compiler and is called through ctypes (model/fast_step.py), so a fresh CI
// machine never spends a minute compiling a torch extension. Layouts are
// the PyTorch parameters' (LoRA matrices = [in, out]) except the big
// nn.Linear matrices, which the Python side passes packed (see gemm_rows).
// model/rwkv7.py's pure-PyTorch step is the reference it is tested against.

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace {

// Per-layer weight pointer slots (must match LAYER_SLOTS in fast_step.py).
enum Slot {
    LN1_W, LN1_B, LN2_W, LN2_B,
    X_R, X_W, X_K, X_V, X_A, X_G,
    W0, W1, W2, A0, A1, A2, V0, V1, V2, G1, G2,
    K_K, K_A, R_K,
    ATT_R, ATT_K, ATT_V, ATT_O,
    LNX_W, LNX_B,
    FFN_XK, FFN_K, FFN_V,
    N_SLOTS
};
// Global slots, after the per-layer ones.
enum GSlot { EMB, LN0_W, LN0_B, LNOUT_W, LNOUT_B, HEAD, N_GSLOTS };

constexpr float DECAY_SCALE = 0.60653065971263342f;  // exp(-0.5)
constexpr float LN_EPS = 1e-5f;
constexpr float GN_EPS = 64e-5f;
constexpr float NORM_EPS = 1e-12f;  // F.normalize

// exp that the compiler can vectorise. std::exp is a scalar libm call
// (~10 ns) and a step needs ~1,000 of them per layer per batch row, which
// made them the largest cost that grows with the batch. Range reduction
// x = n ln2 + r, |r| <= ln2/2, then a degree-7 Taylor polynomial: relative
// error ~1e-7, i.e. within an ulp or two of libm.
inline float vexp(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);  // fmin/fmax would be libm calls
    // round to nearest by the 1.5 * 2^23 trick (std::floor does not vectorise)
    const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    const float r = (x - n * 0.693145751953125f) - n * 1.42860682030941723212e-6f;  // ln2 split hi/lo
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const int32_t bits = ((int32_t)n + 127) << 23;  // 2^n, n in [-126, 127]
    return p * __builtin_bit_cast(float, bits);  // memcpy here would block vectorisation
}
inline float sigmoidf(float x) { return 1.0f / (1.0f + vexp(-x)); }
inline float vtanh(float x) { return 2.0f * sigmoidf(2.0f * x) - 1.0f; }

void layer_norm(const float* x, const float* w, const float* b, float* y, int n, float eps) {
    // simd reductions: reassociated sums (tree order, not left to right),
    // well within the 1e-4 parity with the PyTorch step.
    float mean = 0.f;
#pragma omp simd reduction(+ : mean)
    for (int i = 0; i < n; i++) mean += x[i];
    mean /= n;
    float var = 0.f;
#pragma omp simd reduction(+ : var)
    for (int i = 0; i < n; i++) { float d = x[i] - mean; var += d * d; }
    var /= n;
    const float rs = 1.0f / std::sqrt(var + eps);
    for (int i = 0; i < n; i++) y[i] = (x[i] - mean) * rs * w[i] + b[i];
}

// Weights of the big matrices are fp32, or bf16 (raw uint16) to halve the
// memory traffic that bounds a batch-1 step; bf16 -> fp32 is exact (a shift).
inline float ld(const float* w, size_t i) { return w[i]; }
inline float ld(const uint16_t* w, size_t i) {
    const uint32_t u = (uint32_t)w[i] << 16;
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

// y[b, o] = sum_i x[b, i] W[o, i] for the big (nn.Linear) matrices, which
// the Python side hands over packed: blocks of OB outputs, each block
// [I, OB] contiguous (outputs padded with zeros to a multiple of OB).
//
// Why packed: outputs contiguous let the inner loop run along o with x[b, i]
// broadcast, so there is no horizontal reduction and each weight vector
// loaded serves up to 4 batch rows; a block of NB rows x OB outputs keeps its
// NB * OB / 16 accumulators in registers. Blocks contiguous make the whole
// matrix one sequential stream, which is what bounds a batch-1 step (the
// weights live in L3, not L2) and what the hardware prefetcher likes best.
constexpr int OB = 64;

// The LoRA matrices ([I, O], used as x @ W, small enough to sit in L2) go
// through the same kernel unpacked: row i of block o0 is at W + i * O + o0.
#if defined(__AVX512F__)
inline __m512 load16(const float* w) { return _mm512_loadu_ps(w); }
inline __m512 load16(const uint16_t* w) {  // bf16 -> fp32: the bits, shifted up
    const __m512i u = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(u, 16));
}

// A block of NV * 16 outputs with explicit registers: each weight row is
// loaded once into NV registers and reused for all NB batch rows. Left to
// itself the compiler folds the loads into the FMAs, so every weight vector
// was re-read NB times and at batch 4 the loop was bound by loads, not by
// the FMAs (batch-4 step 0.43 -> 0.38 ms). Outputs past ow (a packed
// matrix's zero padding) are masked off at the store.
template <typename WT, int NB, int NV>
inline void gemm_block_avx512(const WT* __restrict Wb, size_t ldw, const float* __restrict x, int I,
                              float* __restrict y, int O, int ow) {
    __m512 acc[NB][NV];
    for (int b = 0; b < NB; b++)
        for (int u = 0; u < NV; u++) acc[b][u] = _mm512_setzero_ps();
    for (int i = 0; i < I; i++) {
        const WT* w = Wb + i * ldw;
        __m512 wv[NV];
        for (int u = 0; u < NV; u++) wv[u] = load16(w + 16 * u);
        for (int b = 0; b < NB; b++) {
            const __m512 xb = _mm512_set1_ps(x[(size_t)b * I + i]);
            for (int u = 0; u < NV; u++) acc[b][u] = _mm512_fmadd_ps(wv[u], xb, acc[b][u]);
        }
    }
    for (int u = 0; u < NV; u++) {
        const int n = ow - 16 * u;
        const __mmask16 m = n >= 16 ? (__mmask16)0xFFFF : n > 0 ? (__mmask16)((1u << n) - 1) : (__mmask16)0;
        for (int b = 0; b < NB; b++) _mm512_mask_storeu_ps(y + (size_t)b * O + 16 * u, m, acc[b][u]);
    }
}
#endif

template <typename WT, int NB, bool PACKED>
void gemm_rows(const WT* __restrict W, const float* __restrict x, float* __restrict y, int I, int O) {
    for (int o0 = 0; o0 < O; o0 += OB) {
        const WT* Wb = PACKED ? W + (size_t)o0 * I : W + o0;
        const size_t ldw = PACKED ? OB : (size_t)O;
        const int ow = O - o0 < OB ? O - o0 : OB;  // ragged last block (e.g. the head's 330 outputs)
#if defined(__AVX512F__)
        static_assert(OB == 64, "the AVX-512 block holds 4 x 16 outputs");
        if (PACKED || ow == OB) {
            gemm_block_avx512<WT, NB, 4>(Wb, ldw, x, I, y + o0, O, ow);
            continue;
        }
        if (ow == 32) {  // the 32-wide LoRA matrices
            gemm_block_avx512<WT, NB, 2>(Wb, ldw, x, I, y + o0, O, ow);
            continue;
        }
#endif
        float acc[NB][OB] = {};
        if (PACKED || ow == OB) {  // packed blocks are zero-padded: always full width
            for (int i = 0; i < I; i++) {
                const WT* w = Wb + i * ldw;
                for (int b = 0; b < NB; b++) {
                    const float xb = x[(size_t)b * I + i];
#pragma omp simd
                    for (int j = 0; j < OB; j++) acc[b][j] += xb * ld(w, j);
                }
            }
        } else {
            for (int i = 0; i < I; i++) {
                const WT* w = Wb + i * ldw;
                for (int b = 0; b < NB; b++) {
                    const float xb = x[(size_t)b * I + i];
#pragma omp simd
                    for (int j = 0; j < ow; j++) acc[b][j] += xb * ld(w, j);
                }
            }
        }
        for (int b = 0; b < NB; b++) std::memcpy(y + (size_t)b * O + o0, acc[b], sizeof(float) * ow);
    }
}

template <typename WT, bool PACKED>
void gemm(const WT* W, const float* x, float* y, int B, int I, int O) {
    int b = 0;
    for (; b + 4 <= B; b += 4) gemm_rows<WT, 4, PACKED>(W, x + (size_t)b * I, y + (size_t)b * O, I, O);
    switch (B - b) {
        case 3: gemm_rows<WT, 3, PACKED>(W, x + (size_t)b * I, y + (size_t)b * O, I, O); break;
        case 2: gemm_rows<WT, 2, PACKED>(W, x + (size_t)b * I, y + (size_t)b * O, I, O); break;
        case 1: gemm_rows<WT, 1, PACKED>(W, x + (size_t)b * I, y + (size_t)b * O, I, O); break;
        default: break;
    }
}

void linear_io(const void* W, bool bf16, const float* x, float* y, int B, int I, int O) {
    if (bf16) gemm<uint16_t, true>((const uint16_t*)W, x, y, B, I, O);
    else gemm<float, true>((const float*)W, x, y, B, I, O);
}

// y[b, o] = sum_i x[b, i] W[i, o]   (LoRA layout W [I, O], used as x @ W)
void matmul_io(const float* x, const float* W, float* y, int B, int I, int O) {
    gemm<float, false>(W, x, y, B, I, O);
}

// Elementwise parts of the time mix, one batch row each, written with
// restrict row pointers so the compiler vectorises them.
void lerp6(const float* __restrict xa, float* __restrict prev, const float* const* P, float* __restrict xr,
           float* __restrict xw, float* __restrict xk, float* __restrict xv, float* __restrict xaa,
           float* __restrict xg, int C) {
    const float *__restrict mr = P[X_R], *__restrict mw = P[X_W], *__restrict mk = P[X_K],
                *__restrict mv = P[X_V], *__restrict ma = P[X_A], *__restrict mg = P[X_G];
#pragma omp simd
    for (int c = 0; c < C; c++) {
        const float xc = xa[c], d = prev[c] - xc;
        xr[c] = xc + d * mr[c]; xw[c] = xc + d * mw[c]; xk[c] = xc + d * mk[c];
        xv[c] = xc + d * mv[c]; xaa[c] = xc + d * ma[c]; xg[c] = xc + d * mg[c];
        prev[c] = xc;  // token shift: this token's input is the next one's "previous"
    }
}

void value_residual(float* __restrict v, const float* __restrict vfirst, const float* __restrict lora,
                    const float* __restrict v0, int C) {
#pragma omp simd
    for (int c = 0; c < C; c++) v[c] += (vfirst[c] - v[c]) * sigmoidf(v0[c] + lora[c]);
}

// a = sigmoid(a0 + lora_a); w = exp(-e^-0.5 sigmoid(w0 + lora_w)), in (0.545, 1); kk = k * k_k
void rates(float* __restrict a, float* __restrict z, float* __restrict kk, const float* __restrict k,
           const float* const* P, int C) {
    const float *__restrict a0 = P[A0], *__restrict w0 = P[W0], *__restrict k_k = P[K_K];
#pragma omp simd
    for (int c = 0; c < C; c++) {
        a[c] = sigmoidf(a0[c] + a[c]);
        z[c] = vexp(-DECAY_SCALE * sigmoidf(w0[c] + z[c]));
        kk[c] = k[c] * k_k[c];
    }
}

// Sum of 16 partial sums as a tree: independent adds, where an OpenMP simd
// reduction of a row here became 16 dependent scalar adds per row.
inline float sum16(float* acc) {
    for (int w = 8; w; w >>= 1)
        for (int t = 0; t < w; t++) acc[t] += acc[t + w];
    return acc[0];
}

// One row i of the WKV state: Si <- Si diag(w) + (Si . -kk) (kk * a) + v_i k,
// returns Si . r (the row's output before the GroupNorm).
inline float wkv_row(float* __restrict Si, const float* __restrict kk, const float* __restrict w,
                     const float* __restrict bb, const float* __restrict k, const float* __restrict r,
                     float vi, int N) {
    float acc[16] = {};
    int j = 0;
    for (; j + 16 <= N; j += 16)
#pragma omp simd
        for (int t = 0; t < 16; t++) acc[t] += Si[j + t] * kk[j + t];
    float sa = -sum16(acc);
    for (; j < N; j++) sa -= Si[j] * kk[j];
    float acc2[16] = {};
    j = 0;
    for (; j + 16 <= N; j += 16)
#pragma omp simd
        for (int t = 0; t < 16; t++) {
            const float s = Si[j + t] * w[j + t] + sa * bb[j + t] + vi * k[j + t];
            Si[j + t] = s;
            acc2[t] += s * r[j + t];
        }
    float yi = sum16(acc2);
    for (; j < N; j++) {
        const float s = Si[j] * w[j] + sa * bb[j] + vi * k[j];
        Si[j] = s;
        yi += s * r[j];
    }
    return yi;
}

// A whole head: rows i = 0..N-1, y[i] = wkv_row(i).
inline void wkv_head_generic(float* S, const float* kk, const float* w, const float* bb, const float* k,
                             const float* r, const float* v, float* y, int N) {
    for (int i = 0; i < N; i++) y[i] = wkv_row(S + (size_t)i * N, kk, w, bb, k, r, v[i], N);
}

#if defined(__AVX512F__)
inline float _mm256_reduce_add_ps_(__m256 x) {
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

// The same with the head's five key-side vectors held in registers and one
// 512-bit horizontal sum per dot product. The generic row spends most of its
// time in the two 16-lane tree sums (scalar adds through memory), which at
// batch 4 made the WKV a quarter of the step.
template <int NV>  // N = 16 * NV
inline void wkv_head_avx512(float* S, const float* kk, const float* w, const float* bb, const float* k,
                            const float* r, const float* v, float* y) {
    // y_i = S'_i . r with S'_i = S_i * w + sa_i bb + v_i k, so
    // y_i = S_i . (w * r) + sa_i (bb . r) + v_i (k . r): both dot products of
    // a row then read the old state, are independent, and share one
    // horizontal sum; the update itself is pure elementwise.
    __m512 KK[NV], W[NV], BB[NV], K[NV], WR[NV];
    __m512 bbr = _mm512_setzero_ps(), kr = _mm512_setzero_ps();
    for (int u = 0; u < NV; u++) {
        const __m512 ru = _mm512_loadu_ps(r + 16 * u);
        KK[u] = _mm512_loadu_ps(kk + 16 * u);
        W[u] = _mm512_loadu_ps(w + 16 * u);
        BB[u] = _mm512_loadu_ps(bb + 16 * u);
        K[u] = _mm512_loadu_ps(k + 16 * u);
        WR[u] = _mm512_mul_ps(W[u], ru);
        bbr = _mm512_fmadd_ps(BB[u], ru, bbr);
        kr = _mm512_fmadd_ps(K[u], ru, kr);
    }
    const float c_bb = _mm512_reduce_add_ps(bbr), c_k = _mm512_reduce_add_ps(kr);
    for (int i = 0; i < 16 * NV; i++) {
        float* Si = S + (size_t)i * 16 * NV;
        __m512 row[NV];
        __m512 acc_a = _mm512_setzero_ps(), acc_r = _mm512_setzero_ps();
        for (int u = 0; u < NV; u++) {
            row[u] = _mm512_loadu_ps(Si + 16 * u);
            acc_a = _mm512_fmadd_ps(row[u], KK[u], acc_a);
            acc_r = _mm512_fmadd_ps(row[u], WR[u], acc_r);
        }
        // One tree for both sums: fold the 256-bit halves of acc_a and
        // acc_r into one register, then reduce each half.
        const __m512 both = _mm512_add_ps(_mm512_shuffle_f32x4(acc_a, acc_r, 0x44),
                                          _mm512_shuffle_f32x4(acc_a, acc_r, 0xEE));
        const float sa_f = -_mm256_reduce_add_ps_(_mm512_castps512_ps256(both));
        const float yr = _mm256_reduce_add_ps_(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(both), 1)));
        const __m512 sa = _mm512_set1_ps(sa_f);
        const __m512 vi = _mm512_set1_ps(v[i]);
        for (int u = 0; u < NV; u++)
            _mm512_storeu_ps(Si + 16 * u,
                             _mm512_fmadd_ps(vi, K[u], _mm512_fmadd_ps(sa, BB[u], _mm512_mul_ps(row[u], W[u]))));
        y[i] = yr + sa_f * c_bb + v[i] * c_k;
    }
}
#endif

inline void wkv_head(float* S, const float* kk, const float* w, const float* bb, const float* k, const float* r,
                     const float* v, float* y, int N) {
#if defined(__AVX512F__)
    switch (N) {
        case 32: return wkv_head_avx512<2>(S, kk, w, bb, k, r, v, y);
        case 64: return wkv_head_avx512<4>(S, kk, w, bb, k, r, v, y);
        case 128: return wkv_head_avx512<8>(S, kk, w, bb, k, r, v, y);
        default: break;
    }
#endif
    wkv_head_generic(S, kk, w, bb, k, r, v, y, N);
}

}  // namespace

extern "C" {

// dims: C, H, N, F, V, n_layer, Dw, Da, Dv, Dg, big_bf16. With big_bf16 = 1
// the receptance/key/value/output, channel-mix and head matrices are bf16.
// weights: n_layer * N_SLOTS layer pointers, then N_GSLOTS global ones.
// State (updated in place): att_x, ffn_x [L, B, C]; wkv [L, B, H, N, N].
// Returns 0, or -1 for a token out of range, -2 for out of memory.
int rwkv7_step(const float* const* weights, const int64_t* dims, int B, const int64_t* tokens,
               float* att_x, float* wkv, float* ffn_x, float* logits) {
    const int C = (int)dims[0], H = (int)dims[1], N = (int)dims[2], F = (int)dims[3], V = (int)dims[4];
    const int L = (int)dims[5], Dw = (int)dims[6], Da = (int)dims[7], Dv = (int)dims[8], Dg = (int)dims[9];
    const bool bf = dims[10] != 0;
    const float* const* G = weights + (size_t)L * N_SLOTS;
    for (int b = 0; b < B; b++)
        if (tokens[b] < 0 || tokens[b] >= V) return -1;

    const int D = Dw > Da ? Dw : Da;
    const int Dmax = (D > Dv ? D : Dv) > Dg ? (D > Dv ? D : Dv) : Dg;
    const size_t BC = (size_t)B * C;
    // x, xa, six mixed inputs, r, k, v, vfirst, a, g, z, kk, y, tmp + lora + ffn hidden
    float* buf = (float*)std::malloc(sizeof(float) * (BC * 19 + (size_t)B * Dmax + (size_t)B * F));
    if (!buf) return -2;
    float *x = buf, *xa = x + BC, *xr = xa + BC, *xw = xr + BC, *xk = xw + BC, *xv = xk + BC, *xaa = xv + BC,
          *xg = xaa + BC, *r = xg + BC, *k = r + BC, *v = k + BC, *vfirst = v + BC, *a = vfirst + BC, *g = a + BC,
          *z = g + BC, *kk = z + BC, *y = kk + BC, *tmp = y + BC, *xx = tmp + BC, *lo = xx + BC, *hid = lo + (size_t)B * Dmax;

    for (int b = 0; b < B; b++)
        layer_norm(G[EMB] + (size_t)tokens[b] * C, G[LN0_W], G[LN0_B], x + (size_t)b * C, C, LN_EPS);

    for (int l = 0; l < L; l++) {
        // A local copy of the layer's pointer table: the compiler can then
        // treat P[...] as loop invariant and vectorise the elementwise loops.
        const float* P[N_SLOTS];
        std::memcpy(P, weights + (size_t)l * N_SLOTS, sizeof P);
        float* ax = att_x + (size_t)l * BC;
        float* fx = ffn_x + (size_t)l * BC;
        float* S_l = wkv + (size_t)l * B * H * N * N;

        // ---- time mix: token shift + six lerps
        for (int b = 0; b < B; b++) {
            float* xab = xa + (size_t)b * C;
            layer_norm(x + (size_t)b * C, P[LN1_W], P[LN1_B], xab, C, LN_EPS);
            const size_t o = (size_t)b * C;
            lerp6(xab, ax + o, P, xr + o, xw + o, xk + o, xv + o, xaa + o, xg + o, C);
        }
        linear_io(P[ATT_R], bf, xr, r, B, C, C);
        linear_io(P[ATT_K], bf, xk, k, B, C, C);
        linear_io(P[ATT_V], bf, xv, v, B, C, C);
        // decay LoRA: z = w0 + tanh(xw @ w1) @ w2
        matmul_io(xw, P[W1], lo, B, C, Dw);
#pragma omp simd
        for (size_t i = 0; i < (size_t)B * Dw; i++) lo[i] = vtanh(lo[i]);
        matmul_io(lo, P[W2], z, B, Dw, C);
        // in-context rate: a = sigmoid(a0 + (xa @ a1) @ a2)
        matmul_io(xaa, P[A1], lo, B, C, Da);
        matmul_io(lo, P[A2], a, B, Da, C);
        // gate: g = sigmoid(xg @ g1) @ g2
        matmul_io(xg, P[G1], lo, B, C, Dg);
#pragma omp simd
        for (size_t i = 0; i < (size_t)B * Dg; i++) lo[i] = sigmoidf(lo[i]);
        matmul_io(lo, P[G2], g, B, Dg, C);
        if (l == 0) {
            std::memcpy(vfirst, v, sizeof(float) * BC);
        } else {  // value residual towards layer 0
            matmul_io(xv, P[V1], lo, B, C, Dv);
            matmul_io(lo, P[V2], tmp, B, Dv, C);
            for (int b = 0; b < B; b++) {
                const size_t o = (size_t)b * C;
                value_residual(v + o, vfirst + o, tmp + o, P[V0], C);
            }
        }
        for (int b = 0; b < B; b++) {
            const size_t o = (size_t)b * C;
            rates(a + o, z + o, kk + o, k + o, P, C);
        }
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++) {
                float* kkh = kk + (size_t)b * C + (size_t)h * N;
                float ss = 0.f;
#pragma omp simd reduction(+ : ss)
                for (int j = 0; j < N; j++) ss += kkh[j] * kkh[j];
                const float inv = 1.0f / std::fmax(std::sqrt(ss), NORM_EPS);
                for (int j = 0; j < N; j++) kkh[j] *= inv;
            }
        for (int b = 0; b < B; b++) {
            float* __restrict kb = k + (size_t)b * C;
            const float *__restrict ab = a + (size_t)b * C, *__restrict ka = P[K_A];
#pragma omp simd
            for (int c = 0; c < C; c++) kb[c] *= 1.0f + (ab[c] - 1.0f) * ka[c];
        }

        // ---- WKV: S = S diag(w) + (S a) b^T + v k^T, y = S r, with a = -kk, b = kk*a
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++) {
                const size_t o = (size_t)b * C + (size_t)h * N;
                const float *rh = r + o, *wh = z + o, *kh = k + o, *vh = v + o, *kkh = kk + o, *ah = a + o;
                float bb[256];  // N <= 256 (checked in Python)
                for (int j = 0; j < N; j++) bb[j] = kkh[j] * ah[j];
                float* S = S_l + ((size_t)b * H + h) * N * N;
                wkv_head(S, kkh, wh, bb, kh, rh, vh, y + o, N);
                // per-head GroupNorm, then the r.k bonus and the gate
                float mean = 0.f, var = 0.f;
#pragma omp simd reduction(+ : mean)
                for (int i = 0; i < N; i++) mean += y[o + i];
                mean /= N;
#pragma omp simd reduction(+ : var)
                for (int i = 0; i < N; i++) { const float d = y[o + i] - mean; var += d * d; }
                var /= N;
                const float rs = 1.0f / std::sqrt(var + GN_EPS);
                float rk = 0.f;
                const float* __restrict rkw = P[R_K] + h * N;
#pragma omp simd reduction(+ : rk)
                for (int j = 0; j < N; j++) rk += rh[j] * kh[j] * rkw[j];
                for (int i = 0; i < N; i++) {
                    const int c = h * N + i;
                    const float yn = (y[o + i] - mean) * rs * P[LNX_W][c] + P[LNX_B][c];
                    y[o + i] = (yn + rk * vh[i]) * g[o + i];
                }
            }
        linear_io(P[ATT_O], bf, y, tmp, B, C, C);
        for (size_t i = 0; i < BC; i++) x[i] += tmp[i];

        // ---- channel mix
        for (int b = 0; b < B; b++) {
            float* xfb = xa + (size_t)b * C;  // reuse xa as ln2 output
            layer_norm(x + (size_t)b * C, P[LN2_W], P[LN2_B], xfb, C, LN_EPS);
            float* fxb = fx + (size_t)b * C;
            for (int c = 0; c < C; c++) {
                xx[(size_t)b * C + c] = xfb[c] + (fxb[c] - xfb[c]) * P[FFN_XK][c];
                fxb[c] = xfb[c];
            }
        }
        linear_io(P[FFN_K], bf, xx, hid, B, C, F);
        for (size_t i = 0; i < (size_t)B * F; i++) { const float h = hid[i] > 0.f ? hid[i] : 0.f; hid[i] = h * h; }
        linear_io(P[FFN_V], bf, hid, tmp, B, F, C);
        for (size_t i = 0; i < BC; i++) x[i] += tmp[i];
    }

    for (int b = 0; b < B; b++)
        layer_norm(x + (size_t)b * C, G[LNOUT_W], G[LNOUT_B], xa + (size_t)b * C, C, LN_EPS);
    linear_io(G[HEAD], bf, xa, logits, B, C, V);
    std::free(buf);
    return 0;
}

}  // extern "C"
