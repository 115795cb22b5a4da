/* The register blocks of the training step: layer 0's convolution and its
 * kernel gradient, the depthwise convolutions and their gradients, and the
 * pointwise products and their gradients.
 *
 * Part of train_kernel.c, which includes it once (one translation unit, so
 * that the compiler inlines across the parts); not compiled on its own. */

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
    int vectors = channels / VEC, groups = group_count(vectors, GROUP);
    for (int column = 0; column < SIDE0; column += PIXELS)
        for (int g = 0; g < groups; g++) {
            int first = group_first(vectors, GROUP, g) * VEC, size = group_size(vectors, GROUP, g);
            float *o = out + column * channels;
            if (size == 3) conv0_block(padded, kernel, channels, row, column, first, 3, o, channels);
            else if (size == 2) conv0_block(padded, kernel, channels, row, column, first, 2, o, channels);
            else conv0_block(padded, kernel, channels, row, column, first, 1, o, channels);
        }
}

/* a0 of one row from z0: relu(scale * z + shift), in place; returns nothing. */
static void activate_row(float *row, int channels, const float *scale, const float *shift, int count) {
    for (int i = 0; i < count; i++)
        for (int c = 0; c < channels; c += VEC)
            store(row + i * channels + c, relu(load(row + i * channels + c) * load(scale + c) + load(shift + c)));
}

/* ------------------------------------------------------- depthwise (layers 1-4) */

/* Maps are kept zero-padded by 2 on every side (side + 4 positions per row),
 * so the 5x5 taps need no bounds checks. Keras "same" padding: stride 1 pads
 * 2 before, stride 2 on an even side pads 1 before; in padded coordinates the
 * first tap of output q sits at stride * q + base. */
#define MARGIN 2
static inline int tap_base(int stride) { return stride == 1 ? 0 : 1; }

/* One output row of a depthwise convolution; rows[ky] are padded input rows
 * (pointing at padded column 0) for taps ky = 0..4. */
static void depthwise_row(const float *const rows[5], const float *kernel, int channels, int stride, float *out,
                          int out_side) {
    int base = tap_base(stride);
    for (int c = 0; c < channels; c += VEC) {
        vf w[TAPS];
        for (int t = 0; t < TAPS; t++) w[t] = load(kernel + t * channels + c);
        for (int u = 0; u < out_side; u++) {
            vf acc = {0};
            int x = stride * u + base;
            for (int ky = 0; ky < 5; ky++)
                for (int kx = 0; kx < 5; kx++) acc += w[ky * 5 + kx] * load(rows[ky] + (x + kx) * channels + c);
            store(out + u * channels + c, acc);
        }
    }
}

/* A whole depthwise convolution of a padded map [(side+4)^2][C] into out [out_side^2][C]. */
static void depthwise_map(const float *padded, const float *kernel, int channels, int in_side, int stride,
                          float *out) {
    int out_side = in_side / stride, width = in_side + 2 * MARGIN, base = tap_base(stride);
    for (int q = 0; q < out_side; q++) {
        const float *rows[5];
        for (int ky = 0; ky < 5; ky++) rows[ky] = padded + (long)(stride * q + base + ky) * width * channels;
        depthwise_row(rows, kernel, channels, stride, out + (long)q * out_side * channels, out_side);
    }
}

/* Copies a map [side^2][C] into a zero-padded one [(side+4)^2][C]. */
static void pad_map(const float *map, int side, int channels, float *padded) {
    int width = side + 2 * MARGIN;
    memset(padded, 0, sizeof(float) * (long)width * width * channels);
    for (int y = 0; y < side; y++)
        memcpy(padded + ((long)(y + MARGIN) * width + MARGIN) * channels, map + (long)y * side * channels,
               sizeof(float) * side * channels);
}

/* Row y of the input gradient of a depthwise convolution (gather form) from
 * the padded output gradient; only taps whose stride divides the offset count. */
static void depthwise_input_gradient_row(const float *d_out_padded, const float *kernel, int channels,
                                         int in_side, int stride, int y, float *out) {
    int out_side = in_side / stride, width = out_side + 2 * MARGIN, base = tap_base(stride);
    /* Tap ky of output row q reads padded input row stride * q + base + ky = y + MARGIN. */
    for (int x = 0; x < in_side; x++) {
        int ky0 = stride == 1 ? 0 : (y + MARGIN - base) & 1, kx0 = stride == 1 ? 0 : (x + MARGIN - base) & 1;
        for (int c = 0; c < channels; c += VEC) {
            vf acc = {0};
            for (int ky = ky0; ky < 5; ky += stride) {
                int q = (y + MARGIN - base - ky) / stride + MARGIN; /* padded output row */
                const float *line = d_out_padded + (long)q * width * channels + c;
                for (int kx = kx0; kx < 5; kx += stride) {
                    int u = (x + MARGIN - base - kx) / stride + MARGIN;
                    acc += load(kernel + (ky * 5 + kx) * channels + c) * load(line + u * channels);
                }
            }
            store(out + x * channels + c, acc);
        }
    }
}

/* Input gradient of a whole depthwise convolution: d_in [in_side^2][C]. */
static void depthwise_input_gradient(const float *d_out_padded, const float *kernel, int channels, int in_side,
                                     int stride, float *d_in) {
    for (int y = 0; y < in_side; y++)
        depthwise_input_gradient_row(d_out_padded, kernel, channels, in_side, stride, y,
                                     d_in + (long)y * in_side * channels);
}

/* Kernel gradient of tap row ky from one padded input row and one output-gradient row:
 * grad[ky][kx][C] += sum_u in[stride * u + base + kx] * d_out[u]. */
static void depthwise_kernel_gradient_tap_row(const float *in_row, const float *d_out_row, int channels, int stride,
                                              int out_side, int ky, float *grad) {
    int base = tap_base(stride);
    for (int c = 0; c < channels; c += VEC) {
        vf acc[5] = {{0}};
        for (int u = 0; u < out_side; u++) {
            vf g = load(d_out_row + u * channels + c);
            const float *line = in_row + (stride * u + base) * channels + c;
            for (int kx = 0; kx < 5; kx++) acc[kx] += g * load(line + kx * channels);
        }
        for (int kx = 0; kx < 5; kx++)
            store(grad + (ky * 5 + kx) * channels + c, load(grad + (ky * 5 + kx) * channels + c) + acc[kx]);
    }
}

static void depthwise_kernel_gradient(const float *padded, const float *d_out, int channels, int in_side, int stride,
                                      float *grad) {
    int out_side = in_side / stride, width = in_side + 2 * MARGIN, base = tap_base(stride);
    for (int q = 0; q < out_side; q++)
        for (int ky = 0; ky < 5; ky++)
            depthwise_kernel_gradient_tap_row(padded + (long)(stride * q + base + ky) * width * channels,
                                              d_out + (long)q * out_side * channels, channels, stride, out_side, ky,
                                              grad);
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
    int vectors = n / VEC, groups = group_count(vectors, GROUP);
    for (long row = 0; row < m; row += ROWS) {
        int rows = (int)(m - row < ROWS ? m - row : ROWS);
        const float *ar = a + row * inner;
        float *o = out + row * n;
        for (int g = 0; g < groups; g++) {
            int first = group_first(vectors, GROUP, g) * VEC, size = group_size(vectors, GROUP, g);
            if (size == 3) product_block(ar, b, bias, rows, inner, n, first, 3, o);
            else if (size == 2) product_block(ar, b, bias, rows, inner, n, first, 2, o);
            else product_block(ar, b, bias, rows, inner, n, first, 1, o);
        }
    }
}

/* grad[k0..k0+GTILE)[first..] += a^T d over rows [start, stop). */
static inline __attribute__((always_inline)) void gradient_block(
    const float *a, const float *d, long start, long stop, int inner, int n, int k0, int first, int groups,
    float *grad) {
    vf acc[GTILE][GROUP];
    for (int t = 0; t < GTILE; t++)
        for (int g = 0; g < GROUP; g++)
            acc[t][g] = g < groups ? load(grad + (long)(k0 + t) * n + first + g * VEC) : (vf){0};
    for (long r = start; r < stop; r++) {
        vf dv[GROUP];
        for (int g = 0; g < GROUP; g++) dv[g] = g < groups ? load(d + r * n + first + g * VEC) : (vf){0};
        const float *ar = a + r * inner + k0;
        for (int t = 0; t < GTILE; t++) {
            vf x = splat(ar[t]);
            for (int g = 0; g < GROUP; g++)
                if (g < groups) acc[t][g] += x * dv[g];
        }
    }
    for (int t = 0; t < GTILE; t++)
        for (int g = 0; g < groups; g++) store(grad + (long)(k0 + t) * n + first + g * VEC, acc[t][g]);
}

/* grad[inner][n] += a^T d over m rows: a [m][inner], d [m][n]; rows in chunks
 * that stay in L2 while every (k, n) block passes over them. */
static void product_gradient(const float *a, const float *d, long m, int inner, int n, float *grad) {
    int vectors = n / VEC, groups = group_count(vectors, GROUP);
    for (long start = 0; start < m; start += CHUNK) {
        long stop = start + CHUNK < m ? start + CHUNK : m;
        for (int k0 = 0; k0 < inner; k0 += GTILE)
            for (int g = 0; g < groups; g++) {
                int first = group_first(vectors, GROUP, g) * VEC, size = group_size(vectors, GROUP, g);
                if (size == 3) gradient_block(a, d, start, stop, inner, n, k0, first, 3, grad);
                else if (size == 2) gradient_block(a, d, start, stop, inner, n, k0, first, 2, grad);
                else gradient_block(a, d, start, stop, inner, n, k0, first, 1, grad);
            }
    }
}

/* G[ky*15 + e0 .. + KTILE)[first..] += patch^T dy over `count_rows` rows starting at `row`. */
static inline __attribute__((always_inline)) void conv0_gradient_block(
    const float *padded, const float *dy, int channels, int row, int count_rows, int ky, int e0, int first,
    int groups, float *grad) {
    vf acc[KTILE][GRAD_GROUP];
    for (int t = 0; t < KTILE; t++)
        for (int g = 0; g < GRAD_GROUP; g++)
            acc[t][g] = g < groups ? load(grad + (ky * 15 + e0 + t) * channels + first + g * VEC) : (vf){0};
    for (int r = 0; r < count_rows; r++) {
        const float *line = padded + ((row + r + ky) * PADDED) * 3 + e0;
        const float *gradient_row = dy + (long)r * SIDE0 * channels + first;
        for (int x = 0; x < SIDE0; x++) {
            vf dv[GRAD_GROUP];
            for (int g = 0; g < GRAD_GROUP; g++) dv[g] = g < groups ? load(gradient_row + x * channels + g * VEC) : (vf){0};
            for (int t = 0; t < KTILE; t++) {
                vf xv = splat(line[x * 3 + t]);
                for (int g = 0; g < GRAD_GROUP; g++)
                    if (g < groups) acc[t][g] += xv * dv[g];
            }
        }
    }
    for (int t = 0; t < KTILE; t++)
        for (int g = 0; g < groups; g++) store(grad + (ky * 15 + e0 + t) * channels + first + g * VEC, acc[t][g]);
}

/* G[75][C0] += patch^T dy over `count_rows` rows of layer 0 starting at `row`. */
static void conv0_gradient_rows(const float *padded, const float *dy, int channels, int row, int count_rows,
                                float *grad) {
    int vectors = channels / VEC, groups = group_count(vectors, GRAD_GROUP);
    for (int ky = 0; ky < 5; ky++)
        for (int e0 = 0; e0 < 15; e0 += KTILE)
            for (int g = 0; g < groups; g++) {
                int first = group_first(vectors, GRAD_GROUP, g) * VEC, size = group_size(vectors, GRAD_GROUP, g);
#if GRAD_GROUP >= 4
                if (size == 4) { conv0_gradient_block(padded, dy, channels, row, count_rows, ky, e0, first, 4, grad); continue; }
                if (size == 3) { conv0_gradient_block(padded, dy, channels, row, count_rows, ky, e0, first, 3, grad); continue; }
#endif
                if (size == 2) conv0_gradient_block(padded, dy, channels, row, count_rows, ky, e0, first, 2, grad);
                else conv0_gradient_block(padded, dy, channels, row, count_rows, ky, e0, first, 1, grad);
            }
}
