// Python binding of the WKV-7 CUDA kernels (wkv7.cu). Checks live here, at
// the kernel boundary: device, contiguity, dtypes and shapes.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_bf16.h>
#include <torch/extension.h>

template <typename T, int N>
void wkv7_forward_launch(int, int, int, int, const void*, const float*, const void*, const void*, const void*,
                         const void*, const float*, void*, float*, float*, cudaStream_t);
template <typename T, int N>
void wkv7_backward_launch(int, int, int, int, const void*, const float*, const void*, const void*, const void*,
                          const void*, const void*, const float*, const float*, float*, float*, float*, float*,
                          float*, float*, float*, float*, float*, cudaStream_t);

namespace {

void check_inputs(const std::vector<torch::Tensor>& xs, const torch::Tensor& log_w, const torch::Tensor& s0) {
    const auto& r = xs[0];
    TORCH_CHECK(r.is_cuda() && r.dim() == 4, "wkv7: r must be a CUDA tensor [B, T, H, N]");
    TORCH_CHECK(r.scalar_type() == torch::kFloat32 || r.scalar_type() == torch::kBFloat16, "wkv7: fp32 or bf16 inputs");
    for (const auto& x : xs) {
        TORCH_CHECK(x.is_contiguous() && x.sizes() == r.sizes() && x.scalar_type() == r.scalar_type() &&
                        x.device() == r.device(),
                    "wkv7: r, k, v, a, b (, dy) must be contiguous with one shape, dtype and device");
    }
    TORCH_CHECK(log_w.is_contiguous() && log_w.sizes() == r.sizes() && log_w.scalar_type() == torch::kFloat32,
                "wkv7: log_w must be contiguous fp32 [B, T, H, N]");
    const int64_t B = r.size(0), H = r.size(2), N = r.size(3);
    TORCH_CHECK(s0.is_contiguous() && s0.scalar_type() == torch::kFloat32 &&
                    s0.sizes() == torch::IntArrayRef({B, H, N, N}),
                "wkv7: state must be contiguous fp32 [B, H, N, N]");
    TORCH_CHECK(N == 64 || N == 32, "wkv7: head size must be 32 or 64");
}

template <int N>
void fwd_n(bool bf, int B, int T, int H, int CH, torch::Tensor r, torch::Tensor log_w, torch::Tensor k,
           torch::Tensor v, torch::Tensor a, torch::Tensor b, torch::Tensor s0, torch::Tensor y, torch::Tensor s_out,
           torch::Tensor ckpt, cudaStream_t st) {
    auto f = bf ? &wkv7_forward_launch<__nv_bfloat16, N> : &wkv7_forward_launch<float, N>;
    f(B, T, H, CH, r.data_ptr(), log_w.data_ptr<float>(), k.data_ptr(), v.data_ptr(), a.data_ptr(), b.data_ptr(),
      s0.data_ptr<float>(), y.data_ptr(), s_out.data_ptr<float>(), ckpt.data_ptr<float>(), st);
}

}  // namespace

// Returns (y, s_out, ckpt).
std::vector<torch::Tensor> forward(torch::Tensor r, torch::Tensor log_w, torch::Tensor k, torch::Tensor v,
                                   torch::Tensor a, torch::Tensor b, torch::Tensor s0, int64_t chunk) {
    check_inputs({r, k, v, a, b}, log_w, s0);
    const c10::cuda::CUDAGuard guard(r.device());
    const int B = r.size(0), T = r.size(1), H = r.size(2), N = r.size(3), CH = (int)chunk;
    TORCH_CHECK(CH > 0, "wkv7: chunk must be positive");
    const int NC = (T + CH - 1) / CH;
    auto f32 = r.options().dtype(torch::kFloat32);
    auto y = torch::empty_like(r);
    auto s_out = torch::empty({B, H, N, N}, f32);
    auto ckpt = torch::empty({B, H, std::max(NC, 1), N, N}, f32);
    if (T == 0) return {y, s0.clone(), ckpt};
    const bool bf = r.scalar_type() == torch::kBFloat16;
    auto st = c10::cuda::getCurrentCUDAStream();
    if (N == 64) fwd_n<64>(bf, B, T, H, CH, r, log_w, k, v, a, b, s0, y, s_out, ckpt, st);
    else fwd_n<32>(bf, B, T, H, CH, r, log_w, k, v, a, b, s0, y, s_out, ckpt, st);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return {y, s_out, ckpt};
}

// Returns fp32 (dr, dlog_w, dk, dv, da, db, ds0).
std::vector<torch::Tensor> backward(torch::Tensor r, torch::Tensor log_w, torch::Tensor k, torch::Tensor v,
                                    torch::Tensor a, torch::Tensor b, torch::Tensor dy, torch::Tensor ds_out,
                                    torch::Tensor ckpt, int64_t chunk) {
    check_inputs({r, k, v, a, b, dy}, log_w, ds_out);
    const c10::cuda::CUDAGuard guard(r.device());
    const int B = r.size(0), T = r.size(1), H = r.size(2), N = r.size(3), CH = (int)chunk;
    TORCH_CHECK(ckpt.is_contiguous() && ckpt.size(2) == std::max((T + CH - 1) / CH, 1), "wkv7: bad checkpoints");
    auto f32 = r.options().dtype(torch::kFloat32);
    auto dr = torch::empty(r.sizes(), f32), dlw = torch::empty(r.sizes(), f32), dk = torch::empty(r.sizes(), f32);
    auto dv = torch::empty(r.sizes(), f32), da = torch::empty(r.sizes(), f32), db = torch::empty(r.sizes(), f32);
    auto ds0 = torch::empty({B, H, N, N}, f32);
    if (T == 0) return {dr, dlw, dk, dv, da, db, ds_out.clone()};
    auto scratch = torch::empty({B * H, CH + 1, N, N}, f32);
    auto sa_buf = torch::empty({B * H, CH, N}, f32);
    const bool bf = r.scalar_type() == torch::kBFloat16;
    auto st = c10::cuda::getCurrentCUDAStream();
#define WKV7_BWD(NN)                                                                                             \
    (bf ? &wkv7_backward_launch<__nv_bfloat16, NN> : &wkv7_backward_launch<float, NN>)(                          \
        B, T, H, CH, r.data_ptr(), log_w.data_ptr<float>(), k.data_ptr(), v.data_ptr(), a.data_ptr(), b.data_ptr(), \
        dy.data_ptr(), ds_out.data_ptr<float>(), ckpt.data_ptr<float>(), scratch.data_ptr<float>(),               \
        sa_buf.data_ptr<float>(), dr.data_ptr<float>(), dlw.data_ptr<float>(), dk.data_ptr<float>(),              \
        dv.data_ptr<float>(), da.data_ptr<float>(), db.data_ptr<float>(), ds0.data_ptr<float>(), st)
    if (N == 64) WKV7_BWD(64);
    else WKV7_BWD(32);
#undef WKV7_BWD
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return {dr, dlw, dk, dv, da, db, ds0};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.def("forward", &forward, "WKV-7 forward (y, state_out, checkpoints)");
    m.def("backward", &backward, "WKV-7 backward");
}
