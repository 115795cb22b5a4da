/* Batch sums and the per-image scratch of the training step's phases, and
 * the patch lag sums that give layer 0's patch moments.
 *
 * Part of train_kernel.c, which includes it once (one translation unit, so
 * that the compiler inlines across the parts); not compiled on its own. */

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

/* Per-thread scratch (`per_thread` floats each) and per-image sums and
 * gradients: each image adds into its own slot, and the slots are reduced in
 * image order, so results do not depend on the number of threads or on which
 * thread took which image (a resumed run equals an uninterrupted one). */
typedef struct {
    float *work;
    long per_thread;
    double *sums;      /* [batch][sum_count] */
    int sum_count;
    float *grads;      /* [batch][grad_count] */
    long grad_count;
    int threads;
} scratch_t;

/* The scratch of one phase, its per-image sums and gradients zeroed. */
static scratch_t phase_scratch(float *work, long per_thread, double *image_sums, int sum_count,
                               float *image_grads, long grad_count, int batch, int threads) {
    scratch_t s = {work, per_thread, image_sums, sum_count, image_grads, grad_count, threads};
    memset(image_sums, 0, sizeof(double) * batch * sum_count);
    if (image_grads) memset(image_grads, 0, sizeof(float) * batch * grad_count);
    return s;
}

static void reduce_images(const scratch_t *s, int batch, double *sums, float *grads) {
    if (sums) {
#pragma omp parallel for schedule(static) num_threads(s->threads)
        for (int i = 0; i < s->sum_count; i++) {
            double total = 0;
            for (int b = 0; b < batch; b++) total += s->sums[(long)b * s->sum_count + i];
            sums[i] += total;
        }
    }
    if (grads) {
#pragma omp parallel for schedule(static) num_threads(s->threads)
        for (long i = 0; i < s->grad_count; i++) {
            float total = 0;
            for (int b = 0; b < batch; b++) total += s->grads[(long)b * s->grad_count + i];
            grads[i] += total;
        }
    }
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

/* What the patch moments of a batch are made of (see patch_moments.py): out
 * holds totals [9][9][9], rows [4][9][9][9], cols [4][9][9][9], corners
 * [4][4][9][9][9], in that order, summed over the batch. */
void train_patch_lag_sums(const float *images, int batch, double *out, float *work, long per_thread,
                          double *image_sums, int threads) {
    long count = train_lag_sum_count(), block = 9L * LAGS * LAGS;
    scratch_t s = phase_scratch(work, per_thread, image_sums, (int)count, NULL, 0, batch, threads);
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (int b = 0; b < batch; b++) {
        int t = thread_index();
        float *planar = work + t * per_thread;
        double *sums = image_sums + (long)b * count;
        planar_image(images + (long)b * SIDE0 * SIDE0 * 3, planar);
        lag_totals(planar, sums);
        lag_borders(planar, sums + block, sums + 5 * block, sums + 9 * block);
    }
    reduce_images(&s, batch, out, NULL);
}
