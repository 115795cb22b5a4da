/*
 * One folded compact model on images, one image at a time, in cache.
 *
 * Why this file exists: in TensorFlow every layer writes its whole output
 * before the next layer reads it. Layer 0's output (112 x 112 x K0 floats,
 * ~2.4 MB per image and model) does not fit in the cache, and on a 2-core
 * machine with ~6 GB/s of memory bandwidth writing it and reading it back
 * costs about as much as computing it. Here layer 0 is computed a few rows
 * at a time into a ring of 5 rows, and layer 1's stride-2 depthwise and
 * pointwise consume those rows while they are in cache; layers 2-4 (small)
 * and the readout follow on maps that fit in the L2 cache.
 *
 * Layout: channels last; every channel count is padded to a multiple of 16
 * (one AVX-512 vector) with zero weights and biases, so padded channels stay
 * exactly zero through the ReLUs. Activation maps carry a zero border of 2
 * pixels on every side, which gives the "same" padding of both the stride-1
 * (2 before, 2 after) and the stride-2 (1 before, 2 after) depthwise
 * convolutions without bounds checks.
 *
 * The caller (classes/prediction/kernel.py) checks the CPU (AVX-512F and FMA),
 * lays out the weights and calls compact_predict from several threads
 * (ctypes releases the GIL), each with its own workspace.
 */
#include <immintrin.h>
#include <string.h>

#define LANES 16
#define BORDER 2
#define SIDE0 112
#define PADDED_IMAGE (SIDE0 + 4)
#define PIXEL_BLOCK 8

typedef struct {
    int channels[5];              /* padded K0..K4, multiples of 16 */
    const float *kernel0;         /* (75, K0): tap (dy*5+dx)*3+ci */
    const float *bias0;           /* (K0) */
    const float *depthwise[4];    /* (25, K_{i-1}) */
    const float *pointwise[4];    /* (K_{i-1}, K_i) */
    const float *bias[4];         /* (K_i) */
    const float *readout;         /* (28, 28, K4) */
    float readout_bias;
} compact_model_t;

static inline __m512 relu(__m512 value) { return _mm512_max_ps(value, _mm512_setzero_ps()); }

/* Layer 0 for PIXEL_BLOCK pixels of one row and `vectors` (1-3) channel vectors. */
static inline __attribute__((always_inline)) void layer0_block(
    const float *source, const int *tap_offsets, const float *kernel, int kernel_stride,
    const float *bias, float *destination, int destination_stride, int vectors)
{
    __m512 sums[PIXEL_BLOCK][3];
    for (int v = 0; v < vectors; v++) {
        __m512 b = _mm512_loadu_ps(bias + v * LANES);
        for (int p = 0; p < PIXEL_BLOCK; p++) sums[p][v] = b;
    }
    for (int tap = 0; tap < 75; tap++) {
        const float *input = source + tap_offsets[tap];
        const float *weights = kernel + tap * kernel_stride;
        __m512 w[3];
        for (int v = 0; v < vectors; v++) w[v] = _mm512_loadu_ps(weights + v * LANES);
        for (int p = 0; p < PIXEL_BLOCK; p++) {
            __m512 x = _mm512_set1_ps(input[3 * p]);
            for (int v = 0; v < vectors; v++) sums[p][v] = _mm512_fmadd_ps(x, w[v], sums[p][v]);
        }
    }
    for (int p = 0; p < PIXEL_BLOCK; p++)
        for (int v = 0; v < vectors; v++)
            _mm512_storeu_ps(destination + p * destination_stride + v * LANES, relu(sums[p][v]));
}

/* One row (y) of layer 0 into `row` (width SIDE0 + 2*BORDER, border left zero). */
static void layer0_row(const float *image, const int *tap_offsets, const compact_model_t *model,
                       int y, float *row)
{
    const int channels = model->channels[0];
    const float *source_row = image + y * PADDED_IMAGE * 3;
    for (int start = 0; start < channels; ) {
        /* Blocks of 3 vectors (24 accumulators); 4 left over go as 2 + 2, not 3 + 1. */
        const int left = (channels - start) / LANES;
        const int vectors = left == 4 ? 2 : (left >= 3 ? 3 : left);
        for (int x = 0; x < SIDE0; x += PIXEL_BLOCK) {
            const float *source = source_row + x * 3;
            float *destination = row + (x + BORDER) * channels + start;
            const float *kernel = model->kernel0 + start;
            const float *bias = model->bias0 + start;
            if (vectors == 3)
                layer0_block(source, tap_offsets, kernel, channels, bias, destination, channels, 3);
            else if (vectors == 2)
                layer0_block(source, tap_offsets, kernel, channels, bias, destination, channels, 2);
            else
                layer0_block(source, tap_offsets, kernel, channels, bias, destination, channels, 1);
        }
        start += vectors * LANES;
    }
}

/* Depthwise 5x5 of one output row: rows[dy] point at the 5 input rows (with border). */
static void depthwise_row(const float *const rows[5], int channels, int stride, int width,
                          const float *kernel, float *output)
{
    const int offset = stride == 2 ? 1 : 0; /* border 2 minus the "same" padding before */
    for (int c = 0; c < channels; c += LANES) {
        /* The 25 weight vectors stay in registers: one load per multiply-add. */
        __m512 weights[25];
        for (int tap = 0; tap < 25; tap++) weights[tap] = _mm512_loadu_ps(kernel + tap * channels + c);
        for (int q = 0; q < width; q++) {
            const long column = (long)(stride * q + offset) * channels + c;
            __m512 sum = _mm512_setzero_ps();
            for (int dy = 0; dy < 5; dy++)
                for (int dx = 0; dx < 5; dx++)
                    sum = _mm512_fmadd_ps(_mm512_loadu_ps(rows[dy] + column + dx * channels),
                                          weights[dy * 5 + dx], sum);
            _mm512_storeu_ps(output + q * channels + c, sum);
        }
    }
}

/* relu(bias + input @ kernel) for PIXELS pixels and `vectors` (1-4) output vectors. */
static inline __attribute__((always_inline)) void pointwise_block(
    const float *input, int inputs, int outputs, const float *kernel, const float *bias,
    float *output, int pixels, int vectors)
{
    __m512 sums[6][4];
    for (int v = 0; v < vectors; v++) {
        const __m512 b = _mm512_loadu_ps(bias + v * LANES);
        for (int p = 0; p < pixels; p++) sums[p][v] = b;
    }
    for (int c = 0; c < inputs; c++) {
        __m512 w[4];
        for (int v = 0; v < vectors; v++) w[v] = _mm512_loadu_ps(kernel + c * outputs + v * LANES);
        for (int p = 0; p < pixels; p++) {
            const __m512 x = _mm512_set1_ps(input[p * inputs + c]);
            for (int v = 0; v < vectors; v++) sums[p][v] = _mm512_fmadd_ps(x, w[v], sums[p][v]);
        }
    }
    for (int p = 0; p < pixels; p++)
        for (int v = 0; v < vectors; v++)
            _mm512_storeu_ps(output + p * outputs + v * LANES, relu(sums[p][v]));
}

#define POINTWISE_CASE(VECTORS)                                                              \
    for (q = 0; q + 6 <= width; q += 6)                                                        \
        pointwise_block(input + q * inputs, inputs, outputs, kernel + o, bias + o,             \
                        output + q * outputs + o, 6, VECTORS);                                 \
    for (; q < width; q++)                                                                     \
        pointwise_block(input + q * inputs, inputs, outputs, kernel + o, bias + o,             \
                        output + q * outputs + o, 1, VECTORS);

/* output[q] = relu(bias + input[q] @ kernel) for `width` pixels. */
static void pointwise_row(const float *input, int width, int inputs, int outputs,
                          const float *kernel, const float *bias, float *output)
{
    for (int o = 0; o < outputs; ) {
        const int vectors = (outputs - o) / LANES >= 4 ? 4 : (outputs - o) / LANES;
        int q;
        switch (vectors) {
        case 4: POINTWISE_CASE(4) break;
        case 3: POINTWISE_CASE(3) break;
        case 2: POINTWISE_CASE(2) break;
        default: POINTWISE_CASE(1) break;
        }
        o += vectors * LANES;
    }
}

/* A separable layer (depthwise, pointwise, bias, ReLU) between bordered maps. */
static void separable_layer(const float *input, int input_side, int inputs, int stride,
                            const float *depthwise, const float *pointwise, const float *bias,
                            int outputs, float *output, int output_border, float *scratch)
{
    const int input_width = input_side + 2 * BORDER;
    const int output_side = input_side / stride;
    const int output_width = output_side + 2 * output_border;
    const int offset = stride == 2 ? 1 : 0;
    for (int r = 0; r < output_side; r++) {
        const float *rows[5];
        for (int dy = 0; dy < 5; dy++) rows[dy] = input + (stride * r + offset + dy) * input_width * inputs;
        depthwise_row(rows, inputs, stride, output_side, depthwise, scratch);
        pointwise_row(scratch, output_side, inputs, outputs, pointwise, bias,
                      output + ((r + output_border) * output_width + output_border) * outputs);
    }
}

static int widest(const int channels[5])
{
    int most = channels[0];
    for (int i = 1; i < 4; i++) most = channels[i] > most ? channels[i] : most;
    return most;
}

/* Floats of workspace compact_predict needs for a model with these padded counts. */
long compact_workspace_floats(const int channels[5])
{
    long total = (long)PADDED_IMAGE * PADDED_IMAGE * 3;
    total += 5L * (SIDE0 + 2 * BORDER) * channels[0];               /* ring of layer-0 rows */
    total += 56L * widest(channels);                                 /* one depthwise row */
    total += (56L + 2 * BORDER) * (56 + 2 * BORDER) * channels[1];    /* layer 1 */
    total += (28L + 2 * BORDER) * (28 + 2 * BORDER) * channels[2];    /* layer 2 */
    total += (28L + 2 * BORDER) * (28 + 2 * BORDER) * channels[3];    /* layer 3 */
    total += 28L * 28 * channels[4];                                 /* layer 4 */
    return total;
}

/*
 * Responses of one model to `count` recentred images (count, 112, 112, 3).
 * workspace: compact_workspace_floats(model->channels) floats, any content.
 */
void compact_predict(const compact_model_t *model, const float *images, int count,
                     float *workspace, float *responses)
{
    const int *k = model->channels;
    const long workspace_size = compact_workspace_floats(k);
    memset(workspace, 0, workspace_size * sizeof(float));
    float *image = workspace;
    float *ring = image + PADDED_IMAGE * PADDED_IMAGE * 3;
    const int ring_width = SIDE0 + 2 * BORDER;
    float *depthwise_scratch = ring + 5L * ring_width * k[0];
    float *layer1 = depthwise_scratch + 56L * widest(k);
    float *layer2 = layer1 + (56L + 2 * BORDER) * (56 + 2 * BORDER) * k[1];
    float *layer3 = layer2 + (28L + 2 * BORDER) * (28 + 2 * BORDER) * k[2];
    float *layer4 = layer3 + (28L + 2 * BORDER) * (28 + 2 * BORDER) * k[3];
    int tap_offsets[75];
    for (int dy = 0; dy < 5; dy++)
        for (int dx = 0; dx < 5; dx++)
            for (int ci = 0; ci < 3; ci++)
                tap_offsets[(dy * 5 + dx) * 3 + ci] = dy * PADDED_IMAGE * 3 + dx * 3 + ci;
    const long ring_row = (long)ring_width * k[0];
    const int layer1_width = 56 + 2 * BORDER;

    for (int n = 0; n < count; n++) {
        const float *source = images + (long)n * SIDE0 * SIDE0 * 3;
        for (int y = 0; y < SIDE0; y++)
            memcpy(image + ((y + 2) * PADDED_IMAGE + 2) * 3, source + y * SIDE0 * 3,
                   SIDE0 * 3 * sizeof(float));
        /* Layer-0 row j lives in ring slot (j + 1) % 5; rows -1, 112 and 113 are zero. */
        memset(ring, 0, ring_row * sizeof(float));
        for (int j = 0; j < 3; j++) layer0_row(image, tap_offsets, model, j, ring + (j + 1) * ring_row);
        for (int r = 0; r < 56; r++) {
            for (int j = 2 * r + 2; j <= 2 * r + 3; j++) {
                float *slot = ring + ((j + 1) % 5) * ring_row;
                if (j < SIDE0) layer0_row(image, tap_offsets, model, j, slot);
                else memset(slot, 0, ring_row * sizeof(float));
            }
            const float *rows[5];
            for (int dy = 0; dy < 5; dy++) rows[dy] = ring + ((2 * r - 1 + dy + 1) % 5) * ring_row;
            /* rows carry a border of 2; a stride-2 window starts 1 before column 2q. */
            depthwise_row(rows, k[0], 2, 56, model->depthwise[0], depthwise_scratch);
            pointwise_row(depthwise_scratch, 56, k[0], k[1], model->pointwise[0], model->bias[0],
                          layer1 + ((r + BORDER) * layer1_width + BORDER) * k[1]);
        }
        separable_layer(layer1, 56, k[1], 2, model->depthwise[1], model->pointwise[1],
                        model->bias[1], k[2], layer2, BORDER, depthwise_scratch);
        separable_layer(layer2, 28, k[2], 1, model->depthwise[2], model->pointwise[2],
                        model->bias[2], k[3], layer3, BORDER, depthwise_scratch);
        separable_layer(layer3, 28, k[3], 1, model->depthwise[3], model->pointwise[3],
                        model->bias[3], k[4], layer4, 0, depthwise_scratch);
        __m512 sum = _mm512_setzero_ps();
        for (long i = 0; i < 28L * 28 * k[4]; i += LANES)
            sum = _mm512_fmadd_ps(_mm512_loadu_ps(layer4 + i), _mm512_loadu_ps(model->readout + i), sum);
        responses[n] = _mm512_reduce_add_ps(sum) + model->readout_bias;
    }
}
