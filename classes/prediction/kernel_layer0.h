/* Layer 0 of the inference kernel (5x5 convolution of the RGB image, bias,
 * ReLU) by the Winograd / Toom-Cook algorithm F(4, 5) along each row.
 *
 * Why: layer 0 is about three quarters of a compact model's arithmetic, and
 * the direct convolution already ran at this machine's multiply-add peak.
 * F(4, 5) computes 4 neighbouring outputs of a 5-tap row filter from 8
 * inputs with 8 multiplications instead of 20: each image row is transformed
 * once (shared by every filter), the multiplications accumulate over the 5
 * kernel rows and 3 colours, and one cheap transform per 4 outputs gives
 * the outputs: about 2.1x fewer vector operations than the direct form,
 * with float32 errors about 1e-5 of the outputs' spread (tested against
 * float64 references).
 *
 * The transforms (classes/prediction/winograd.py derives them and documents
 * the algebra), with the points 0, 1, -1, 2, -2, 1/2, -1/2 and infinity:
 *   input:   V[t] = sum_j BT[t][j] d[j]            (8 image pixels d, per colour)
 *   filter:  U[t] = sum_i G[t][i] w[i]             (done once, in Python)
 *   output:  y = AT (U * V), AT's rows being the powers 0..3 of the points,
 *            written out in winograd_outputs below.
 *
 * Part of kernel.c, which includes it once; not compiled on its own.
 *
 * The image lives in `planes`: per padded row (116), 4 planes of PLANE floats
 * holding the padded columns c with c % 4 == plane, at (c / 4) * 3 + colour, so
 * that for a fixed input position j of every 4-pixel tile the 84 (tile, colour)
 * values of a row are contiguous and the input transform is vector loads only.
 * Transformed rows live in a ring of 8 slots: slot (row % 8), TRANSFORMED lanes
 * per point t, lane tile * 3 + colour. */

#define TILES 28            /* 4-pixel tiles per row of 112 */
#define POINTS 8            /* F(4, 5): 4 + 5 - 1 */
#define PLANE 112           /* floats of one plane: 33 tiles x 3 colours read at most, rounded up */
#define PLANE_ROW (4 * PLANE)
#define TRANSFORMED 96      /* lanes per point: 28 tiles x 3 colours = 84, rounded up to a multiple of 16 */
#define TRANSFORM_SLOT (POINTS * TRANSFORMED)
#define TRANSFORM_SLOTS 8

/* Floats of layer 0's workspace: the image planes, the transformed-row ring and the products of one block. */
#define LAYER0_FLOATS ((long)PADDED_IMAGE * PLANE_ROW + (long)TRANSFORM_SLOTS * TRANSFORM_SLOT \
                       + (long)L0_TILES * POINTS * L0_VECTORS * VEC)

/* Copies one recentred image (112, 112, 3) into the planes (their border stays zero). */
static void image_to_planes(const float *source, float *planes)
{
    for (int y = 0; y < SIDE0; y++) {
        float *row = planes + (long)(y + BORDER) * PLANE_ROW;
        for (int x = 0; x < SIDE0; x++) {
            const int column = x + BORDER;
            float *target = row + (column & 3) * PLANE + (column >> 2) * 3;
            const float *pixel = source + ((long)y * SIDE0 + x) * 3;
            target[0] = pixel[0];
            target[1] = pixel[1];
            target[2] = pixel[2];
        }
    }
}

/* The input transform of padded row `row` into its ring slot: V[t] = sum_j BT[t][j] d[j]. */
static void transform_row(const float *planes, const float *input_transform, int row, float *ring)
{
    const float *source = planes + (long)row * PLANE_ROW;
    float *slot = ring + (row % TRANSFORM_SLOTS) * TRANSFORM_SLOT;
    for (int t = 0; t < POINTS; t++) {
        for (int lane = 0; lane < TRANSFORMED; lane += VEC) {
            vf sum = {0};
            for (int j = 0; j < POINTS; j++) {
                const float coefficient = input_transform[t * POINTS + j];
                if (coefficient != 0.0f)
                    sum += splat(coefficient) * load(source + (j & 3) * PLANE + (j >> 2) * 3 + lane);
            }
            store(slot + t * TRANSFORMED + lane, sum);
        }
    }
}

/* y = AT m for the points 0, 1, -1, 2, -2, 1/2, -1/2, infinity, plus the bias, activated. */
static inline __attribute__((always_inline)) void winograd_outputs(const float *products, vf bias, float *output,
                                                                    int output_stride, int use_relu)
{
    vf m[POINTS];
    for (int t = 0; t < POINTS; t++) m[t] = load(products + t * L0_VECTORS * VEC);
    const vf a = m[1] + m[2], b = m[1] - m[2], c = m[3] + m[4], d = m[3] - m[4];
    const vf e = m[5] + m[6], f = m[5] - m[6];
    store(output, activate(bias + m[0] + a + c + e, use_relu));
    store(output + output_stride, activate(bias + b + 2.0f * d + 0.5f * f, use_relu));
    store(output + 2 * output_stride, activate(bias + a + 4.0f * c + 0.25f * e, use_relu));
    store(output + 3 * output_stride, activate(bias + b + 8.0f * d + 0.125f * f + m[7], use_relu));
}

/* L0_TILES tiles from `first_tile`, `vectors` channel vectors from `start`, of output row y. */
static inline __attribute__((always_inline)) void layer0_block(
    const float *ring, const compact_model_t *model, int y, int first_tile, int start, float *products,
    float *row, int vectors)
{
    const int channels = model->channels[0];
    for (int t = 0; t < POINTS; t++) {
        vf sums[L0_TILES][L0_VECTORS];
        for (int p = 0; p < L0_TILES; p++)
            for (int v = 0; v < vectors; v++) sums[p][v] = (vf){0};
        for (int dy = 0; dy < 5; dy++) {
            const float *inputs = ring + ((y + dy) % TRANSFORM_SLOTS) * TRANSFORM_SLOT + t * TRANSFORMED
                                  + first_tile * 3;
            for (int colour = 0; colour < 3; colour++) {
                const float *weights = model->kernel0 + ((long)(t * 5 + dy) * 3 + colour) * channels + start;
                vf w[L0_VECTORS];
                for (int v = 0; v < vectors; v++) w[v] = load(weights + v * VEC);
                for (int p = 0; p < L0_TILES; p++) {
                    const vf x = splat(inputs[p * 3 + colour]);
                    for (int v = 0; v < vectors; v++) sums[p][v] += x * w[v];
                }
            }
        }
        for (int p = 0; p < L0_TILES; p++)
            for (int v = 0; v < vectors; v++)
                store(products + ((long)p * POINTS + t) * L0_VECTORS * VEC + v * VEC, sums[p][v]);
    }
    for (int p = 0; p < L0_TILES; p++)
        for (int v = 0; v < vectors; v++)
            winograd_outputs(products + (long)p * POINTS * L0_VECTORS * VEC + v * VEC,
                             load(model->bias0 + start + v * VEC),
                             row + ((long)(4 * (first_tile + p)) + BORDER) * channels + start + v * VEC, channels,
                             model->relu);
}

/* One row (y) of layer 0 into `row` (width SIDE0 + 2*BORDER, border left zero); padded image rows
 * up to y + 4 must be in the ring. */
static void layer0_row(const float *ring, const compact_model_t *model, int y, float *products, float *row)
{
    const int channels = model->channels[0];
    for (int start = 0; start < channels; ) {
        const int vectors = block_vectors((channels - start) / VEC, L0_VECTORS);
        for (int tile = 0; tile < TILES; tile += L0_TILES) {
            switch (vectors) {
#if L0_VECTORS >= 3
            case 3: layer0_block(ring, model, y, tile, start, products, row, 3); break;
#endif
            case 2: layer0_block(ring, model, y, tile, start, products, row, 2); break;
            default: layer0_block(ring, model, y, tile, start, products, row, 1); break;
            }
        }
        start += vectors * VEC;
    }
}
