import { describe, expect, it } from 'vitest';
import { PARTS, parseVariant } from '../bench/decode_variants.js';

describe('decode_parts variants (bench/decode_variants.ts)', () => {
  it('all, all but some, only some, and a split count for attention', () => {
    expect([...parseVariant('all').parts]).toEqual([...PARTS]);
    expect([...parseVariant('all-attn-o').parts]).toEqual(PARTS.filter((p) => p !== 'attn' && p !== 'o'));
    expect([...parseVariant('qkv+o').parts]).toEqual(['qkv', 'o']);
    const v = parseVariant(' qkv+attn@17+o ');
    expect(v).toEqual({ name: 'qkv+attn@17+o', parts: new Set(['qkv', 'attn', 'o']), splits: 17 });
    expect(parseVariant('all').splits).toBeUndefined();
  });

  it('names what is wrong with a bad variant', () => {
    expect(() => parseVariant('qkv+lm')).toThrow(/variant 'qkv\+lm': unknown part 'lm'/);
    expect(() => parseVariant('qkv-o')).toThrow(/only 'all-\.\.\.' takes parts away/);
    expect(() => parseVariant('all+o')).toThrow(/takes parts away with '-', not '\+'/);
    expect(() => parseVariant('attn@0')).toThrow(/attn@0 is outside 1\.\.1024/);
    expect(() => parseVariant('all-qkv-attn-o-gateup-down-head-argmax')).toThrow(/no parts left/);
    expect(() => parseVariant('')).toThrow(/no parts left/);
  });
});
