/* One training step of a compact model (SPEC section 2) on a CPU, for the
 * distillation of 100-filter students.
 *
 * The step is split into phases that Python (classes/training/kernel_step.py)
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
 *   gradient (see kernel_step.py and patch_moments.py), so its backward is one pass: G = sum over
 *   positions of patch x dy.
 *
 * Channels are padded to a multiple of VEC floats with zeros; padded
 * channels have zero weights, zero scale and shift, and stay zero.
 * Vectors are GCC vector extensions, so the same source builds for
 * AVX-512 (VEC 16), AVX2 (VEC 8) or any other target.
 *
 * Parts: this file (the network, the forward and backward phases) includes
 * train_blocks.h (register blocks of each layer and their gradients) and
 * train_sums.h (batch sums, per-image scratch, patch lag sums).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "vectors.h"

#if VEC >= 16
#define PIXELS 8   /* pixels per register block of layer 0 (x up to 3 channel vectors) */
#define ROWS 8     /* rows per register block of the pointwise products (x up to 3 vectors) */
#define KTILE 5    /* patch entries per block of layer 0's gradient (x up to 4 vectors) */
#define GTILE 8    /* rows of a weight gradient per register block (x up to 3 vectors) */
#define GRAD_GROUP 4
#else
#define PIXELS 4
#define ROWS 4
#define KTILE 5
#define GTILE 4
#define GRAD_GROUP 2
#endif
#define GROUP 3    /* channel vectors per register block */
#define CHUNK 128  /* positions per chunk of a weight gradient (kept in L2) */

#define SIDE0 112
#define SIDE1 56
#define SIDE2 28
#define PADDED 116          /* layer-0 input padded by 2 on each side */
#define TAPS 25
#define PATCH 75
#define RING 8              /* rows of layer-0 activity kept for layer 1 */


/* Channel vectors split into nearly equal groups of at most `largest`:
 * 7 vectors -> 3, 2, 2 rather than 3, 3, 1 (a one-vector block runs slowly). */
static inline int group_count(int vectors, int largest) { return (vectors + largest - 1) / largest; }
static inline int group_size(int vectors, int largest, int index) {
    int groups = group_count(vectors, largest);
    return vectors / groups + (index < vectors % groups);
}
static inline int group_first(int vectors, int largest, int index) {
    int first = 0;
    for (int i = 0; i < index; i++) first += group_size(vectors, largest, i);
    return first;
}

int train_vector_width(void) { return VEC; }

int train_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
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
    int threads;                     /* OpenMP threads of every phase */
} network_t;

#include "train_blocks.h"
#include "train_sums.h"

/* --------------------------------------------------------------- forward */

/* Layer 0, then layer 1's depthwise (d1) and pointwise (z1) of one image.
 * a0 rows live in a ring of RING padded rows (zero borders), with one
 * all-zero row standing for the rows outside the image. */
static void forward_first_image(const network_t *n, const float *image, float *d1, float *z1, float *work) {
    int c0 = n->channels[0], width = SIDE0 + 2 * MARGIN;
    float *padded = work, *ring = padded + PADDED * PADDED * 3, *zero = ring + (long)RING * width * c0;
    pad_image(image, padded);
    memset(ring, 0, sizeof(float) * (long)(RING + 1) * width * c0);
    int done = 0; /* a0 rows computed so far */
    for (int q = 0; q < SIDE1; q++) {
        int need = 2 * q + 3 < SIDE0 ? 2 * q + 3 : SIDE0 - 1;
        while (done <= need) {
            float *row = ring + (long)(done % RING) * width * c0 + MARGIN * c0;
            conv0_row(padded, n->kernel0, c0, done, row);
            activate_row(row, c0, n->scale[0], n->shift[0], SIDE0);
            done++;
        }
        const float *rows[5];
        for (int ky = 0; ky < 5; ky++) {
            int y = 2 * q - 1 + ky;
            rows[ky] = (y >= 0 && y < SIDE0) ? ring + (long)(y % RING) * width * c0 : zero;
        }
        depthwise_row(rows, n->depthwise[0], c0, 2, d1 + (long)q * SIDE1 * c0, SIDE1);
    }
    product(d1, n->pointwise[0], n->bias[0], (long)SIDE1 * SIDE1, c0, n->channels[1], z1);
}

long train_first_work_floats(int c0) {
    return (long)PADDED * PADDED * 3 + (long)(RING + 1) * (SIDE0 + 2 * MARGIN) * c0 + 64;
}

void train_forward_first(const network_t *n, const float *images, int batch, float *d1, float *z1,
                         double *sums1, float *work, long per_thread, double *image_sums) {
    int c0 = n->channels[0], c1 = n->channels[1];
    scratch_t s = phase_scratch(work, per_thread, image_sums, 2 * c1, NULL, 0, batch, n->threads);
#pragma omp parallel for schedule(dynamic, 1) num_threads(n->threads)
    for (int b = 0; b < batch; b++) {
        int t = thread_index();
        long plane = (long)SIDE1 * SIDE1;
        forward_first_image(n, images + (long)b * SIDE0 * SIDE0 * 3, d1 + b * plane * c0, z1 + b * plane * c1,
                            work + t * per_thread);
        add_moments(z1 + b * plane * c1, NULL, plane, c1, image_sums + (long)b * 2 * c1);
    }
    reduce_images(&s, batch, sums1, NULL);
}

static const int SIDES[5] = {SIDE0, SIDE1, SIDE2, SIDE2, SIDE2};
static const int STRIDES[5] = {1, 2, 2, 1, 1};

/* relu(scale * z + shift) of a whole map into out. */
static void activate_map(const float *z, long count, int channels, const float *scale, const float *shift,
                         float *out) {
    for (long i = 0; i < count; i++)
        for (int c = 0; c < channels; c += VEC)
            store(out + i * channels + c, relu(load(z + i * channels + c) * load(scale + c) + load(shift + c)));
}

/* relu(scale * z + shift) of a map [side^2][C] into a zero-padded map [(side+4)^2][C]. */
static void activate_padded(const float *z, int side, int channels, const float *scale, const float *shift,
                            float *padded) {
    int width = side + 2 * MARGIN;
    memset(padded, 0, sizeof(float) * (long)width * width * channels);
    for (int y = 0; y < side; y++)
        activate_map(z + (long)y * side * channels, side, channels, scale, shift,
                     padded + ((long)(y + MARGIN) * width + MARGIN) * channels);
}

static long padded_floats(int side, int channels) { return (long)(side + 2 * MARGIN) * (side + 2 * MARGIN) * channels; }

/* Layers 2-4: a_{l-1} from z_{l-1}, then depthwise (d_l) and pointwise (z_l). */
void train_forward_separable(const network_t *n, int layer, int batch, const float *z_previous, float *d,
                             float *z, double *sums, float *work, long per_thread, double *image_sums) {
    int cp = n->channels[layer - 1], c = n->channels[layer];
    long in_plane = (long)SIDES[layer - 1] * SIDES[layer - 1], plane = (long)SIDES[layer] * SIDES[layer];
    scratch_t s = phase_scratch(work, per_thread, image_sums, 2 * c, NULL, 0, batch, n->threads);
#pragma omp parallel for schedule(dynamic, 1) num_threads(n->threads)
    for (int b = 0; b < batch; b++) {
        int t = thread_index();
        float *a = work + t * per_thread;
        activate_padded(z_previous + b * in_plane * cp, SIDES[layer - 1], cp, n->scale[layer - 1], n->shift[layer - 1], a);
        depthwise_map(a, n->depthwise[layer - 1], cp, SIDES[layer - 1], STRIDES[layer], d + b * plane * cp);
        product(d + b * plane * cp, n->pointwise[layer - 1], n->bias[layer - 1], plane, cp, c, z + b * plane * c);
        add_moments(z + b * plane * c, NULL, plane, c, image_sums + (long)b * 2 * c);
    }
    reduce_images(&s, batch, sums, NULL);
}

/* outputs[b] = sum relu(scale4 * z4 + shift4) * readout + readout_bias. */
void train_forward_readout(const network_t *n, int batch, const float *z4, float *outputs) {
    int c = n->channels[4];
    long plane = (long)SIDE2 * SIDE2;
#pragma omp parallel for schedule(static) num_threads(n->threads)
    for (int b = 0; b < batch; b++) {
        vd total = {0};
        for (long i = 0; i < plane; i++) {
            vf acc = {0};
            for (int k = 0; k < c; k += VEC) {
                vf a = relu(load(z4 + (b * plane + i) * c + k) * load(n->scale[4] + k) + load(n->shift[4] + k));
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
 * d loss / d (BN output of layer 4) after the ReLU, with sums of dy4 and dy4 * z4.
 * The readout's gradient, sum over images of d_output * a4, is summed in image
 * order per element (deterministic without a per-image copy of it). */
void train_backward_readout(const network_t *n, int batch, const float *z4, const float *d_outputs,
                            float *grad_readout, float *dy4, double *sums, float *work, long per_thread,
                            double *image_sums, float *image_grads) {
    int c = n->channels[4];
    long plane = (long)SIDE2 * SIDE2;
    (void)image_grads;
    scratch_t s = phase_scratch(work, per_thread, image_sums, 2 * c, NULL, 0, batch, n->threads);
#pragma omp parallel for schedule(dynamic, 1) num_threads(n->threads)
    for (int b = 0; b < batch; b++) {
        vf dout = splat(d_outputs[b]);
        for (long i = 0; i < plane; i++)
            for (int k = 0; k < c; k += VEC) {
                long at = (b * plane + i) * c + k;
                vf a = relu(load(z4 + at) * load(n->scale[4] + k) + load(n->shift[4] + k));
                store(dy4 + at, select_positive(a, dout * load(n->readout + i * c + k)));
            }
        add_moments(dy4 + b * plane * c, z4 + b * plane * c, plane, c, image_sums + (long)b * 2 * c);
    }
    reduce_images(&s, batch, sums, NULL);
#pragma omp parallel for schedule(static) num_threads(n->threads)
    for (long i = 0; i < plane; i++)
        for (int k = 0; k < c; k += VEC) {
            vf total = load(grad_readout + i * c + k);
            for (int b = 0; b < batch; b++) {
                vf a = relu(load(z4 + (b * plane + i) * c + k) * load(n->scale[4] + k) + load(n->shift[4] + k));
                total += splat(d_outputs[b]) * a;
            }
            store(grad_readout + i * c + k, total);
        }
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
    if (layer >= 2)                                      /* padded a_{l-1}, padded dd, da_{l-1} */
        floats += padded_floats(SIDES[layer - 1], cp) + padded_floats(SIDES[layer], cp) + in_plane * cp;
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
                              double *image_sums, float *image_grads) {
    int cp = n->channels[layer - 1], c = n->channels[layer];
    long plane = (long)SIDES[layer] * SIDES[layer], in_plane = (long)SIDES[layer - 1] * SIDES[layer - 1];
    long grad_count = (long)cp * c + c + TAPS * cp;
    scratch_t s = phase_scratch(work, per_thread, image_sums, 2 * cp, image_grads, grad_count, batch, n->threads);
#pragma omp parallel for schedule(dynamic, 1) num_threads(n->threads)
    for (int b = 0; b < batch; b++) {
        int t = thread_index();
        float *g = image_grads + (long)b * grad_count, *dz = work + t * per_thread, *dd = dz + plane * c;
        batch_norm_backward(dy + b * plane * c, z + b * plane * c, plane, c, n->scale[layer], u, w, dz);
        add_column_sums(dz, plane, c, g + (long)cp * c);
        product_gradient(d + b * plane * cp, dz, plane, cp, c, g);
        if (layer == 1) dd = dd_first + b * plane * cp;
        product(dz, n->pointwise_t[layer - 1], NULL, plane, c, cp, dd);
        if (layer == 1) continue;
        int side = SIDES[layer - 1], out_side = SIDES[layer];
        float *a = dd + plane * cp, *dd_padded = a + padded_floats(side, cp), *da = dd_padded + padded_floats(out_side, cp);
        activate_padded(z_previous + b * in_plane * cp, side, cp, n->scale[layer - 1], n->shift[layer - 1], a);
        depthwise_kernel_gradient(a, dd, cp, side, STRIDES[layer], g + (long)cp * c + c);
        pad_map(dd, out_side, cp, dd_padded);
        depthwise_input_gradient(dd_padded, n->depthwise[layer - 1], cp, side, STRIDES[layer], da);
        float *out = dy_previous + b * in_plane * cp;
        for (int y = 0; y < side; y++) {
            const float *ay = a + ((long)(y + MARGIN) * (side + 2 * MARGIN) + MARGIN) * cp;
            for (long i = 0; i < (long)side * cp; i += VEC)
                store(out + y * side * cp + i, select_positive(load(ay + i), load(da + y * side * cp + i)));
        }
        add_moments(out, z_previous + b * in_plane * cp, in_plane, cp, image_sums + (long)b * 2 * cp);
    }
    float *reduced = calloc(grad_count, sizeof(float));
    reduce_images(&s, batch, layer == 1 ? NULL : sums_previous, reduced);
    for (long i = 0; i < (long)cp * c; i++) grad_pointwise[i] += reduced[i];
    for (int i = 0; i < c; i++) grad_bias[i] += reduced[(long)cp * c + i];
    if (layer >= 2)
        for (long i = 0; i < (long)TAPS * cp; i++) grad_depthwise[i] += reduced[(long)cp * c + c + i];
    free(reduced);
}

/* Layer 0 backward for one image, two rows at a time: recompute z0 and a0,
 * da0 from dd1 (padded), dy0 = da0 where a0 > 0; add patch^T dy0 into G, layer
 * 1's depthwise kernel gradient, and sums of dy0 and dy0 * z0. */
static void backward_first_image(const network_t *n, const float *image, const float *dd1, float *grad_g,
                                 float *grad_depthwise, double *sums, float *work) {
    int c0 = n->channels[0], width = SIDE0 + 2 * MARGIN;
    float *padded = work, *dd_padded = padded + PADDED * PADDED * 3;
    float *z = dd_padded + padded_floats(SIDE1, c0), *a = z + 2L * SIDE0 * c0, *dy = a + 2L * width * c0;
    pad_image(image, padded);
    pad_map(dd1, SIDE1, c0, dd_padded);
    memset(a, 0, sizeof(float) * 2L * width * c0);
    for (int y = 0; y < SIDE0; y += 2) {
        for (int r = 0; r < 2; r++) {
            float *zr = z + (long)r * SIDE0 * c0, *ar = a + (long)r * width * c0, *dyr = dy + (long)r * SIDE0 * c0;
            conv0_row(padded, n->kernel0, c0, y + r, zr);
            activate_map(zr, SIDE0, c0, n->scale[0], n->shift[0], ar + MARGIN * c0);
            depthwise_input_gradient_row(dd_padded, n->depthwise[0], c0, SIDE0, 2, y + r, dyr);
            for (long i = 0; i < (long)SIDE0 * c0; i += VEC)
                store(dyr + i, select_positive(load(ar + MARGIN * c0 + i), load(dyr + i)));
            for (int ky = (y + r + 1) & 1; ky < 5; ky += 2) { /* output rows q with 2q - 1 + ky = y + r */
                int q = (y + r + 1 - ky) / 2;
                if (q >= 0 && q < SIDE1)
                    depthwise_kernel_gradient_tap_row(ar, dd1 + (long)q * SIDE1 * c0, c0, 2, SIDE1, ky, grad_depthwise);
            }
        }
        add_moments(dy, z, 2L * SIDE0, c0, sums);
        conv0_gradient_rows(padded, dy, c0, y, 2, grad_g);
    }
}

long train_backward_first_work_floats(int c0) {
    return (long)PADDED * PADDED * 3 + padded_floats(SIDE1, c0) + 2L * SIDE0 * c0 + 2L * (SIDE0 + 2 * MARGIN) * c0
         + 2L * SIDE0 * c0 + 64;
}

void train_backward_first(const network_t *n, const float *images, int batch, const float *dd1, float *grad_g,
                          float *grad_depthwise, double *sums, float *work, long per_thread, double *image_sums,
                          float *image_grads) {
    int c0 = n->channels[0];
    long grad_count = (long)PATCH * c0 + TAPS * c0;
    scratch_t s = phase_scratch(work, per_thread, image_sums, 2 * c0, image_grads, grad_count, batch, n->threads);
#pragma omp parallel for schedule(dynamic, 1) num_threads(n->threads)
    for (int b = 0; b < batch; b++) {
        int t = thread_index();
        float *g = image_grads + (long)b * grad_count;
        backward_first_image(n, images + (long)b * SIDE0 * SIDE0 * 3, dd1 + (long)b * SIDE1 * SIDE1 * c0, g,
                             g + (long)PATCH * c0, image_sums + (long)b * 2 * c0, work + t * per_thread);
    }
    float *reduced = calloc(grad_count, sizeof(float));
    reduce_images(&s, batch, sums, reduced);
    for (long i = 0; i < (long)PATCH * c0; i++) grad_g[i] += reduced[i];
    for (long i = 0; i < (long)TAPS * c0; i++) grad_depthwise[i] += reduced[(long)PATCH * c0 + i];
    free(reduced);
}
