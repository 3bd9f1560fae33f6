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
// exactly the PyTorch parameters' (nn.Linear weight = [out, in] row-major,
// LoRA matrices = [in, out]); the Python side passes data pointers, no copies.
// model/rwkv7.py's pure-PyTorch step is the reference it is tested against.

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

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

inline float sigmoidf(float x) { return 1.0f / (1.0f + std::exp(-x)); }

void layer_norm(const float* x, const float* w, const float* b, float* y, int n, float eps) {
    float mean = 0.f;
    for (int i = 0; i < n; i++) mean += x[i];
    mean /= n;
    float var = 0.f;
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

// y[b, o] = sum_i W[o, i] x[b, i]   (nn.Linear layout W [O, I])
template <typename WT>
void linear_oi_t(const WT* __restrict W, const float* __restrict x, float* __restrict y, int B, int I, int O) {
    int b = 0;
    for (; b + 4 <= B; b += 4) {  // 4 rows share each weight row: 4x less traffic
        const float *x0 = x + (size_t)b * I, *x1 = x0 + I, *x2 = x1 + I, *x3 = x2 + I;
        for (int o = 0; o < O; o++) {
            const WT* w = W + (size_t)o * I;
            float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
            for (int i = 0; i < I; i++) {
                const float wi = ld(w, i);
                s0 += wi * x0[i]; s1 += wi * x1[i]; s2 += wi * x2[i]; s3 += wi * x3[i];
            }
            y[(size_t)b * O + o] = s0; y[(size_t)(b + 1) * O + o] = s1;
            y[(size_t)(b + 2) * O + o] = s2; y[(size_t)(b + 3) * O + o] = s3;
        }
    }
    for (; b < B; b++) {  // leftover rows: 4 output rows at a time for ILP
        const float* xb = x + (size_t)b * I;
        float* yb = y + (size_t)b * O;
        int o = 0;
        for (; o + 4 <= O; o += 4) {
            const WT *w0 = W + (size_t)o * I, *w1 = w0 + I, *w2 = w1 + I, *w3 = w2 + I;
            float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
            for (int i = 0; i < I; i++) {
                const float xi = xb[i];
                s0 += ld(w0, i) * xi; s1 += ld(w1, i) * xi; s2 += ld(w2, i) * xi; s3 += ld(w3, i) * xi;
            }
            yb[o] = s0; yb[o + 1] = s1; yb[o + 2] = s2; yb[o + 3] = s3;
        }
        for (; o < O; o++) {
            const WT* w = W + (size_t)o * I;
            float s = 0.f;
#pragma omp simd reduction(+ : s)
            for (int i = 0; i < I; i++) s += ld(w, i) * xb[i];
            yb[o] = s;
        }
    }
}

void linear_oi(const void* W, bool bf16, const float* x, float* y, int B, int I, int O) {
    if (bf16) linear_oi_t((const uint16_t*)W, x, y, B, I, O);
    else linear_oi_t((const float*)W, x, y, B, I, O);
}

// y[b, o] = sum_i x[b, i] W[i, o]   (LoRA layout W [I, O], used as x @ W)
void matmul_io(const float* __restrict x, const float* __restrict W, float* __restrict y, int B, int I, int O) {
    std::memset(y, 0, sizeof(float) * (size_t)B * O);
    for (int i = 0; i < I; i++) {
        const float* w = W + (size_t)i * O;
        for (int b = 0; b < B; b++) {
            const float xi = x[(size_t)b * I + i];
            float* yb = y + (size_t)b * O;
#pragma omp simd
            for (int o = 0; o < O; o++) yb[o] += xi * w[o];
        }
    }
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
        const float* const* P = weights + (size_t)l * N_SLOTS;
        float* ax = att_x + (size_t)l * BC;
        float* fx = ffn_x + (size_t)l * BC;
        float* S_l = wkv + (size_t)l * B * H * N * N;

        // ---- time mix: token shift + six lerps
        for (int b = 0; b < B; b++) {
            float* xab = xa + (size_t)b * C;
            layer_norm(x + (size_t)b * C, P[LN1_W], P[LN1_B], xab, C, LN_EPS);
            float* axb = ax + (size_t)b * C;
            for (int c = 0; c < C; c++) {
                const float d = axb[c] - xab[c], xc = xab[c];
                const size_t i = (size_t)b * C + c;
                xr[i] = xc + d * P[X_R][c]; xw[i] = xc + d * P[X_W][c]; xk[i] = xc + d * P[X_K][c];
                xv[i] = xc + d * P[X_V][c]; xaa[i] = xc + d * P[X_A][c]; xg[i] = xc + d * P[X_G][c];
                axb[c] = xc;
            }
        }
        linear_oi(P[ATT_R], bf, xr, r, B, C, C);
        linear_oi(P[ATT_K], bf, xk, k, B, C, C);
        linear_oi(P[ATT_V], bf, xv, v, B, C, C);
        // decay LoRA: z = w0 + tanh(xw @ w1) @ w2
        matmul_io(xw, P[W1], lo, B, C, Dw);
        for (size_t i = 0; i < (size_t)B * Dw; i++) lo[i] = std::tanh(lo[i]);
        matmul_io(lo, P[W2], z, B, Dw, C);
        // in-context rate: a = sigmoid(a0 + (xa @ a1) @ a2)
        matmul_io(xaa, P[A1], lo, B, C, Da);
        matmul_io(lo, P[A2], a, B, Da, C);
        // gate: g = sigmoid(xg @ g1) @ g2
        matmul_io(xg, P[G1], lo, B, C, Dg);
        for (size_t i = 0; i < (size_t)B * Dg; i++) lo[i] = sigmoidf(lo[i]);
        matmul_io(lo, P[G2], g, B, Dg, C);
        if (l == 0) {
            std::memcpy(vfirst, v, sizeof(float) * BC);
        } else {  // value residual towards layer 0
            matmul_io(xv, P[V1], lo, B, C, Dv);
            matmul_io(lo, P[V2], tmp, B, Dv, C);
            for (int b = 0; b < B; b++)
                for (int c = 0; c < C; c++) {
                    const size_t i = (size_t)b * C + c;
                    v[i] += (vfirst[i] - v[i]) * sigmoidf(P[V0][c] + tmp[i]);
                }
        }
        for (int b = 0; b < B; b++)
            for (int c = 0; c < C; c++) {
                const size_t i = (size_t)b * C + c;
                a[i] = sigmoidf(P[A0][c] + a[i]);
                z[i] = std::exp(-DECAY_SCALE * sigmoidf(P[W0][c] + z[i]));  // decay w in (0.545, 1)
                kk[i] = k[i] * P[K_K][c];
            }
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++) {
                float* kkh = kk + (size_t)b * C + (size_t)h * N;
                float ss = 0.f;
                for (int j = 0; j < N; j++) ss += kkh[j] * kkh[j];
                const float inv = 1.0f / std::fmax(std::sqrt(ss), NORM_EPS);
                for (int j = 0; j < N; j++) kkh[j] *= inv;
            }
        for (size_t i = 0; i < BC; i++) {
            const int c = (int)(i % C);
            k[i] = k[i] * (1.0f + (a[i] - 1.0f) * P[K_A][c]);
        }

        // ---- WKV: S = S diag(w) + (S a) b^T + v k^T, y = S r, with a = -kk, b = kk*a
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++) {
                const size_t o = (size_t)b * C + (size_t)h * N;
                const float *rh = r + o, *wh = z + o, *kh = k + o, *vh = v + o, *kkh = kk + o, *ah = a + o;
                float bb[256];  // N <= 256 (checked in Python)
                for (int j = 0; j < N; j++) bb[j] = kkh[j] * ah[j];
                float* S = S_l + ((size_t)b * H + h) * N * N;
                for (int i = 0; i < N; i++) {
                    float* Si = S + (size_t)i * N;
                    float sa = 0.f;
#pragma omp simd reduction(+ : sa)
                    for (int j = 0; j < N; j++) sa -= Si[j] * kkh[j];
                    const float vi = vh[i];
                    float yi = 0.f;
#pragma omp simd reduction(+ : yi)
                    for (int j = 0; j < N; j++) {
                        const float s = Si[j] * wh[j] + sa * bb[j] + vi * kh[j];
                        Si[j] = s;
                        yi += s * rh[j];
                    }
                    y[o + i] = yi;
                }
                // per-head GroupNorm, then the r.k bonus and the gate
                float mean = 0.f, var = 0.f;
                for (int i = 0; i < N; i++) mean += y[o + i];
                mean /= N;
                for (int i = 0; i < N; i++) { const float d = y[o + i] - mean; var += d * d; }
                var /= N;
                const float rs = 1.0f / std::sqrt(var + GN_EPS);
                float rk = 0.f;
                for (int j = 0; j < N; j++) rk += rh[j] * kh[j] * P[R_K][h * N + j];
                for (int i = 0; i < N; i++) {
                    const int c = h * N + i;
                    const float yn = (y[o + i] - mean) * rs * P[LNX_W][c] + P[LNX_B][c];
                    y[o + i] = (yn + rk * vh[i]) * g[o + i];
                }
            }
        linear_oi(P[ATT_O], bf, y, tmp, B, C, C);
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
        linear_oi(P[FFN_K], bf, xx, hid, B, C, F);
        for (size_t i = 0; i < (size_t)B * F; i++) { const float h = hid[i] > 0.f ? hid[i] : 0.f; hid[i] = h * h; }
        linear_oi(P[FFN_V], bf, hid, tmp, B, F, C);
        for (size_t i = 0; i < BC; i++) x[i] += tmp[i];
    }

    for (int b = 0; b < B; b++)
        layer_norm(x + (size_t)b * C, G[LNOUT_W], G[LNOUT_B], xa + (size_t)b * C, C, LN_EPS);
    linear_oi(G[HEAD], bf, xa, logits, B, C, V);
    std::free(buf);
    return 0;
}

}  // extern "C"
