/**
 * Each kernel family's part of the native surface. A family adds its interface file here and to
 * KernelFamilies; its C++ glue lives in native/kernels/bind_<family>.cc.
 */
import type { MatmulNative } from './matmul.js';
import type { ElementwiseNative } from './elementwise.js';
import type { NormNative } from './norm.js';
import type { ActivationNative } from './activation.js';
import type { EmbeddingNative } from './embedding.js';
import type { RotaryNative } from './rotary.js';
import type { QkvRotaryNative } from './qkv_rotary.js';
import type { AttentionNative } from './attention.js';
import type { PagedAttentionNative } from './paged_attention.js';
import type { LossNative } from './loss.js';
import type { OptimizerNative } from './optimizer.js';
import type { SamplingNative } from './sampling.js';
import type { CollectivesNative } from './collectives.js';
import type { FusedGemvNative } from './fused_gemv.js';

export interface KernelFamilies
  extends MatmulNative,
    ElementwiseNative,
    NormNative,
    ActivationNative,
    EmbeddingNative,
    RotaryNative,
    QkvRotaryNative,
    AttentionNative,
    PagedAttentionNative,
    LossNative,
    OptimizerNative,
    SamplingNative,
    CollectivesNative,
    FusedGemvNative {}
