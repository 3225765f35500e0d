/* A population of highway stacks, forward and backward, one member per thread at a time.
 *
 * Layout (row-major, as training.batched.Group stores it): x [K][B][W], kernel [L][K][W][2W],
 * bias [L][K][2W]; columns [0, W) of a layer's pre-activation belong to H, [W, 2W) to the
 * transform gate T. The training forward pass keeps every layer's input x and its gates
 * (h | t) in caller-owned buffers laid out [K][L][B][W] and [K][L][B][2W], so that the
 * backward pass needs no exp. Every member's numbers are its own: its matmuls and loops never
 * read another member's slice, whatever the thread count.
 *
 * Matrix products of a batch and width that are multiples of 5 take the AVX2 micro-kernel
 * below (gemm5); other shapes, and CPUs without AVX2, the BLAS sgemm (Fortran interface)
 * whose address the caller passes once (hs_set_sgemm): SciPy's OpenBLAS, so nothing is linked
 * at build time.
 */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#ifdef __AVX__
#include <immintrin.h>
#endif
#ifdef __SSE__
#include <xmmintrin.h>
#define STORE_FENCE() _mm_sfence() /* streaming stores are seen by all before we return */
#else
#define STORE_FENCE() ((void)0)
#endif

/* glibc's vector expf and tanhf (libmvec), which math.h declares only under -ffast-math; this
 * file keeps IEEE semantics (NaN and inf propagate, so a diverging member shows) and asks
 * only -fno-math-errno. */
__attribute__((simd("notinbranch"))) float expf(float);
__attribute__((simd("notinbranch"))) float tanhf(float);

typedef void (*sgemm_fn)(const char *transa, const char *transb, const int *m, const int *n,
                         const int *k, const float *alpha, const float *a, const int *lda,
                         const float *b, const int *ldb, const float *beta, float *c,
                         const int *ldc);
static sgemm_fn sgemm;

enum { ACT_RELU = 0, ACT_TANH = 1 };

void hs_set_sgemm(void *address) { sgemm = (sgemm_fn)address; }

/* Row-major C[M][N] = A[M][K] @ B[K][N] (+ C if accumulate); A and B optionally transposed
 * (stored as [K][M] or [N][K]). Column-major BLAS sees C^T = B^T A^T. */
static void gemm_rm(int trans_a, int trans_b, int M, int N, int K, const float *A, int lda,
                    const float *B, int ldb, int accumulate, float *C, int ldc) {
  const float one = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  const char ta = trans_a ? 'T' : 'N', tb = trans_b ? 'T' : 'N';
  sgemm(&tb, &ta, &N, &M, &K, &one, B, &ldb, A, &lda, &beta, C, &ldc);
}

#ifdef __AVX2__
/* One tile of C: 5 rows by `vectors` (1 or 2) vectors of 8 columns, the last of them holding
 * only the columns `mask` selects when `masked`. Inlined with constant shapes, so that each
 * kind compiles to its own loop; AMD's masked moves are slow, so only a tail uses them. */
static inline __attribute__((always_inline)) void tile5(const int vectors, const int masked,
    int P, const float *a, int am, int ap, const float *b, int ldb, int accumulate, float *c,
    int ldc, __m256i mask) {
  const int mask_first = masked && vectors == 1, mask_second = masked && vectors == 2;
  __m256 acc[5][2];
  for (int r = 0; r < 5; r++) {
    float *cr = c + (size_t)r * ldc;
    acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    if (accumulate) {
      acc[r][0] = mask_first ? _mm256_maskload_ps(cr, mask) : _mm256_loadu_ps(cr);
      if (vectors == 2)
        acc[r][1] = mask_second ? _mm256_maskload_ps(cr + 8, mask) : _mm256_loadu_ps(cr + 8);
    }
  }
  for (int p = 0; p < P; p++) {
    const float *bp = b + (size_t)p * ldb;
    __m256 b0 = mask_first ? _mm256_maskload_ps(bp, mask) : _mm256_loadu_ps(bp);
    __m256 b1 = vectors == 1 ? b0
                : mask_second ? _mm256_maskload_ps(bp + 8, mask) : _mm256_loadu_ps(bp + 8);
    for (int r = 0; r < 5; r++) {
      __m256 av = _mm256_broadcast_ss(a + (size_t)r * am + (size_t)p * ap);
      acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
      if (vectors == 2) acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
    }
  }
  for (int r = 0; r < 5; r++) {
    float *cr = c + (size_t)r * ldc;
    if (mask_first) _mm256_maskstore_ps(cr, mask, acc[r][0]);
    else _mm256_storeu_ps(cr, acc[r][0]);
    if (vectors == 2) {
      if (mask_second) _mm256_maskstore_ps(cr + 8, mask, acc[r][1]);
      else _mm256_storeu_ps(cr + 8, acc[r][1]);
    }
  }
}

/* C[M][N] (+)= A @ B for M a multiple of 5, where A's element (m, p) is A[m*am + p*ap] (so a
 * transposed A is only other strides) and B is row-major [P][N] (ldb). Blocks of 5 rows by 16
 * columns keep ten accumulators in registers; a last block of fewer than 16 columns takes one
 * or two vectors, masked only where it is not a multiple of 8. Why not BLAS: at these sizes
 * (every operand fits in L1) its packing costs about as much as the product
 * (docs/benchmark.md, "A compiled kernel"). */
static void gemm5(int M, int N, int P, const float *A, int am, int ap, const float *B, int ldb,
                  int accumulate, float *C, int ldc) {
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int n0 = 0; n0 < N; n0 += 16) {
    const int left = N - n0;
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(left % 8), lanes);
    for (int m0 = 0; m0 < M; m0 += 5) {
      const float *a = A + (size_t)m0 * am;
      const float *b = B + n0;
      float *c = C + (size_t)m0 * ldc + n0;
      if (left >= 16)
        tile5(2, 0, P, a, am, ap, b, ldb, accumulate, c, ldc, mask);
      else if (left > 8)
        tile5(2, 1, P, a, am, ap, b, ldb, accumulate, c, ldc, mask);
      else
        tile5(1, left != 8, P, a, am, ap, b, ldb, accumulate, c, ldc, mask);
    }
  }
}
#define SMALL_GEMM 1
#else
#define SMALL_GEMM 0
#endif

/* Ask for a member's next layer while this one computes: its layers lie K weight blocks
 * apart, too far for the hardware prefetcher to guess. Into L2 (locality 2). */
static inline void prefetch_block(const void *p, size_t bytes) {
  const char *c = (const char *)p;
  for (size_t offset = 0; offset < bytes; offset += 64) __builtin_prefetch(c + offset, 0, 2);
}

/* Copy into memory that is read again only after the whole pass (the kept inputs and gates,
 * the kernel gradient): streaming stores, which neither read the destination first nor push
 * the next layers' operands out of the cache. */
static inline void stream_copy(float *restrict dst, const float *restrict src, size_t count) {
  size_t i = 0;
#ifdef __AVX__
  for (; i < count && ((size_t)(dst + i) & 31) != 0; i++) dst[i] = src[i];
  for (; i + 8 <= count; i += 8) _mm256_stream_ps(dst + i, _mm256_loadu_ps(src + i));
#endif
  for (; i < count; i++) dst[i] = src[i];
}

/* 64-byte aligned scratch of `count` floats (aligned_alloc wants a multiple of the alignment). */
static float *scratch_floats(size_t count) {
  return aligned_alloc(64, (sizeof(float) * count + 63) / 64 * 64);
}

/* The gate maths of one layer, in place: gates holds x W on entry, (h | t) on exit. One loop
 * per activation, so that each vectorises with only its own function. */
#define GATE_LOOP(ACTIVATE)                                                    \
  for (int i = 0; i < B; i++) {                                                \
    float *restrict g = gates + (size_t)i * W2;                                \
    const float *restrict xi = x + (size_t)i * W;                              \
    float *restrict yi = y + (size_t)i * W;                                    \
    for (int j = 0; j < W; j++) {                                              \
      float pre = g[j] + b[j];                                                 \
      float h = ACTIVATE;                                                      \
      float t = 1.0f / (1.0f + expf(-(g[W + j] + b[W + j])));                  \
      g[j] = h;                                                                \
      g[W + j] = t;                                                            \
      yi[j] = h * t + xi[j] * (1.0f - t);                                      \
    }                                                                          \
  }

/* One layer: gates = (act(x W + b)[:, :W] | sigmoid(x W + b)[:, W:]), y = h t + x (1 - t). */
static void layer_forward(int act, int B, int W, const float *restrict x,
                          const float *restrict w, const float *restrict b,
                          float *restrict gates, float *restrict y) {
  const int W2 = 2 * W;
  if (SMALL_GEMM && B % 5 == 0)
    gemm5(B, W2, W, x, W, 1, w, W2, 0, gates, W2);
  else
    gemm_rm(0, 0, B, W2, W, x, W, w, W2, 0, gates, W2);
  if (act == ACT_TANH) {
    GATE_LOOP(tanhf(pre))
  } else {
    GATE_LOOP(pre < 0.0f ? 0.0f : pre) /* NaN stays NaN, as in TensorFlow */
  }
}

/* Forward pass of members [0, K) through L layers. Training keeps every layer's input and
 * gates (kept_x and kept_gates both given); gate_means [K][L], when given, receives each
 * layer's mean transform gate over the batch and the width, summed in double in a fixed
 * order, so that a member's value is the same whichever population it trains in. */
void hs_forward(int act, int L, int K, int B, int W, const float *x0, const float *kernel,
                const float *bias, float *y, float *kept_x, float *kept_gates,
                float *gate_means, int threads) {
  const int W2 = 2 * W;
  const int keep = kept_x != NULL && kept_gates != NULL;
#pragma omp parallel num_threads(threads)
  {
    float *cur = scratch_floats((size_t)B * W), *next = scratch_floats((size_t)B * W);
    float *gates = scratch_floats((size_t)B * W2);
#pragma omp for schedule(static)
    for (int m = 0; m < K; m++) {
      memcpy(cur, x0 + (size_t)m * B * W, sizeof(float) * B * W);
      for (int l = 0; l < L; l++) {
        const float *w = kernel + ((size_t)l * K + m) * W * W2;
        const float *b = bias + ((size_t)l * K + m) * W2;
        if (l + 1 < L) {
          prefetch_block(w + (size_t)K * W * W2, sizeof(float) * W * W2);
          prefetch_block(b + (size_t)K * W2, sizeof(float) * W2);
        }
        layer_forward(act, B, W, cur, w, b, gates, next);
        if (keep) {
          stream_copy(kept_x + ((size_t)m * L + l) * B * W, cur, (size_t)B * W);
          stream_copy(kept_gates + ((size_t)m * L + l) * B * W2, gates, (size_t)B * W2);
        }
        if (gate_means != NULL) {
          double sum = 0.0;
          for (int i = 0; i < B; i++)
            for (int j = 0; j < W; j++) sum += gates[(size_t)i * W2 + W + j];
          gate_means[(size_t)m * L + l] = (float)(sum / ((double)B * W));
        }
        float *swap = cur; cur = next; next = swap;
      }
      memcpy(y + (size_t)m * B * W, cur, sizeof(float) * B * W);
    }
    STORE_FENCE();
    free(cur); free(next); free(gates);
  }
}

/* Backward pass from dy [K][B][W] through what hs_forward kept: dx [K][B][W], the kernel
 * gradient [L][K][W][2W] and the bias gradient [L][K][2W] (summed over the batch). */
void hs_backward(int act, int L, int K, int B, int W, const float *dy0, const float *kernel,
                 const float *kept_x, const float *kept_gates, float *dx0, float *dkernel,
                 float *dbias, int threads) {
  const int W2 = 2 * W;
  const int tanh_layer = act == ACT_TANH;
#pragma omp parallel num_threads(threads)
  {
    float *dy = scratch_floats((size_t)B * W), *dx = scratch_floats((size_t)B * W);
    float *dpre = scratch_floats((size_t)B * W2), *wt = scratch_floats((size_t)W * W2);
    float *dw = scratch_floats((size_t)W * W2);
#pragma omp for schedule(static)
    for (int m = 0; m < K; m++) {
      memcpy(dy, dy0 + (size_t)m * B * W, sizeof(float) * B * W);
      for (int l = L - 1; l >= 0; l--) {
        const float *restrict x = kept_x + ((size_t)m * L + l) * B * W;
        const float *restrict gates = kept_gates + ((size_t)m * L + l) * B * W2;
        const float *w = kernel + ((size_t)l * K + m) * W * W2;
        float *restrict db = dbias + ((size_t)l * K + m) * W2;
        for (int i = 0; i < B; i++) {
          const float *restrict g = gates + (size_t)i * W2;
          const float *restrict xi = x + (size_t)i * W;
          const float *restrict dyi = dy + (size_t)i * W;
          float *restrict dp = dpre + (size_t)i * W2;
          float *restrict dxi = dx + (size_t)i * W;
          for (int j = 0; j < W; j++) {
            float h = g[j], t = g[W + j], d = dyi[j];
            float dh = d * t, dt = d * h - d * xi[j];
            dp[j] = tanh_layer ? dh * (1.0f - h * h) : (h > 0.0f ? dh : 0.0f);
            dp[W + j] = dt * t * (1.0f - t);
            dxi[j] = d * (1.0f - t);
          }
        }
        if (SMALL_GEMM && B % 5 == 0 && W % 5 == 0) {
          for (int r = 0; r < W; r++)  /* w^T, so that the product reads rows */
            for (int c = 0; c < W2; c++) wt[(size_t)c * W + r] = w[(size_t)r * W2 + c];
          gemm5(B, W, W2, dpre, W2, 1, wt, W, 1, dx, W);
          gemm5(W, W2, B, x, 1, W, dpre, W2, 0, dw, W2);
        } else {
          gemm_rm(0, 1, B, W, W2, dpre, W2, w, W2, 1, dx, W);
          gemm_rm(1, 0, W, W2, B, x, W, dpre, W2, 0, dw, W2);
        }
        stream_copy(dkernel + ((size_t)l * K + m) * W * W2, dw, (size_t)W * W2);
        for (int j = 0; j < W2; j++) db[j] = 0.0f;
        for (int i = 0; i < B; i++)
          for (int j = 0; j < W2; j++) db[j] += dpre[(size_t)i * W2 + j];
        float *swap = dy; dy = dx; dx = swap;
      }
      memcpy(dx0 + (size_t)m * B * W, dy, sizeof(float) * B * W);
    }
    STORE_FENCE();
    free(dy); free(dx); free(dpre); free(wt); free(dw);
  }
}
