/* Vectors for the project's C kernels (classes/prediction/kernel.c,
 * classes/training/train_kernel.c): GCC vector extensions, so one source
 * builds for every instruction set classes/runtime/native.py compiles for
 * (VEC floats per vector: 16 for avx512, 8 for avx2, 4 where there is no AVX). */
#ifndef COWLEY2023_VECTORS_H
#define COWLEY2023_VECTORS_H

#ifndef VEC
#define VEC 16
#endif
#if !defined(__AVX__) && VEC > 4
/* A target without AVX (baseline x86-64: SSE; aarch64: NEON) has 128-bit
 * vectors; GCC splits wider vector extensions into halves, and register
 * blocks sized for them no longer fit: 8 floats per vector ran 1.7x slower than 4. */
#undef VEC
#define VEC 4
#endif
typedef float vf __attribute__((vector_size(VEC * 4)));
typedef float vfu __attribute__((vector_size(VEC * 4), aligned(4)));
typedef int vi __attribute__((vector_size(VEC * 4)));
typedef double vd __attribute__((vector_size(VEC * 8)));

static inline vf load(const float *p) { return *(const vfu *)p; }
static inline void store(float *p, vf v) { *(vfu *)p = v; }
/* x - 0 is x for every x (x + 0 is not, for -0), so this compiles to one broadcast. */
static inline vf splat(float x) { return x - (vf){0}; }
/* max(x, 0) and "x where m > 0, else 0", through comparison masks (C has no vector ?:). */
static inline vf relu(vf x) { vf zero = {0}; return (vf)((vi)x & (vi)(x > zero)); }
static inline vf select_positive(vf m, vf x) { vf zero = {0}; return (vf)((vi)x & (vi)(m > zero)); }

#endif
