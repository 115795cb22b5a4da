/* The register blocks of the inference kernel: the depthwise convolutions,
 * the pointwise products and a whole separable layer (layer 0 is in
 * kernel_layer0.h).
 *
 * Part of kernel.c, which includes it once (one translation unit, so that
 * the compiler inlines across the parts); not compiled on its own. */

/* How many of `left` vectors the next register block takes: at most `most`,
 * split evenly (4 left with blocks of 3 go as 2 + 2, not 3 + 1). */
static int block_vectors(int left, int most)
{
    const int blocks = (left + most - 1) / most;
    return (left + blocks - 1) / blocks;
}

/* Depthwise 5x5 of one output row: rows[dy] point at the 5 input rows (with border). */
static void depthwise_row(const float *const rows[5], int channels, int stride, int width,
                          const float *kernel, float *output)
{
    const int offset = stride == 2 ? 1 : 0; /* border 2 minus the "same" padding before */
    for (int c = 0; c < channels; c += VEC) {
#if REGISTERS >= 32
        /* The 25 weight vectors stay in registers: one load per multiply-add. */
        vf weights[25];
        for (int tap = 0; tap < 25; tap++) weights[tap] = load(kernel + tap * channels + c);
        for (int q = 0; q < width; q++) {
            const long column = (long)(stride * q + offset) * channels + c;
            vf sum = {0};
            for (int dy = 0; dy < 5; dy++)
                for (int dx = 0; dx < 5; dx++) sum += load(rows[dy] + column + dx * channels) * weights[dy * 5 + dx];
            store(output + q * channels + c, sum);
        }
#else
        /* DW_PIXELS outputs at a time share each weight load. */
        const long step = (long)stride * channels;
        for (int q = 0; q < width; q += DW_PIXELS) {
            vf sums[DW_PIXELS] = {{0}};
            for (int dy = 0; dy < 5; dy++) {
                const float *line = rows[dy] + (long)(stride * q + offset) * channels + c;
                for (int dx = 0; dx < 5; dx++) {
                    const vf w = load(kernel + (dy * 5 + dx) * channels + c);
                    for (int j = 0; j < DW_PIXELS; j++) sums[j] += load(line + j * step + dx * channels) * w;
                }
            }
            for (int j = 0; j < DW_PIXELS; j++) store(output + (q + j) * channels + c, sums[j]);
        }
#endif
    }
}

/* input @ kernel for `pixels` (<= PW_PIXELS) pixels and `vectors` (<= PW_VECTORS) output vectors. */
static inline __attribute__((always_inline)) void pointwise_sums(
    const float *input, int inputs, int outputs, const float *kernel, const float *start,
    vf sums[PW_PIXELS][PW_VECTORS], int pixels, int vectors)
{
    for (int v = 0; v < vectors; v++) {
        const vf b = start ? load(start + v * VEC) : (vf){0};
        for (int p = 0; p < pixels; p++) sums[p][v] = b;
    }
    for (int c = 0; c < inputs; c++) {
        vf w[PW_VECTORS];
        for (int v = 0; v < vectors; v++) w[v] = load(kernel + c * outputs + v * VEC);
        for (int p = 0; p < pixels; p++) {
            const vf x = splat(input[p * inputs + c]);
            for (int v = 0; v < vectors; v++) sums[p][v] += x * w[v];
        }
    }
}

/*
 * One register block of pointwise products. pool == NULL: a layer,
 * output[p] = activate(bias + input[p] @ kernel). Otherwise the shared
 * readout: totals += sum over the pixels p of pool[p] * (input[p] @ kernel).
 */
static inline __attribute__((always_inline)) void pointwise_block(
    const float *input, int inputs, int outputs, const float *kernel, const float *bias, float *output,
    const float *pool, int pixels, int vectors, int use_relu)
{
    vf sums[PW_PIXELS][PW_VECTORS];
    pointwise_sums(input, inputs, outputs, kernel, pool ? NULL : bias, sums, pixels, vectors);
    if (pool == NULL) {
        for (int p = 0; p < pixels; p++)
            for (int v = 0; v < vectors; v++)
                store(output + p * outputs + v * VEC, activate(sums[p][v], use_relu));
        return;
    }
    for (int v = 0; v < vectors; v++) {
        vf total = load(output + v * VEC);
        for (int p = 0; p < pixels; p++) total += sums[p][v] * load(pool + p * outputs + v * VEC);
        store(output + v * VEC, total);
    }
}

/* The pixel blocks of `width` pixels for one group of VECTORS output vectors. */
#define POINTWISE_PIXELS(VECTORS)                                                                   \
    for (q = 0; q + PW_PIXELS <= width; q += PW_PIXELS)                                              \
        pointwise_block(input + q * inputs, inputs, outputs, kernel + o, block_bias,                 \
                        pool ? output + o : output + q * outputs + o, pool ? pool + q * outputs + o : NULL, \
                        PW_PIXELS, VECTORS, use_relu);                                               \
    for (; q < width; q++)                                                                           \
        pointwise_block(input + q * inputs, inputs, outputs, kernel + o, block_bias,                 \
                        pool ? output + o : output + q * outputs + o, pool ? pool + q * outputs + o : NULL, \
                        1, VECTORS, use_relu);

/* pointwise_block over `width` pixels and all `outputs` (a multiple of VEC). */
static void pointwise_row(const float *input, int width, int inputs, int outputs, const float *kernel,
                          const float *bias, float *output, const float *pool, int use_relu)
{
    for (int o = 0; o < outputs; ) {
        const int vectors = block_vectors((outputs - o) / VEC, PW_VECTORS);
        const float *block_bias = bias ? bias + o : NULL;
        int q;
        switch (vectors) {
#if PW_VECTORS >= 4
        case 4: POINTWISE_PIXELS(4) break;
#endif
#if PW_VECTORS >= 3
        case 3: POINTWISE_PIXELS(3) break;
#endif
        case 2: POINTWISE_PIXELS(2) break;
        default: POINTWISE_PIXELS(1) break;
        }
        o += vectors * VEC;
    }
}

/* A separable layer (depthwise, pointwise, bias, activation) between bordered maps. */
static void separable_layer(const float *input, int input_side, int inputs, int stride,
                            const float *depthwise, const float *pointwise, const float *bias,
                            int outputs, float *output, int output_border, float *scratch, int use_relu)
{
    const int input_width = input_side + 2 * BORDER;
    const int output_side = input_side / stride;
    const int output_width = output_side + 2 * output_border;
    const int offset = stride == 2 ? 1 : 0;
    for (int r = 0; r < output_side; r++) {
        const float *rows[5];
        for (int dy = 0; dy < 5; dy++) rows[dy] = input + (long)(stride * r + offset + dy) * input_width * inputs;
        depthwise_row(rows, inputs, stride, output_side, depthwise, scratch);
        pointwise_row(scratch, output_side, inputs, outputs, pointwise, bias,
                      output + ((long)(r + output_border) * output_width + output_border) * outputs, NULL,
                      use_relu);
    }
}
