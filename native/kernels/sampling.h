// Token selection from logits: greedy argmax, and sampling with per-request temperature, top-k,
// top-p and seeded generators, reproducible and identical on the CPU and CUDA.
//
// One row (request) of logits l[0, V):
//  1. Greedy when temperature T <= 0 (or NaN): the argmax of l, ties to the lowest index. NaN
//     logits rank below -inf. Otherwise s_i = l_i / T (fp32, correctly rounded).
//  2. The max s (lowest index on ties) gets unnormalised probability 1, every other token
//     e_i = exp(s_i - s_max) (sampling_math.h's exp, the same bits everywhere). If s_max is -inf
//     (nothing can be sampled) the argmax is returned.
//  3. Top-k (0 < k < V): keep the tokens whose s is at least the k-th largest s (ties at the
//     boundary are all kept, as Hugging Face's TopKLogitsWarper does).
//  4. Masses w_i = floor(e_i * 2^40) for kept tokens, 0 otherwise; W = sum w_i. Integer sums are
//     exact, so every later decision is the same whatever the summation order.
//  5. Top-p (p < 1), on the top-k-renormalised distribution as in Hugging Face's TopPLogitsWarper:
//     order kept tokens by s descending, then index ascending; keep the shortest prefix whose mass
//     reaches floor(p * W) (at least one token). Equivalently a token is kept iff the mass strictly
//     before it is below p * W.
//  6. W' = the mass of the survivors. Draw u = Random64(seed, step) (Philox-4x32-10; key = seed,
//     counter = (step, stream 0)), r = floor(u * W' / 2^64), and return the token at which the
//     index-order running sum of survivor masses first exceeds r.
// Probabilities of the same filtered distribution are w_i / W' (fp64 division, rounded to fp32);
// the filter writes s_i for survivors and -inf elsewhere, in place (greedy rows keep only the
// argmax's logit).
#pragma once
#include <cstdint>

#include "cuda_context.h"
#include "dtype.h"

namespace aerie {

// Per-row parameters, each an array of `rows` values on the logits' device.
struct SamplingParams {
  const float* temperature = nullptr;  // (rows,) <= 0: greedy
  const int32_t* top_k = nullptr;      // (rows,) <= 0 or >= vocab: off
  const float* top_p = nullptr;        // (rows,) >= 1 (or NaN): off; <= 0 keeps one token
  const uint64_t* seeds = nullptr;     // (rows,) generator key per request (sampling only)
  const int64_t* steps = nullptr;      // (rows,) draw counter per request (sampling only)
};

// out[r] = argmax of logits[r, :], ties to the lowest index, NaN below -inf.
void ArgmaxCpu(const void* logits,  // (rows, vocab)
               DType type, int64_t rows, int64_t vocab,
               int32_t* out);  // (rows,)
void ArgmaxCuda(const void* logits, DType type, int64_t rows, int64_t vocab, int32_t* out, cudaStream_t stream);

// out[r] = a token drawn from row r's filtered distribution (see above).
void SampleCpu(const void* logits,  // (rows, vocab)
               DType type, int64_t rows, int64_t vocab, const SamplingParams& params,
               int32_t* out);  // (rows,)
void SampleCuda(const void* logits, DType type, int64_t rows, int64_t vocab, const SamplingParams& params, int32_t* out,
                cudaStream_t stream);

// probs[r, i] = the probability that row r samples token i (seeds and steps unused).
void SamplingProbsCpu(const void* logits,  // (rows, vocab)
                      DType type, int64_t rows, int64_t vocab, const SamplingParams& params,
                      float* probs);  // (rows, vocab)
void SamplingProbsCuda(const void* logits, DType type, int64_t rows, int64_t vocab, const SamplingParams& params, float* probs,
                       cudaStream_t stream);

// In place: logits[r, i] = s_i for row r's survivors, -inf elsewhere (seeds and steps unused).
void SamplingFilterCpu(void* logits,  // (rows, vocab)
                       DType type, int64_t rows, int64_t vocab, const SamplingParams& params);
void SamplingFilterCuda(void* logits, DType type, int64_t rows, int64_t vocab, const SamplingParams& params, cudaStream_t stream);

// The vocabulary limit of the exact mass arithmetic (sums of 2^40-scaled masses must fit 64 bits).
constexpr int64_t kMaxSamplingVocab = int64_t{1} << 23;

}  // namespace aerie
