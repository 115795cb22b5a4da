/* One training step of a compact model (SPEC section 2) on a CPU, for the
 * distillation of 100-filter students.
 *
 * The step is split into phases that Python (classes/training/fast_train.py)
 * calls in order; between phases it turns batch sums into BatchNormalization
 * coefficients. Each phase runs over the images of the batch in parallel
 * (OpenMP when compiled with it) and reduces per-thread sums at its end.
 *
 * Why it is laid out this way (measured on a 2-core CPU):
 * - Layer 0 (a 5x5 convolution of 3 channels to K0) is most of the
 *   arithmetic, and its output (112 x 112 x K0 per image) is too large to keep
 *   for a batch without going to memory. It is never stored: the forward
 *   phase computes it two rows at a time and feeds layer 1's depthwise
 *   convolution while the rows are in cache, and the backward phase
 *   recomputes it the same way.
 * - Its batch statistics (needed before any row can be normalised) come
 *   from the patch moments S = sum(patch) and C = sum(patch patch^T) over
 *   the batch: mean = W.S/N + b, E[(z-b)^2] = W^T C W / N. C depends only on
 *   the images; patch_lag_sums() gives what C is made of, at a few percent
 *   of the cost of a pass of layer 0.
 * - The same moments give the BatchNormalization terms of layer 0's kernel
 *   gradient (see fast_train.py), so its backward is one pass: G = sum over
 *   positions of patch x dy.
 *
 * Channels are padded to a multiple of VEC floats with zeros; padded
 * channels have zero weights, zero scale and shift, and stay zero.
 * Vectors are GCC vector extensions, so the same source builds for
 * AVX-512 (VEC 16), AVX2 (VEC 8) or any other target.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#ifndef VEC
#define VEC 16
#endif
typedef float vf __attribute__((vector_size(VEC * 4)));
typedef float vfu __attribute__((vector_size(VEC * 4), aligned(4)));
typedef double vd __attribute__((vector_size(VEC * 8)));

#if VEC >= 16
#define PIXELS 8   /* pixels per register block of layer 0 */
#define GROUP 3    /* channel vectors per register block */
#define ROWS 8     /* rows per register block of the pointwise products */
#define KTILE 15   /* patch entries per block of layer 0's gradient */
#else
#define PIXELS 4
#define GROUP 3
#define ROWS 4
#define KTILE 5
#endif

#define SIDE0 112
#define SIDE1 56
#define SIDE2 28
#define PADDED 116          /* layer-0 input padded by 2 on each side */
#define TAPS 25
#define PATCH 75
#define RING 8              /* rows of layer-0 activity kept for layer 1 */

static inline vf load(const float *p) { return *(const vfu *)p; }
static inline void store(float *p, vf v) { *(vfu *)p = v; }
static inline vf splat(float x) { return (vf){0} + x; }
typedef int vi __attribute__((vector_size(VEC * 4)));
/* max(x, 0) and "x where m > 0, else 0", through comparison masks (C has no vector ?:). */
static inline vf vmax0(vf x) { vf z = {0}; return (vf)((vi)x & (x > z)); }
static inline vf vsel(vf m, vf x) { vf z = {0}; return (vf)((vi)x & (m > z)); }

int train_vector_width(void) { return VEC; }

int train_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

void train_set_threads(int threads) {
#ifdef _OPENMP
    if (threads > 0) omp_set_num_threads(threads);
#else
    (void)threads;
#endif
}

static inline int thread_index(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* ---------------------------------------------------------------- network */

typedef struct {
    int channels[5];                 /* padded filter counts */
    const float *kernel0;            /* [75][C0] */
    const float *scale[5];           /* BN as scale * z + shift (layer 0: z without bias) */
    const float *shift[5];
    const float *depthwise[4];       /* [25][C_{l-1}] */
    const float *pointwise[4];       /* [C_{l-1}][C_l] */
    const float *pointwise_t[4];     /* [C_l][C_{l-1}] */
    const float *bias[4];            /* [C_l] */
    const float *readout;            /* [784][C4] */
    float readout_bias;
} network_t;

/* ------------------------------------------------------------- layer 0 */

/* The image padded by 2 with zeros: [116][116][3]. */
static void pad_image(const float *image, float *padded) {
    memset(padded, 0, sizeof(float) * PADDED * PADDED * 3);
    for (int row = 0; row < SIDE0; row++)
        memcpy(padded + ((row + 2) * PADDED + 2) * 3, image + row * SIDE0 * 3, sizeof(float) * SIDE0 * 3);
}

/* z (without bias) of `groups` channel vectors starting at channel `first`
 * for PIXELS pixels of one row starting at column `column`. */
static inline __attribute__((always_inline)) void conv0_block(
    const float *padded, const float *kernel, int channels, int row, int column, int first,
    int groups, float *out, int out_stride) {
    vf acc[PIXELS][GROUP];
    for (int p = 0; p < PIXELS; p++)
        for (int g = 0; g < GROUP; g++) acc[p][g] = (vf){0};
    for (int ky = 0; ky < 5; ky++) {
        const float *line = padded + ((row + ky) * PADDED + column) * 3;
        for (int e = 0; e < 15; e++) { /* e = kx * 3 + channel: 15 consecutive floats */
            const float *weights = kernel + (ky * 15 + e) * channels + first;
            vf w[GROUP];
            for (int g = 0; g < GROUP; g++) w[g] = g < groups ? load(weights + g * VEC) : (vf){0};
            for (int p = 0; p < PIXELS; p++) {
                vf x = splat(line[p * 3 + e]);
                for (int g = 0; g < GROUP; g++)
                    if (g < groups) acc[p][g] += x * w[g];
            }
        }
    }
    for (int p = 0; p < PIXELS; p++)
        for (int g = 0; g < groups; g++) store(out + p * out_stride + first + g * VEC, acc[p][g]);
}

/* z0 (without bias) of one row: [112][C0]. */
static void conv0_row(const float *padded, const float *kernel, int channels, int row, float *out) {
    for (int column = 0; column < SIDE0; column += PIXELS)
        for (int first = 0; first < channels; first += GROUP * VEC) {
            int groups = (channels - first) / VEC;
            if (groups >= 3) conv0_block(padded, kernel, channels, row, column, first, 3, out + column * channels, channels);
            else if (groups == 2) conv0_block(padded, kernel, channels, row, column, first, 2, out + column * channels, channels);
            else conv0_block(padded, kernel, channels, row, column, first, 1, out + column * channels, channels);
        }
}

/* a0 of one row from z0: relu(scale * z + shift), in place; returns nothing. */
static void activate_row(float *row, int channels, const float *scale, const float *shift, int count) {
    for (int i = 0; i < count; i++)
        for (int c = 0; c < channels; c += VEC)
            store(row + i * channels + c, vmax0(load(row + i * channels + c) * load(scale + c) + load(shift + c)));
}

/* ------------------------------------------------------- depthwise (layers 1-4) */

/* "same" padding as Keras: stride 1 pads 2 before; stride 2 on an even side pads 1 before. */
static inline int pad_before(int stride) { return stride == 1 ? 2 : 1; }

/* One output row of a depthwise convolution. rows[ky] points at input row
 * (stride * out_row - pad + ky) or is NULL outside the map. */
static void depthwise_row(const float *const rows[5], const float *kernel, int channels, int in_side,
                          int stride, float *out, int out_side) {
    int pad = pad_before(stride);
    for (int u = 0; u < out_side; u++) {
        for (int c = 0; c < channels; c += VEC) {
            vf acc = {0};
            for (int ky = 0; ky < 5; ky++) {
                if (!rows[ky]) continue;
                for (int kx = 0; kx < 5; kx++) {
                    int x = stride * u - pad + kx;
                    if (x < 0 || x >= in_side) continue;
                    acc += load(kernel + (ky * 5 + kx) * channels + c) * load(rows[ky] + x * channels + c);
                }
            }
            store(out + u * channels + c, acc);
        }
    }
}

static void depthwise_map(const float *in, const float *kernel, int channels, int in_side, int stride,
                          float *out) {
    int out_side = in_side / stride, pad = pad_before(stride);
    for (int q = 0; q < out_side; q++) {
        const float *rows[5];
        for (int ky = 0; ky < 5; ky++) {
            int y = stride * q - pad + ky;
            rows[ky] = (y >= 0 && y < in_side) ? in + (long)y * in_side * channels : NULL;
        }
        depthwise_row(rows, kernel, channels, in_side, stride, out + (long)q * out_side * channels, out_side);
    }
}

/* Input gradient of a depthwise convolution (gather form): d_in [in_side^2][C]. */
static void depthwise_input_gradient(const float *d_out, const float *kernel, int channels, int in_side,
                                     int stride, float *d_in) {
    int out_side = in_side / stride, pad = pad_before(stride);
    for (int y = 0; y < in_side; y++)
        for (int x = 0; x < in_side; x++)
            for (int c = 0; c < channels; c += VEC) {
                vf acc = {0};
                for (int ky = 0; ky < 5; ky++) {
                    int t = y + pad - ky;
                    if (t < 0 || t % stride || t / stride >= out_side) continue;
                    for (int kx = 0; kx < 5; kx++) {
                        int s = x + pad - kx;
                        if (s < 0 || s % stride || s / stride >= out_side) continue;
                        acc += load(kernel + (ky * 5 + kx) * channels + c)
                             * load(d_out + ((long)(t / stride) * out_side + s / stride) * channels + c);
                    }
                }
                store(d_in + ((long)y * in_side + x) * channels + c, acc);
            }
}

/* Kernel gradient of a depthwise convolution: grad[25][C] += sum in(shifted) * d_out. */
static void depthwise_kernel_gradient(const float *in, const float *d_out, int channels, int in_side,
                                      int stride, float *grad) {
    int out_side = in_side / stride, pad = pad_before(stride);
    for (int ky = 0; ky < 5; ky++)
        for (int c = 0; c < channels; c += VEC) {
            vf acc[5] = {{0}};
            for (int q = 0; q < out_side; q++) {
                int y = stride * q - pad + ky;
                if (y < 0 || y >= in_side) continue;
                const float *line = in + (long)y * in_side * channels + c;
                const float *g = d_out + (long)q * out_side * channels + c;
                for (int u = 0; u < out_side; u++) {
                    vf gu = load(g + u * channels);
                    for (int kx = 0; kx < 5; kx++) {
                        int x = stride * u - pad + kx;
                        if (x >= 0 && x < in_side) acc[kx] += gu * load(line + x * channels);
                    }
                }
            }
            for (int kx = 0; kx < 5; kx++)
                store(grad + (ky * 5 + kx) * channels + c, load(grad + (ky * 5 + kx) * channels + c) + acc[kx]);
        }
}

/* ------------------------------------------------------------ products */

static inline __attribute__((always_inline)) void product_block(
    const float *a, const float *b, const float *bias, int rows, int inner, int n, int first, int groups,
    float *out) {
    vf acc[ROWS][GROUP];
    for (int r = 0; r < ROWS; r++)
        for (int g = 0; g < GROUP; g++) acc[r][g] = (g < groups && bias) ? load(bias + first + g * VEC) : (vf){0};
    for (int k = 0; k < inner; k++) {
        vf w[GROUP];
        for (int g = 0; g < GROUP; g++) w[g] = g < groups ? load(b + (long)k * n + first + g * VEC) : (vf){0};
        for (int r = 0; r < ROWS; r++) {
            if (r >= rows) break;
            vf x = splat(a[(long)r * inner + k]);
            for (int g = 0; g < GROUP; g++)
                if (g < groups) acc[r][g] += x * w[g];
        }
    }
    for (int r = 0; r < rows; r++)
        for (int g = 0; g < groups; g++) store(out + (long)r * n + first + g * VEC, acc[r][g]);
}

/* out[m][n] = a[m][inner] b[inner][n] (+ bias[n]). */
static void product(const float *a, const float *b, const float *bias, long m, int inner, int n, float *out) {
    for (long row = 0; row < m; row += ROWS) {
        int rows = (int)(m - row < ROWS ? m - row : ROWS);
        for (int first = 0; first < n; first += GROUP * VEC) {
            int groups = (n - first) / VEC;
            const float *ar = a + row * inner;
            float *o = out + row * n;
            if (groups >= 3) product_block(ar, b, bias, rows, inner, n, first, 3, o);
            else if (groups == 2) product_block(ar, b, bias, rows, inner, n, first, 2, o);
            else product_block(ar, b, bias, rows, inner, n, first, 1, o);
        }
    }
}

/* grad[inner][n] += a^T d over m rows: a [m][inner], d [m][n]. */
static void product_gradient(const float *a, const float *d, long m, int inner, int n, float *grad) {
    enum { TILE = 8 };
    for (int k0 = 0; k0 < inner; k0 += TILE)
        for (int first = 0; first < n; first += GROUP * VEC) {
            int groups = (n - first) / VEC < GROUP ? (n - first) / VEC : GROUP;
            int tile = inner - k0 < TILE ? inner - k0 : TILE;
            vf acc[TILE][GROUP];
            for (int t = 0; t < TILE; t++)
                for (int g = 0; g < GROUP; g++) acc[t][g] = (vf){0};
            for (long r = 0; r < m; r++) {
                vf dv[GROUP];
                for (int g = 0; g < GROUP; g++) dv[g] = g < groups ? load(d + r * n + first + g * VEC) : (vf){0};
                const float *ar = a + r * inner + k0;
                for (int t = 0; t < TILE; t++) {
                    vf x = splat(t < tile ? ar[t] : 0.0f);
                    for (int g = 0; g < GROUP; g++) acc[t][g] += x * dv[g];
                }
            }
            for (int t = 0; t < tile; t++)
                for (int g = 0; g < groups; g++) {
                    float *target = grad + (long)(k0 + t) * n + first + g * VEC;
                    store(target, load(target) + acc[t][g]);
                }
        }
}

/* --------------------------------------------------------- batch sums */

/* sums[c] += sum z, sums[C + c] += sum z * w (w = z when other is NULL), in double. */
static void add_moments(const float *z, const float *other, long count, int channels, double *sums) {
    for (int c = 0; c < channels; c += VEC) {
        vf s1 = {0}, s2 = {0};
        vd total1 = {0}, total2 = {0};
        for (long i = 0; i < count; i++) {
            vf v = load(z + i * channels + c);
            vf w = other ? load(other + i * channels + c) : v;
            s1 += v;
            s2 += v * w;
            if ((i & 15) == 15) { /* flush to double every 16 positions: float error stays small */
                total1 += __builtin_convertvector(s1, vd);
                total2 += __builtin_convertvector(s2, vd);
                s1 = (vf){0};
                s2 = (vf){0};
            }
        }
        total1 += __builtin_convertvector(s1, vd);
        total2 += __builtin_convertvector(s2, vd);
        for (int j = 0; j < VEC; j++) {
            sums[c + j] += total1[j];
            sums[channels + c + j] += total2[j];
        }
    }
}

static int max_threads_count(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* Per-thread scratch: `per_thread` floats each, then per-thread double sums. */
typedef struct {
    float *work;
    long per_thread;
    double *sums;      /* [threads][sum_count] */
    int sum_count;
    float *grads;      /* [threads][grad_count] */
    long grad_count;
} scratch_t;

/* The scratch of one phase, its per-thread sums and gradients zeroed. */
static scratch_t phase_scratch(float *work, long per_thread, double *thread_sums, int sum_count,
                               float *thread_grads, long grad_count) {
    scratch_t s = {work, per_thread, thread_sums, sum_count, thread_grads, grad_count};
    memset(thread_sums, 0, sizeof(double) * max_threads_count() * sum_count);
    if (thread_grads) memset(thread_grads, 0, sizeof(float) * max_threads_count() * grad_count);
    return s;
}

static void reduce_threads(const scratch_t *s, int threads, double *sums, float *grads) {
    for (int t = 0; t < threads; t++) {
        if (sums)
            for (int i = 0; i < s->sum_count; i++) sums[i] += s->sums[(long)t * s->sum_count + i];
        if (grads)
            for (long i = 0; i < s->grad_count; i++) grads[i] += s->grads[(long)t * s->grad_count + i];
    }
}

/* --------------------------------------------------------------- forward */

/* Layer 0, then layer 1's depthwise (d1) and pointwise (z1) of one image. */
static void forward_first_image(const network_t *n, const float *image, float *d1, float *z1, float *work) {
    int c0 = n->channels[0], c1 = n->channels[1];
    float *padded = work, *ring = padded + PADDED * PADDED * 3;
    pad_image(image, padded);
    int done = 0; /* a0 rows computed so far */
    for (int q = 0; q < SIDE1; q++) {
        int need = 2 * q + 3 < SIDE0 ? 2 * q + 3 : SIDE0 - 1;
        while (done <= need) {
            float *row = ring + (long)(done % RING) * SIDE0 * c0;
            conv0_row(padded, n->kernel0, c0, done, row);
            activate_row(row, c0, n->scale[0], n->shift[0], SIDE0);
            done++;
        }
        const float *rows[5];
        for (int ky = 0; ky < 5; ky++) {
            int y = 2 * q - 1 + ky;
            rows[ky] = (y >= 0 && y < SIDE0) ? ring + (long)(y % RING) * SIDE0 * c0 : NULL;
        }
        depthwise_row(rows, n->depthwise[0], c0, SIDE0, 2, d1 + (long)q * SIDE1 * c0, SIDE1);
    }
    product(d1, n->pointwise[0], n->bias[0], (long)SIDE1 * SIDE1, c0, c1, z1);
}

long train_first_work_floats(int c0) { return (long)PADDED * PADDED * 3 + (long)RING * SIDE0 * c0 + 2L * SIDE0 * c0 + 64; }

void train_forward_first(const network_t *n, const float *images, int batch, float *d1, float *z1,
                         double *sums1, float *work, long per_thread, double *thread_sums) {
    int c0 = n->channels[0], c1 = n->channels[1], threads = max_threads_count();
    scratch_t s = phase_scratch(work, per_thread, thread_sums, 2 * c1, NULL, 0);
#pragma omp parallel for schedule(dynamic, 1)
    for (int b = 0; b < batch; b++) {
        int t = thread_index();
        long plane = (long)SIDE1 * SIDE1;
        forward_first_image(n, images + (long)b * SIDE0 * SIDE0 * 3, d1 + b * plane * c0, z1 + b * plane * c1,
                            work + t * per_thread);
        add_moments(z1 + b * plane * c1, NULL, plane, c1, thread_sums + (long)t * 2 * c1);
    }
    reduce_threads(&s, threads, sums1, NULL);
}

static const int SIDES[5] = {SIDE0, SIDE1, SIDE2, SIDE2, SIDE2};
static const int STRIDES[5] = {1, 2, 2, 1, 1};

/* relu(scale * z + shift) of a whole map into out. */
static void activate_map(const float *z, long count, int channels, const float *scale, const float *shift,
                         float *out) {
    for (long i = 0; i < count; i++)
        for (int c = 0; c < channels; c += VEC)
            store(out + i * channels + c, vmax0(load(z + i * channels + c) * load(scale + c) + load(shift + c)));
}

/* Layers 2-4: a_{l-1} from z_{l-1}, then depthwise (d_l) and pointwise (z_l). */
void train_forward_separable(const network_t *n, int layer, int batch, const float *z_previous, float *d,
                             float *z, double *sums, float *work, long per_thread, double *thread_sums) {
    int cp = n->channels[layer - 1], c = n->channels[layer], threads = max_threads_count();
    long in_plane = (long)SIDES[layer - 1] * SIDES[layer - 1], plane = (long)SIDES[layer] * SIDES[layer];
    scratch_t s = phase_scratch(work, per_thread, thread_sums, 2 * c, NULL, 0);
#pragma omp parallel for schedule(dynamic, 1)
    for (int b = 0; b < batch; b++) {
        int t = thread_index();
        float *a = work + t * per_thread;
        activate_map(z_previous + b * in_plane * cp, in_plane, cp, n->scale[layer - 1], n->shift[layer - 1], a);
        depthwise_map(a, n->depthwise[layer - 1], cp, SIDES[layer - 1], STRIDES[layer], d + b * plane * cp);
        product(d + b * plane * cp, n->pointwise[layer - 1], n->bias[layer - 1], plane, cp, c, z + b * plane * c);
        add_moments(z + b * plane * c, NULL, plane, c, thread_sums + (long)t * 2 * c);
    }
    reduce_threads(&s, threads, sums, NULL);
}

/* outputs[b] = sum relu(scale4 * z4 + shift4) * readout + readout_bias. */
void train_forward_readout(const network_t *n, int batch, const float *z4, float *outputs) {
    int c = n->channels[4];
    long plane = (long)SIDE2 * SIDE2;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < batch; b++) {
        vd total = {0};
        for (long i = 0; i < plane; i++) {
            vf acc = {0};
            for (int k = 0; k < c; k += VEC) {
                vf a = vmax0(load(z4 + (b * plane + i) * c + k) * load(n->scale[4] + k) + load(n->shift[4] + k));
                acc += a * load(n->readout + i * c + k);
            }
            total += __builtin_convertvector(acc, vd);
        }
        double sum = n->readout_bias;
        for (int j = 0; j < VEC; j++) sum += total[j];
        outputs[b] = (float)sum;
    }
}

/* -------------------------------------------------------------- backward */

/* From the loss gradient of each output: the readout's gradient, and dy4 =
 * d loss / d (BN output of layer 4) after the ReLU, with sums of dy4 and dy4 * z4. */
void train_backward_readout(const network_t *n, int batch, const float *z4, const float *d_outputs,
                            float *grad_readout, float *dy4, double *sums, float *work, long per_thread,
                            double *thread_sums, float *thread_grads) {
    int c = n->channels[4], threads = max_threads_count();
    long plane = (long)SIDE2 * SIDE2;
    scratch_t s = phase_scratch(work, per_thread, thread_sums, 2 * c, thread_grads, plane * c);
#pragma omp parallel for schedule(dynamic, 1)
    for (int b = 0; b < batch; b++) {
        int t = thread_index();
        float *grad = thread_grads + (long)t * plane * c;
        vf dout = splat(d_outputs[b]);
        for (long i = 0; i < plane; i++)
            for (int k = 0; k < c; k += VEC) {
                long at = (b * plane + i) * c + k;
                vf a = vmax0(load(z4 + at) * load(n->scale[4] + k) + load(n->shift[4] + k));
                store(grad + i * c + k, load(grad + i * c + k) + dout * a);
                store(dy4 + at, vsel(a, dout * load(n->readout + i * c + k)));
            }
        add_moments(dy4 + b * plane * c, z4 + b * plane * c, plane, c, thread_sums + (long)t * 2 * c);
    }
    reduce_threads(&s, threads, sums, grad_readout);
}

/* dz = scale * dy + u + w * z: BatchNormalization's backward with batch statistics. */
static void batch_norm_backward(const float *dy, const float *z, long count, int channels, const float *scale,
                                const float *u, const float *w, float *dz) {
    for (long i = 0; i < count; i++)
        for (int c = 0; c < channels; c += VEC)
            store(dz + i * channels + c, load(scale + c) * load(dy + i * channels + c) + load(u + c)
                                         + load(w + c) * load(z + i * channels + c));
}

static void add_column_sums(const float *x, long count, int channels, float *out) {
    for (int c = 0; c < channels; c += VEC) {
        vf acc = {0};
        for (long i = 0; i < count; i++) acc += load(x + i * channels + c);
        store(out + c, load(out + c) + acc);
    }
}

long train_separable_work_floats(int layer, const int *channels) {
    long plane = (long)SIDES[layer] * SIDES[layer], in_plane = (long)SIDES[layer - 1] * SIDES[layer - 1];
    int cp = channels[layer - 1], c = channels[layer];
    long floats = plane * c + plane * cp;               /* dz, dd */
    if (layer >= 2) floats += 2 * in_plane * cp;        /* a_{l-1}, da_{l-1} */
    return floats + 64;
}

/* Layer `layer` (1-4) backward. Gradients are added into grad_pointwise
 * [C_{l-1}][C_l], grad_bias [C_l] and (layers 2-4) grad_depthwise [25][C_{l-1}].
 * Layer 1 writes dd1 (gradient of its depthwise output) for train_backward_first;
 * layers 2-4 write dy_{l-1} and its sums with z_{l-1}. */
void train_backward_separable(const network_t *n, int layer, int batch, const float *dy, const float *z,
                              const float *u, const float *w, const float *d, const float *z_previous,
                              float *grad_pointwise, float *grad_bias, float *grad_depthwise, float *dd_first,
                              float *dy_previous, double *sums_previous, float *work, long per_thread,
                              double *thread_sums, float *thread_grads) {
    int cp = n->channels[layer - 1], c = n->channels[layer], threads = max_threads_count();
    long plane = (long)SIDES[layer] * SIDES[layer], in_plane = (long)SIDES[layer - 1] * SIDES[layer - 1];
    long grad_count = (long)cp * c + c + TAPS * cp;
    scratch_t s = phase_scratch(work, per_thread, thread_sums, 2 * cp, thread_grads, grad_count);
#pragma omp parallel for schedule(dynamic, 1)
    for (int b = 0; b < batch; b++) {
        int t = thread_index();
        float *g = thread_grads + t * grad_count, *dz = work + t * per_thread, *dd = dz + plane * c;
        batch_norm_backward(dy + b * plane * c, z + b * plane * c, plane, c, n->scale[layer], u, w, dz);
        add_column_sums(dz, plane, c, g + (long)cp * c);
        product_gradient(d + b * plane * cp, dz, plane, cp, c, g);
        if (layer == 1) dd = dd_first + b * plane * cp;
        product(dz, n->pointwise_t[layer - 1], NULL, plane, c, cp, dd);
        if (layer == 1) continue;
        float *a = dd + plane * cp, *da = a + in_plane * cp;
        activate_map(z_previous + b * in_plane * cp, in_plane, cp, n->scale[layer - 1], n->shift[layer - 1], a);
        depthwise_kernel_gradient(a, dd, cp, SIDES[layer - 1], STRIDES[layer], g + (long)cp * c + c);
        depthwise_input_gradient(dd, n->depthwise[layer - 1], cp, SIDES[layer - 1], STRIDES[layer], da);
        float *out = dy_previous + b * in_plane * cp;
        for (long i = 0; i < in_plane * cp; i += VEC) store(out + i, vsel(load(a + i), load(da + i)));
        add_moments(out, z_previous + b * in_plane * cp, in_plane, cp, thread_sums + (long)t * 2 * cp);
    }
    float *reduced = calloc(grad_count, sizeof(float));
    reduce_threads(&s, threads, layer == 1 ? NULL : sums_previous, reduced);
    for (long i = 0; i < (long)cp * c; i++) grad_pointwise[i] += reduced[i];
    for (int i = 0; i < c; i++) grad_bias[i] += reduced[(long)cp * c + i];
    if (layer >= 2)
        for (long i = 0; i < (long)TAPS * cp; i++) grad_depthwise[i] += reduced[(long)cp * c + c + i];
    free(reduced);
}

/* G[75][C0] += patch^T dy over `count_rows` rows of layer 0 starting at `row`. */
static void conv0_gradient_rows(const float *padded, const float *dy, int channels, int row, int count_rows,
                                float *grad) {
    for (int ky = 0; ky < 5; ky++)
        for (int e0 = 0; e0 < 15; e0 += KTILE)
            for (int first = 0; first < channels; first += GROUP * VEC) {
                int groups = (channels - first) / VEC < GROUP ? (channels - first) / VEC : GROUP;
                vf acc[KTILE][GROUP];
                for (int t = 0; t < KTILE; t++)
                    for (int g = 0; g < GROUP; g++) acc[t][g] = (vf){0};
                for (int r = 0; r < count_rows; r++) {
                    const float *line = padded + ((row + r + ky) * PADDED) * 3 + e0;
                    const float *gradient_row = dy + (long)r * SIDE0 * channels + first;
                    for (int x = 0; x < SIDE0; x++) {
                        vf dv[GROUP];
                        for (int g = 0; g < GROUP; g++)
                            dv[g] = g < groups ? load(gradient_row + x * channels + g * VEC) : (vf){0};
                        for (int t = 0; t < KTILE; t++) {
                            vf xv = splat(line[x * 3 + t]);
                            for (int g = 0; g < GROUP; g++) acc[t][g] += xv * dv[g];
                        }
                    }
                }
                for (int t = 0; t < KTILE; t++)
                    for (int g = 0; g < groups; g++) {
                        float *target = grad + (ky * 15 + e0 + t) * channels + first + g * VEC;
                        store(target, load(target) + acc[t][g]);
                    }
            }
}

/* da0 of one row y from dd1 (gather form of layer 1's stride-2 depthwise). */
static void first_input_gradient_row(const float *dd1, const float *kernel, int channels, int y, float *out) {
    for (int x = 0; x < SIDE0; x++)
        for (int c = 0; c < channels; c += VEC) {
            vf acc = {0};
            for (int ky = 0; ky < 5; ky++) {
                int t = y + 1 - ky;
                if (t < 0 || (t & 1) || t / 2 >= SIDE1) continue;
                for (int kx = 0; kx < 5; kx++) {
                    int s = x + 1 - kx;
                    if (s < 0 || (s & 1) || s / 2 >= SIDE1) continue;
                    acc += load(kernel + (ky * 5 + kx) * channels + c)
                         * load(dd1 + ((long)(t / 2) * SIDE1 + s / 2) * channels + c);
                }
            }
            store(out + x * channels + c, acc);
        }
}

/* Layer 1's depthwise kernel gradient from one row y of a0. */
static void first_depthwise_gradient_row(const float *a0_row, const float *dd1, int channels, int y, float *grad) {
    for (int ky = 0; ky < 5; ky++) {
        int t = y + 1 - ky;
        if (t < 0 || (t & 1) || t / 2 >= SIDE1) continue;
        const float *g = dd1 + (long)(t / 2) * SIDE1 * channels;
        for (int c = 0; c < channels; c += VEC) {
            vf acc[5] = {{0}};
            for (int u = 0; u < SIDE1; u++) {
                vf gu = load(g + u * channels + c);
                for (int kx = 0; kx < 5; kx++) {
                    int x = 2 * u - 1 + kx;
                    if (x >= 0 && x < SIDE0) acc[kx] += gu * load(a0_row + x * channels + c);
                }
            }
            for (int kx = 0; kx < 5; kx++)
                store(grad + (ky * 5 + kx) * channels + c, load(grad + (ky * 5 + kx) * channels + c) + acc[kx]);
        }
    }
}

/* Layer 0 backward for one image, two rows at a time: recompute z0 and a0,
 * da0 from dd1, dy0 = da0 where a0 > 0; add patch^T dy0 into G, layer 1's
 * depthwise kernel gradient, and sums of dy0 and dy0 * z0. */
static void backward_first_image(const network_t *n, const float *image, const float *dd1, float *grad_g,
                                 float *grad_depthwise, double *sums, float *work) {
    int c0 = n->channels[0];
    float *padded = work, *z = padded + PADDED * PADDED * 3, *a = z + 2L * SIDE0 * c0, *dy = a + 2L * SIDE0 * c0;
    pad_image(image, padded);
    for (int y = 0; y < SIDE0; y += 2) {
        for (int r = 0; r < 2; r++) {
            float *zr = z + (long)r * SIDE0 * c0, *ar = a + (long)r * SIDE0 * c0, *dyr = dy + (long)r * SIDE0 * c0;
            conv0_row(padded, n->kernel0, c0, y + r, zr);
            activate_map(zr, SIDE0, c0, n->scale[0], n->shift[0], ar);
            first_input_gradient_row(dd1, n->depthwise[0], c0, y + r, dyr);
            for (long i = 0; i < (long)SIDE0 * c0; i += VEC) store(dyr + i, vsel(load(ar + i), load(dyr + i)));
            first_depthwise_gradient_row(ar, dd1, c0, y + r, grad_depthwise);
        }
        add_moments(dy, z, 2L * SIDE0, c0, sums);
        conv0_gradient_rows(padded, dy, c0, y, 2, grad_g);
    }
}

long train_backward_first_work_floats(int c0) { return (long)PADDED * PADDED * 3 + 6L * SIDE0 * c0 + 64; }

void train_backward_first(const network_t *n, const float *images, int batch, const float *dd1, float *grad_g,
                          float *grad_depthwise, double *sums, float *work, long per_thread, double *thread_sums,
                          float *thread_grads) {
    int c0 = n->channels[0], threads = max_threads_count();
    long grad_count = (long)PATCH * c0 + TAPS * c0;
    scratch_t s = phase_scratch(work, per_thread, thread_sums, 2 * c0, thread_grads, grad_count);
#pragma omp parallel for schedule(dynamic, 1)
    for (int b = 0; b < batch; b++) {
        int t = thread_index();
        float *g = thread_grads + t * grad_count;
        backward_first_image(n, images + (long)b * SIDE0 * SIDE0 * 3, dd1 + (long)b * SIDE1 * SIDE1 * c0, g,
                             g + (long)PATCH * c0, thread_sums + (long)t * 2 * c0, work + t * per_thread);
    }
    float *reduced = calloc(grad_count, sizeof(float));
    reduce_threads(&s, threads, sums, reduced);
    for (long i = 0; i < (long)PATCH * c0; i++) grad_g[i] += reduced[i];
    for (long i = 0; i < (long)TAPS * c0; i++) grad_depthwise[i] += reduced[(long)PATCH * c0 + i];
    free(reduced);
}

/* ------------------------------------------------------- patch moments */

#define LAG_PAD 4
#define LAG_SIDE (SIDE0 + 2 * LAG_PAD)              /* 120 */
#define LAG_STRIDE ((LAG_SIDE + VEC + 15) / 16 * 16) /* row stride of the planar copy */
#define LAGS 9
static const int BORDER[4] = {0, 1, SIDE0 - 2, SIDE0 - 1};

/* Planar copy of one image padded by 4 with zeros: [3][120][LAG_STRIDE]. */
static void planar_image(const float *image, float *planar) {
    memset(planar, 0, sizeof(float) * 3 * LAG_SIDE * LAG_STRIDE);
    for (int u = 0; u < SIDE0; u++)
        for (int v = 0; v < SIDE0; v++)
            for (int c = 0; c < 3; c++)
                planar[((long)c * LAG_SIDE + u + LAG_PAD) * LAG_STRIDE + v + LAG_PAD] = image[(u * SIDE0 + v) * 3 + c];
}

static inline float pixel(const float *planar, int c, int u, int v) {
    return planar[((long)c * LAG_SIDE + u + LAG_PAD) * LAG_STRIDE + v + LAG_PAD];
}

/* totals[pair][ey][ex] += sum over the whole image of x_c[u][v] x_d[u+ey-4][v+ex-4]. */
static void lag_totals(const float *planar, double *totals) {
    for (int pair = 0; pair < 9; pair++) {
        int c = pair / 3, d = pair % 3;
        for (int ey = 0; ey < LAGS; ey++) {
            vd total[LAGS] = {{0}};
            vf acc[LAGS];
            for (int ex = 0; ex < LAGS; ex++) acc[ex] = (vf){0};
            for (int u = 0; u < SIDE0; u++) {
                const float *xc = planar + ((long)c * LAG_SIDE + u + LAG_PAD) * LAG_STRIDE + LAG_PAD;
                const float *xd = planar + ((long)d * LAG_SIDE + u + ey) * LAG_STRIDE;
                for (int v = 0; v < SIDE0; v += VEC) {
                    vf x = load(xc + v);
                    for (int ex = 0; ex < LAGS; ex++) acc[ex] += x * load(xd + v + ex);
                }
                if ((u & 7) == 7)
                    for (int ex = 0; ex < LAGS; ex++) {
                        total[ex] += __builtin_convertvector(acc[ex], vd);
                        acc[ex] = (vf){0};
                    }
            }
            for (int ex = 0; ex < LAGS; ex++) {
                total[ex] += __builtin_convertvector(acc[ex], vd);
                double sum = 0;
                for (int j = 0; j < VEC; j++) sum += total[ex][j];
                totals[(pair * LAGS + ey) * LAGS + ex] += sum;
            }
        }
    }
}

/* Border terms: rows[i][pair][ey][ex] (row BORDER[i], all columns), cols[i][...]
 * (column BORDER[i], all rows), corners[i][j][...] (row BORDER[i], column BORDER[j]). */
static void lag_borders(const float *planar, double *rows, double *cols, double *corners) {
    const int block = 9 * LAGS * LAGS;
    for (int pair = 0; pair < 9; pair++) {
        int c = pair / 3, d = pair % 3;
        for (int ey = 0; ey < LAGS; ey++)
            for (int ex = 0; ex < LAGS; ex++) {
                int at = (pair * LAGS + ey) * LAGS + ex;
                for (int i = 0; i < 4; i++) {
                    double row = 0, col = 0;
                    for (int v = 0; v < SIDE0; v++) {
                        row += (double)pixel(planar, c, BORDER[i], v) * pixel(planar, d, BORDER[i] + ey - 4, v + ex - 4);
                        col += (double)pixel(planar, c, v, BORDER[i]) * pixel(planar, d, v + ey - 4, BORDER[i] + ex - 4);
                    }
                    rows[i * block + at] += row;
                    cols[i * block + at] += col;
                    for (int j = 0; j < 4; j++)
                        corners[(i * 4 + j) * block + at] += (double)pixel(planar, c, BORDER[i], BORDER[j])
                            * pixel(planar, d, BORDER[i] + ey - 4, BORDER[j] + ex - 4);
                }
            }
    }
}

long train_lag_work_floats(void) { return 3L * LAG_SIDE * LAG_STRIDE + 64; }
long train_lag_sum_count(void) { return 9L * LAGS * LAGS * (1 + 4 + 4 + 16); }

/* What the patch moments of a batch are made of (see fast_train.py): out
 * holds totals [9][9][9], rows [4][9][9][9], cols [4][9][9][9], corners
 * [4][4][9][9][9], in that order, summed over the batch. */
void train_patch_lag_sums(const float *images, int batch, double *out, float *work, long per_thread,
                          double *thread_sums) {
    int threads = max_threads_count();
    long count = train_lag_sum_count(), block = 9L * LAGS * LAGS;
    scratch_t s = phase_scratch(work, per_thread, thread_sums, (int)count, NULL, 0);
#pragma omp parallel for schedule(dynamic, 1)
    for (int b = 0; b < batch; b++) {
        int t = thread_index();
        float *planar = work + t * per_thread;
        double *sums = thread_sums + t * count;
        planar_image(images + (long)b * SIDE0 * SIDE0 * 3, planar);
        lag_totals(planar, sums);
        lag_borders(planar, sums + block, sums + 5 * block, sums + 9 * block);
    }
    reduce_threads(&s, threads, out, NULL);
}
