/*
 * Attention forward on Hopper (compute capability 9.0): bf16, hd 128, with attention_fwd.cu's
 * semantics, key-block walk and online softmax, and both products on wgmma (wgmma.cuh).
 *
 *  - A CTA of two warpgroups owns 128 query rows of one head: 64 per warpgroup, 16 per warp.
 *  - S = Q K^T: Q and K in 128-byte-swizzled K-major tiles, 8 wgmma m64n64k16 per key block of 64.
 *  - O += P V: P (bf16) from the S accumulators in registers, V an MN-major swizzled tile, 4 wgmma
 *    m64n128k16 per block.
 *  - Q is loaded once, K and V double-buffered with cp.async; fence.proxy.async hands the tiles to wgmma.
 *  - Two CTAs per SM (128 registers, 48 bytes of spills). H200, 2026-11-29 (bench/attention.ts, L 4096,
 *    causal): 0.361 ms against 0.459 for AttnFwdMma; one CTA per SM 0.457; wgmma for S alone with
 *    AttnFwdMma's 32 rows a warp 0.506 (260 bytes of spills).
 *
 * CMakeLists.txt also builds this file as sm_90a machine code. The kernel has a body only there, and
 * LaunchFwdHopper launches it only on a 9.0 device, where the driver loads that code (a wrong load
 * traps rather than computing garbage).
 */
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <climits>
#include <cmath>

#include "attention.h"
#include "attention_common.cuh"
#include "attention_fwd.cuh"
#include "cuda_context.h"
#include "wgmma.cuh"

namespace aerie {
namespace attn {
namespace {

constexpr int kWgBM = 128, kWgBN = 64, kWgThreads = 256;

template <int D>
constexpr int WgSmemBytes() { return 1024 + (kWgBM + 4 * kWgBN) * D * 2 + kWgBM * 4; }  // Q, 2 x K, 2 x V; row_lo

template <int D>
__global__ void __launch_bounds__(kWgThreads, 2) AttnFwdWg(FwdParams p) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  constexpr int BM = kWgBM, BN = kWgBN, NT_S = BN / 8, NT_O = D / 8, CH = D / 8;
  constexpr uint32_t kTileK = BN * D * 2;  // bytes of one K or V buffer
  extern __shared__ __align__(128) unsigned char smem_raw[];
  // The tiles start at the first 1024-byte boundary: wgmma applies the swizzle to absolute addresses.
  unsigned char* smem = smem_raw + ((1024 - (SmemAddr(smem_raw) & 1023)) & 1023);
  unsigned char* Qs = smem;                      // (BM, D) swizzled
  unsigned char* Ks = Qs + BM * D * 2;           // 2 x (BN, D) swizzled
  unsigned char* Vs = Ks + 2 * kTileK;           // 2 x (BN, D) swizzled
  int* row_lo = reinterpret_cast<int*>(Vs + 2 * kTileK);  // (BM)

  const __nv_bfloat16* q = static_cast<const __nv_bfloat16*>(p.q);
  const __nv_bfloat16* k = static_cast<const __nv_bfloat16*>(p.k);
  const __nv_bfloat16* v = static_cast<const __nv_bfloat16*>(p.v);
  const int T = p.tokens, h = blockIdx.x, g = h / p.group;
  const int m0 = (gridDim.y - 1 - blockIdx.y) * BM;  // heaviest (last) query blocks first
  const int rows = min(BM, T - m0);
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, grp = lane >> 2, tig = lane & 3;
  const int wg = warp >> 2, wq = warp & 3;  // warpgroup (64 rows), warp within it (16 rows)
  const float sl2 = p.scale * kLog2e;

  for (int x = tid; x < BM * CH; x += kWgThreads) {
    const int r = x / CH, c = (x % CH) * 8;
    const bool ok = r < rows;
    CpAsync16(Qs + SwizzledOffset(r, x % CH, BM), q + ((size_t)(ok ? m0 + r : 0) * p.num_heads + h) * D + c, ok);
  }
  for (int r = tid; r < BM; r += kWgThreads)
    row_lo[r] = r < rows ? (int)AttentionKeyLo(p.cu_seqlens, p.batch, T, p.mask, p.window, m0 + r) : INT_MAX;
  __syncthreads();

  const int lo_max = row_lo[rows - 1];
  const KeyBlockWalk<BN> walk(m0, rows, row_lo[0], p.steps, T);
  const int nblk = walk.count;
  auto load_kv = [&](int it, int buf) {
    const int j0 = walk.Start(it);
    for (int x = tid; x < BN * CH; x += kWgThreads) {
      const int r = x / CH, c = (x % CH) * 8, j = j0 + r;
      const bool ok = j >= 0 && j < p.keys;
      const size_t off = ((size_t)(ok ? j : 0) * p.num_kv_heads + g) * D + c;
      const uint32_t at = buf * kTileK + SwizzledOffset(r, x % CH, BN);
      CpAsync16(Ks + at, k + off, ok);
      CpAsync16(Vs + at, v + off, ok);
    }
  };
  load_kv(0, 0);
  CpAsyncCommit();

  // This thread's 2 rows: local row wg*64 + wq*16 + hh*8 + grp (hh 0: c0,c1; hh 1: c2,c3).
  auto local_row = [&](int hh) { return wg * 64 + wq * 16 + hh * 8 + grp; };
  const int my_lo[2] = {row_lo[local_row(0)], row_lo[local_row(1)]};

  float o_acc[NT_O][4];
#pragma unroll
  for (int nt = 0; nt < NT_O; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) o_acc[nt][e] = 0.f;
  float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.f, 0.f};

  for (int it = 0; it < nblk; ++it) {
    CpAsyncWaitAll();
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");  // cp.async writes -> wgmma reads
    __syncthreads();
    if (it + 1 < nblk) load_kv(it + 1, (it + 1) & 1);
    CpAsyncCommit();
    const uint32_t qsw = SmemAddr(Qs) + wg * 64 * 128;  // this warpgroup's 64 rows of each panel
    const uint32_t ksw = SmemAddr(Ks) + (it & 1) * kTileK, vsw = SmemAddr(Vs) + (it & 1) * kTileK;
    const int j0 = walk.Start(it);

    float s[NT_S][4];
#pragma unroll
    for (int nt = 0; nt < NT_S; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) s[nt][e] = 0.f;
    {
      const uint64_t qd = SwizzledDesc(qsw), kd = SwizzledDesc(ksw);
      PinRegs(s);
      WgmmaFence();
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk)
        Wgmma64x64(s, qd + (((kk >> 2) * BM * 128 + (kk & 3) * 32) >> 4), kd + (((kk >> 2) * BN * 128 + (kk & 3) * 32) >> 4), kk > 0);
      WgmmaCommit();
      WgmmaWaitAll();
      PinRegs(s);
    }

    const bool diag_block = it >= walk.diagonal;
    const int ttt_base = walk.StepBase(it);
    const bool full = !diag_block && j0 >= lo_max && j0 + BN - 1 <= m0;
#pragma unroll
    for (int nt = 0; nt < NT_S; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int hh = e >> 1;
        float x = s[nt][e] * sl2;
        if (!full) {
          const int i = m0 + local_row(hh);
          const int j = j0 + nt * 8 + 2 * tig + (e & 1);
          const bool vis = diag_block ? (j - ttt_base == i && i < T) : (j >= my_lo[hh] && j <= i);
          if (!vis) x = -INFINITY;
        }
        s[nt][e] = x;
      }

#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      float mx = -INFINITY;
#pragma unroll
      for (int nt = 0; nt < NT_S; ++nt) mx = fmaxf(mx, fmaxf(s[nt][2 * hh], s[nt][2 * hh + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_new = fmaxf(m_run[hh], mx);
      const float m_use = m_new == -INFINITY ? 0.f : m_new;
      const float alpha = FastExp2(m_run[hh] - m_use);
      m_run[hh] = m_new;
      float sum = 0.f;
#pragma unroll
      for (int nt = 0; nt < NT_S; ++nt) {
        const float p0 = FastExp2(s[nt][2 * hh] - m_use), p1 = FastExp2(s[nt][2 * hh + 1] - m_use);
        s[nt][2 * hh] = p0;
        s[nt][2 * hh + 1] = p1;
        sum += p0 + p1;
      }
      l_run[hh] = l_run[hh] * alpha + sum;
#pragma unroll
      for (int nt = 0; nt < NT_O; ++nt) {
        o_acc[nt][2 * hh] *= alpha;
        o_acc[nt][2 * hh + 1] *= alpha;
      }
    }

    uint32_t pa[BN / 16][4];
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) AccToA(pa[kk], s, kk);
    {
      const uint64_t vd = SwizzledDescMN(vsw, BN * 128);
      PinRegs(o_acc);
      PinRegs(pa);
      WgmmaFence();
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) Wgmma64x128RS(o_acc, pa[kk], vd + ((kk * 16 * 128) >> 4));
      WgmmaCommit();
      WgmmaWaitAll();
      PinRegs(o_acc);
    }
  }

  __nv_bfloat16* o = static_cast<__nv_bfloat16*>(p.o);
#pragma unroll
  for (int hh = 0; hh < 2; ++hh) {
    float l = l_run[hh];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    const int i = m0 + local_row(hh);
    if (i >= T) continue;
    const float inv = l > 0.f ? 1.f / l : 0.f;
    uint32_t* orow = reinterpret_cast<uint32_t*>(o + ((size_t)i * p.num_heads + h) * D);
#pragma unroll
    for (int nt = 0; nt < NT_O; ++nt) orow[nt * 4 + tig] = PackBf16(o_acc[nt][2 * hh] * inv, o_acc[nt][2 * hh + 1] * inv);
    if (tig == 0) p.lse[(size_t)h * T + i] = l > 0.f ? (m_run[hh] + log2f(l)) * kLn2 : -INFINITY;
  }
#else
  __trap();  // LaunchFwdHopper runs it only where the sm_90a code above is loaded
#endif
}

}  // namespace

bool LaunchFwdHopper(const FwdParams& p, cudaStream_t stream) {
  static int capability[64] = {};    // per device: 10 * major + minor, 0 until queried
  static bool configured[64] = {};   // per device: the > 48 KiB dynamic shared memory opt-in
  int device = 0;
  CheckCuda(cudaGetDevice(&device), "attentionForward");
  if (p.head_dim != 128 || device >= 64) return false;
  if (capability[device] == 0) {
    int major = 0, minor = 0;
    CheckCuda(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device), "attentionForward");
    CheckCuda(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device), "attentionForward");
    capability[device] = 10 * major + minor;
  }
  if (capability[device] != 90) return false;
  if (!configured[device]) {
    CheckCuda(cudaFuncSetAttribute(AttnFwdWg<128>, cudaFuncAttributeMaxDynamicSharedMemorySize, WgSmemBytes<128>()), "attentionForward");
    configured[device] = true;
  }
  dim3 grid(p.num_heads, (p.tokens + kWgBM - 1) / kWgBM);
  AttnFwdWg<128><<<grid, kWgThreads, WgSmemBytes<128>(), stream>>>(p);
  return true;
}

}  // namespace attn
}  // namespace aerie
