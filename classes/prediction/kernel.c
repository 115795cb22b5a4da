/*
 * Folded compact models (and the trunks of shared compact models) on images,
 * one image at a time, in cache.
 *
 * Why this file exists: in TensorFlow every layer writes its whole output
 * before the next layer reads it. Layer 0's output (112 x 112 x K0 floats,
 * ~2.4 MB per image and model) does not fit in the cache, and on a 2-core
 * machine with ~6 GB/s of memory bandwidth writing it and reading it back
 * costs about as much as computing it. Here layer 0 is computed a few rows
 * at a time into a ring of 5 rows (by the Winograd algorithm F(4, 5) along
 * rows, kernel_layer0.h), and layer 1's stride-2 depthwise and pointwise
 * consume those rows while they are in cache; layers 2-4 (small) and the
 * readout follow on maps that fit in the L2 cache. Every map is a multiple
 * of 16 floats, so a workspace starting on a 64-byte boundary (the caller's
 * job) keeps every vector load within one cache line.
 *
 * Vectors are GCC vector extensions of VEC floats, so one source builds for
 * AVX-512 (VEC 16), AVX2 (VEC 8) and any other target (VEC 4: SSE on
 * baseline x86-64, NEON on aarch64); see classes/runtime/native.py, whose
 * `contract` option (-ffp-contract=fast) makes the multiply-adds FMAs.
 *
 * Layout: channels last; every channel count is padded to a multiple of VEC
 * with zero weights and biases, so padded channels stay exactly zero through
 * the layers. Activation maps carry a zero border of 2 pixels on every side,
 * which gives the "same" padding of both the stride-1 (2 before, 2 after)
 * and the stride-2 (1 before, 2 after) depthwise convolutions without
 * bounds checks.
 *
 * Readouts: a compact model's (one response: the dot product of layer 4 with
 * a 28 x 28 x K4 map, plus a bias) or a shared compact model's (a 1x1 mixing
 * to `outputs` channels, then a 28 x 28 spatial pool per output; the mixing
 * bias is folded into the output bias by the caller).
 *
 * Layer activity: compact_activity also copies each layer's activity at
 * chosen spatial positions out of the maps it computes anyway (layer 0's as
 * each row enters the ring), so script7's CKA never needs a whole layer-0
 * map (classes/prediction/activity.py).
 *
 * The caller (classes/prediction/kernel.py) lays out the weights and calls
 * compact_predict or compact_activity from several threads (ctypes releases
 * the GIL). The register blocks of each layer are in kernel_blocks.h, included
 * below.
 */
#include <string.h>

#include "vectors.h"

/* Register blocks: accumulators + weight vectors + one broadcast must fit the
 * register file (32 vector registers with AVX-512 and on aarch64, 16 with
 * AVX2 and SSE). With 32, the depthwise keeps its 25 weight vectors in
 * registers; with 16, DW_PIXELS outputs share each weight load instead. */
#if defined(__AVX512F__) || defined(__aarch64__)
#define REGISTERS 32
#define L0_TILES 7      /* layer 0: 7 tiles x 3 vectors = 21 accumulators + 3 + 1 (7 divides 28 tiles) */
#define L0_VECTORS 3
#define PW_PIXELS 7     /* pointwise: 7 pixels (divides 56, 28, 784) x 3 vectors = 21 + 3 + 1 */
#define PW_VECTORS 3
#else
#define REGISTERS 16
#define L0_TILES 4      /* 4 x 3 = 12 accumulators + 3 + 1 = 16 */
#define L0_VECTORS 3
#define PW_PIXELS 4
#define PW_VECTORS 3
#endif
#define DW_PIXELS 4     /* depthwise: output pixels per block (56 and 28 are multiples) */
#define BORDER 2
#define SIDE0 112
#define PADDED_IMAGE (SIDE0 + 4)
#define POOL_PIXELS (28 * 28)

static inline vf activate(vf x, int use_relu) { return use_relu ? relu(x) : x; }
static inline float lane_sum(vf x)
{
    float total = 0.0f;
    for (int lane = 0; lane < VEC; lane++) total += x[lane];
    return total;
}

typedef struct {
    int channels[5];              /* padded K0..K4, multiples of VEC */
    int relu;                     /* 0: a linear network (no ReLU after any layer) */
    int outputs;                  /* responses per image (1 for a compact model) */
    const float *kernel0;         /* (8, 5, 3, K0): row filters transformed, U[t][dy][ci] (kernel_layer0.h) */
    const float *bias0;           /* (K0) */
    const float *depthwise[4];    /* (25, K_{i-1}) */
    const float *pointwise[4];    /* (K_{i-1}, K_i) */
    const float *bias[4];         /* (K_i) */
    const float *readout;         /* compact: (28, 28, K4); shared: NULL */
    const float *mixing;          /* shared: (K4, O), O = outputs padded to VEC; compact: NULL */
    const float *pool;            /* shared: (28 * 28, O) */
    const float *output_bias;     /* (outputs) */
    const float *input_transform; /* (8, 8): BT of kernel_layer0.h */
} compact_model_t;

/* Where compact_activity writes one layer's activity: at `count` positions
 * (flat indices row * side + column, increasing), the layer's first
 * `channels` (unpadded) filters; image n, position p, filter k goes to
 * features[n * stride + p * channels + k]. */
typedef struct {
    const long *positions;        /* NULL: the layer is not written */
    int count;
    int channels;
    float *features;
    long stride;
} layer_sample_t;

int kernel_vector_width(void) { return VEC; }

#include "kernel_blocks.h"
#include "kernel_layer0.h"

static int widest(const int channels[5])  /* of K0..K3, the depthwise inputs */
{
    int most = channels[0];
    for (int i = 1; i < 4; i++) most = channels[i] > most ? channels[i] : most;
    return most;
}

static long padded_outputs(const compact_model_t *model)
{
    return model->mixing ? (model->outputs + VEC - 1) / VEC * VEC : 0;
}

/* Floats of workspace compact_predict needs for this model. */
long compact_workspace_floats(const compact_model_t *model)
{
    const int *k = model->channels;
    long total = LAYER0_FLOATS;
    total += 5L * (SIDE0 + 2 * BORDER) * k[0];                  /* ring of layer-0 rows */
    total += 56L * widest(k);                                   /* one depthwise row */
    total += (56L + 2 * BORDER) * (56 + 2 * BORDER) * k[1];     /* layer 1 */
    total += (28L + 2 * BORDER) * (28 + 2 * BORDER) * k[2];     /* layer 2 */
    total += (28L + 2 * BORDER) * (28 + 2 * BORDER) * k[3];     /* layer 3 */
    total += (long)POOL_PIXELS * k[4];                          /* layer 4 */
    return total + padded_outputs(model);                       /* readout totals */
}

/* Copies the sampled positions of map rows [first_row, last_row] (row r starting at
 * rows + r * row_floats, pixel q at + q * pixel_floats) into image n's features;
 * *cursor walks the sorted positions. */
static void sample_rows(const layer_sample_t *sample, int side, int first_row, int last_row, const float *rows,
                        long row_floats, long pixel_floats, int *cursor, long n)
{
    if (sample == NULL || sample->positions == NULL) return;
    float *destination = sample->features + n * sample->stride;
    for (; *cursor < sample->count; (*cursor)++) {
        const long position = sample->positions[*cursor];
        const long row = position / side;
        if (row > last_row) return;
        if (row < first_row) continue;
        const float *source = rows + (row - first_row) * row_floats + (position % side) * pixel_floats;
        memcpy(destination + (long)*cursor * sample->channels, source, sample->channels * sizeof(float));
    }
}

/* Layer 0's workspace for one image: the image planes, the ring of transformed rows (filled up to
 * padded row `transformed` - 1) and the products of one block (kernel_layer0.h). */
typedef struct {
    const float *planes;
    float *transforms;
    float *products;
    int transformed;
} layer0_state_t;

/* Layer-0 row j into `slot`: first the input transforms of the padded image rows it needs (up to j + 4). */
static void next_layer0_row(const compact_model_t *model, layer0_state_t *state, int j, float *slot)
{
    for (; state->transformed <= j + 4; state->transformed++)
        transform_row(state->planes, model->input_transform, state->transformed, state->transforms);
    layer0_row(state->transforms, model, j, state->products, slot);
}

/* Layers 0 and 1 of one image (its planes in `state`): layer 0 row by row through the ring;
 * sample0 (or NULL) takes layer 0's sampled positions, image n, as each row is made. */
static void first_layers(const compact_model_t *model, layer0_state_t *state, float *ring, float *scratch,
                         float *layer1, const layer_sample_t *sample0, long n)
{
    int cursor = 0;
    const int *k = model->channels;
    const long ring_row = (long)(SIDE0 + 2 * BORDER) * k[0];
    const int layer1_width = 56 + 2 * BORDER;
    /* Layer-0 row j lives in ring slot (j + 1) % 5; rows -1, 112 and 113 are zero. */
    memset(ring, 0, ring_row * sizeof(float));
    state->transformed = 0;
    for (int j = 0; j < 3; j++) {
        next_layer0_row(model, state, j, ring + (j + 1) * ring_row);
        sample_rows(sample0, SIDE0, j, j, ring + (j + 1) * ring_row + BORDER * k[0], 0, k[0], &cursor, n);
    }
    for (int r = 0; r < 56; r++) {
        for (int j = 2 * r + 2; j <= 2 * r + 3; j++) {
            float *slot = ring + ((j + 1) % 5) * ring_row;
            if (j < SIDE0) {
                next_layer0_row(model, state, j, slot);
                sample_rows(sample0, SIDE0, j, j, slot + BORDER * k[0], 0, k[0], &cursor, n);
            } else {
                memset(slot, 0, ring_row * sizeof(float));
            }
        }
        const float *rows[5];
        for (int dy = 0; dy < 5; dy++) rows[dy] = ring + ((2 * r - 1 + dy + 1) % 5) * ring_row;
        /* rows carry a border of 2; a stride-2 window starts 1 before column 2q. */
        depthwise_row(rows, k[0], 2, 56, model->depthwise[0], scratch);
        pointwise_row(scratch, 56, k[0], k[1], model->pointwise[0], model->bias[0],
                      layer1 + ((long)(r + BORDER) * layer1_width + BORDER) * k[1], NULL, model->relu);
    }
}

/* The responses of one image from its layer-4 map (28 x 28 x K4, no border). */
static void readout(const compact_model_t *model, const float *layer4, float *totals, float *responses,
                    long response_stride)
{
    const int channels = model->channels[4];
    if (model->mixing == NULL) {
        vf sum = {0};
        for (long i = 0; i < (long)POOL_PIXELS * channels; i += VEC)
            sum += load(layer4 + i) * load(model->readout + i);
        responses[0] = lane_sum(sum) + model->output_bias[0];
        return;
    }
    const long outputs = padded_outputs(model);
    memset(totals, 0, outputs * sizeof(float));
    pointwise_row(layer4, POOL_PIXELS, channels, (int)outputs, model->mixing, NULL, totals, model->pool, 0);
    for (int o = 0; o < model->outputs; o++) responses[o * response_stride] = totals[o] + model->output_bias[o];
}

/* The sampled positions of a whole map (side x side, `border` pixels around it) for image n. */
static void sample_map(const layer_sample_t *sample, const float *map, int side, int border, int channels, long n)
{
    const long width = side + 2 * border;
    int cursor = 0;
    sample_rows(sample, side, 0, side - 1, map + (border * width + border) * channels, width * channels, channels,
                &cursor, n);
}

/*
 * Responses of one model to `count` recentred images (count, 112, 112, 3):
 * response o of image n goes to responses[o * response_stride + n]; with
 * samples (else NULL), layer l's activity at samples[l]'s positions too.
 * workspace: compact_workspace_floats(model) floats, any content.
 */
void compact_activity(const compact_model_t *model, const float *images, int count, float *workspace,
                      const layer_sample_t *samples, float *responses, long response_stride)
{
    const int *k = model->channels;
    memset(workspace, 0, compact_workspace_floats(model) * sizeof(float));
    float *planes = workspace;
    float *ring = planes + LAYER0_FLOATS;
    float *scratch = ring + 5L * (SIDE0 + 2 * BORDER) * k[0];
    float *layer1 = scratch + 56L * widest(k);
    float *layer2 = layer1 + (56L + 2 * BORDER) * (56 + 2 * BORDER) * k[1];
    float *layer3 = layer2 + (28L + 2 * BORDER) * (28 + 2 * BORDER) * k[2];
    float *layer4 = layer3 + (28L + 2 * BORDER) * (28 + 2 * BORDER) * k[3];
    float *totals = layer4 + (long)POOL_PIXELS * k[4];
    float *transforms = planes + (long)PADDED_IMAGE * PLANE_ROW;
    layer0_state_t state = {planes, transforms, transforms + (long)TRANSFORM_SLOTS * TRANSFORM_SLOT, 0};
    for (int n = 0; n < count; n++) {
        image_to_planes(images + (long)n * SIDE0 * SIDE0 * 3, planes);
        first_layers(model, &state, ring, scratch, layer1, samples, n);
        separable_layer(layer1, 56, k[1], 2, model->depthwise[1], model->pointwise[1], model->bias[1], k[2],
                        layer2, BORDER, scratch, model->relu);
        separable_layer(layer2, 28, k[2], 1, model->depthwise[2], model->pointwise[2], model->bias[2], k[3],
                        layer3, BORDER, scratch, model->relu);
        separable_layer(layer3, 28, k[3], 1, model->depthwise[3], model->pointwise[3], model->bias[3], k[4],
                        layer4, 0, scratch, model->relu);
        if (samples) {
            sample_map(samples + 1, layer1, 56, BORDER, k[1], n);
            sample_map(samples + 2, layer2, 28, BORDER, k[2], n);
            sample_map(samples + 3, layer3, 28, BORDER, k[3], n);
            sample_map(samples + 4, layer4, 28, 0, k[4], n);
        }
        readout(model, layer4, totals, responses + n, response_stride);
    }
}

/* compact_activity without samples: the responses only. */
void compact_predict(const compact_model_t *model, const float *images, int count, float *workspace,
                     float *responses, long response_stride)
{
    compact_activity(model, images, count, workspace, NULL, responses, response_stride);
}
