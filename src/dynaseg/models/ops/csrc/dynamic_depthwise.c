/*
 * Per-image depthwise correlation ("dynamic" depthwise convolution) on the CPU: the ⊛ of
 * DMNet Eq. (1) ("Dynamic Multi-scale Filters for Semantic Segmentation", ICCV 2019) and CaC-Net's
 * depthwise conv with the generated kernel ("Context-adaptive Convolution Network for Semantic
 * Segmentation", arXiv:2004.08222), forward and both gradients.
 *
 * Every (image, channel) plane has its own k_h x k_w filter. One plane (H x W floats, 16 KB at
 * 64 x 64) stays in the core's cache while all of its taps are applied, which is what the
 * grouped-convolution formulation (groups = B*C) does not manage in its backward. Planes are
 * split over threads; each plane is summed by one thread in a fixed order, so results are
 * deterministic. Plain C with GCC/Clang vector extensions (no Python or torch headers):
 * dynaseg.models.ops.native compiles it for the machine it runs on (-march=native) on first use and
 * calls it through ctypes.
 *
 * Geometry (one plane, zero outside the image, output the size of the input):
 *   out[y, x]   = sum_ij w[i, j] * in[y + d*i - top, x + d*j - left]
 *   d_in[y, x]  = sum_ij w[i, j] * g[y - d*i + top, x - d*j + left]
 *   d_w[i, j]   = sum_yx g[y, x] * in[y + d*i - top, x + d*j - left]
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "split_planes.h"


/* GCC/Clang vector extensions: 32-byte vectors (one AVX register, two SSE/NEON registers), and
 * the same type with 4/8-byte alignment for loads at any offset. */
#define DYN_VBYTES 32
typedef float f32_vec __attribute__((vector_size(DYN_VBYTES)));
typedef float f32_uvec __attribute__((vector_size(DYN_VBYTES), aligned(sizeof(float))));
typedef double f64_vec __attribute__((vector_size(DYN_VBYTES)));
typedef double f64_uvec __attribute__((vector_size(DYN_VBYTES), aligned(sizeof(double))));

typedef struct {
    plane_range range; /* first: see split_planes.h */
    const void *x, *w, *g;
    void *out, *grad_x, *grad_w;
    int h, wd, kh, kw, dil, top, left;
} dyn_job;

/*
 * All three sums become one correlation of a zero-padded plane, so the inner loops have no bounds
 * checks: with xp the input padded by (top, left) and gp the output gradient padded by
 * (span_h - top, span_w - left), where span = d * (k - 1),
 *   out[y, x]  = sum_ij w[i, j] * xp[y + d*i, x + d*j]
 *   d_in[y, x] = sum_ij w[kh-1-i, kw-1-j] * gp[y + d*i, x + d*j]
 *   d_w[i, j]  = sum_yx g[y, x] * xp[y + d*i, x + d*j].
 * Row kernels are specialised for kw = 1..7 so the taps of a row unroll and x vectorises.
 */
#define DYN_ROW_KERNELS(T, SUFFIX, KW)                                                             \
    static inline void corr_row_##SUFFIX##_##KW(T *restrict orow, const T *restrict prow,          \
                                                const T *restrict wr, int wd, int d) {             \
        for (int x = 0; x < wd; ++x) {                                                             \
            T s = orow[x];                                                                         \
            for (int j = 0; j < KW; ++j) s += wr[j] * prow[x + d * j];                             \
            orow[x] = s;                                                                           \
        }                                                                                          \
    }                                                                                              \
    /* d_w of one row of taps (i fixed), summed over the whole plane: one vector accumulator per   \
     * tap kept in registers, the output gradient loaded once per vector of pixels. */             \
    static inline void wgrad_taps_##SUFFIX##_##KW(T *restrict dw, const T *restrict g,             \
                                                  const T *restrict pad, int h, int wd, int pw,    \
                                                  int d) {                                         \
        enum { V = DYN_VBYTES / sizeof(T) };                                                       \
        SUFFIX##_vec acc[KW];                                                                      \
        T tail[KW];                                                                                \
        for (int j = 0; j < KW; ++j) {                                                             \
            acc[j] = (SUFFIX##_vec){0};                                                            \
            tail[j] = 0;                                                                           \
        }                                                                                          \
        for (int y = 0; y < h; ++y) {                                                              \
            const T *grow = g + (int64_t)y * wd, *prow = pad + (int64_t)y * pw;                    \
            int x = 0;                                                                             \
            for (; x + V <= wd; x += V) {                                                          \
                const SUFFIX##_vec gv = *(const SUFFIX##_uvec *)(grow + x);                        \
                for (int j = 0; j < KW; ++j)                                                       \
                    acc[j] += gv * *(const SUFFIX##_uvec *)(prow + x + d * j);                     \
            }                                                                                      \
            for (; x < wd; ++x)                                                                    \
                for (int j = 0; j < KW; ++j) tail[j] += grow[x] * prow[x + d * j];                 \
        }                                                                                          \
        for (int j = 0; j < KW; ++j) {                                                             \
            T s = tail[j];                                                                         \
            for (int v = 0; v < V; ++v) s += acc[j][v];                                            \
            dw[j] = s;                                                                             \
        }                                                                                          \
    }

#define DYN_KERNELS(T, SUFFIX)                                                                     \
    DYN_ROW_KERNELS(T, SUFFIX, 1)                                                                  \
    DYN_ROW_KERNELS(T, SUFFIX, 2)                                                                  \
    DYN_ROW_KERNELS(T, SUFFIX, 3)                                                                  \
    DYN_ROW_KERNELS(T, SUFFIX, 4)                                                                  \
    DYN_ROW_KERNELS(T, SUFFIX, 5)                                                                  \
    DYN_ROW_KERNELS(T, SUFFIX, 6)                                                                  \
    DYN_ROW_KERNELS(T, SUFFIX, 7)                                                                  \
                                                                                                   \
    static void corr_row_##SUFFIX(T *restrict orow, const T *restrict prow, const T *restrict wr,  \
                                  int wd, int kw, int d) {                                         \
        switch (kw) {                                                                              \
        case 1: corr_row_##SUFFIX##_1(orow, prow, wr, wd, d); return;                              \
        case 2: corr_row_##SUFFIX##_2(orow, prow, wr, wd, d); return;                              \
        case 3: corr_row_##SUFFIX##_3(orow, prow, wr, wd, d); return;                              \
        case 4: corr_row_##SUFFIX##_4(orow, prow, wr, wd, d); return;                              \
        case 5: corr_row_##SUFFIX##_5(orow, prow, wr, wd, d); return;                              \
        case 6: corr_row_##SUFFIX##_6(orow, prow, wr, wd, d); return;                              \
        case 7: corr_row_##SUFFIX##_7(orow, prow, wr, wd, d); return;                              \
        default:                                                                                   \
            for (int j = 0; j < kw; ++j) {                                                         \
                const T wv = wr[j];                                                                \
                const T *restrict src = prow + d * j;                                              \
                for (int x = 0; x < wd; ++x) orow[x] += wv * src[x];                               \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    /* d_w of taps row i: pad points at padded row d*i, the scalar loop covers kw > 7 */           \
    static void wgrad_taps_##SUFFIX(T *restrict dw, const T *restrict g, const T *restrict pad,    \
                                    int h, int wd, int pw, int kw, int d) {                        \
        switch (kw) {                                                                              \
        case 1: wgrad_taps_##SUFFIX##_1(dw, g, pad, h, wd, pw, d); return;                         \
        case 2: wgrad_taps_##SUFFIX##_2(dw, g, pad, h, wd, pw, d); return;                         \
        case 3: wgrad_taps_##SUFFIX##_3(dw, g, pad, h, wd, pw, d); return;                         \
        case 4: wgrad_taps_##SUFFIX##_4(dw, g, pad, h, wd, pw, d); return;                         \
        case 5: wgrad_taps_##SUFFIX##_5(dw, g, pad, h, wd, pw, d); return;                         \
        case 6: wgrad_taps_##SUFFIX##_6(dw, g, pad, h, wd, pw, d); return;                         \
        case 7: wgrad_taps_##SUFFIX##_7(dw, g, pad, h, wd, pw, d); return;                         \
        default:                                                                                   \
            for (int j = 0; j < kw; ++j) {                                                         \
                T s = 0;                                                                           \
                for (int y = 0; y < h; ++y) {                                                      \
                    const T *grow = g + (int64_t)y * wd, *prow = pad + (int64_t)y * pw + d * j;    \
                    for (int x = 0; x < wd; ++x) s += grow[x] * prow[x];                           \
                }                                                                                  \
                dw[j] = s;                                                                         \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
                                                                                                   \
    /* plane (h x wd) -> pad, zero-padded by (top, left) into ph x pw */                           \
    static void pad_plane_##SUFFIX(T *restrict pad, const T *restrict plane, int h, int wd,        \
                                   int ph, int pw, int top, int left) {                            \
        memset(pad, 0, sizeof(T) * (size_t)ph * pw);                                               \
        for (int y = 0; y < h; ++y)                                                                \
            memcpy(pad + (int64_t)(y + top) * pw + left, plane + (int64_t)y * wd, sizeof(T) * wd); \
    }                                                                                              \
                                                                                                   \
    /* out (h x wd) = correlation of the padded plane with wt (kh x kw), flipped if asked */       \
    static void correlate_##SUFFIX(T *restrict out, const T *restrict pad,                         \
                                              const T *restrict wt, int h, int wd, int pw,         \
                                              int kh, int kw, int d, int flip, T *wrow) {          \
        for (int y = 0; y < h; ++y) {                                                              \
            T *restrict orow = out + (int64_t)y * wd;                                              \
            memset(orow, 0, sizeof(T) * wd);                                                       \
            for (int i = 0; i < kh; ++i) {                                                         \
                const T *wr = wt + (int64_t)i * kw;                                                \
                if (flip) {                                                                        \
                    const T *src = wt + (int64_t)(kh - 1 - i) * kw;                                \
                    for (int j = 0; j < kw; ++j) wrow[j] = src[kw - 1 - j];                        \
                    wr = wrow;                                                                     \
                }                                                                                  \
                corr_row_##SUFFIX(orow, pad + (int64_t)(y + d * i) * pw, wr, wd, kw, d);           \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
                                                                                                   \
    static void wgrad_plane_##SUFFIX(T *restrict dw, const T *restrict g,                          \
                                                const T *restrict pad, int h, int wd, int pw,      \
                                                int kh, int kw, int d) {                           \
        for (int i = 0; i < kh; ++i)                                                               \
            wgrad_taps_##SUFFIX(dw + (int64_t)i * kw, g, pad + (int64_t)d * i * pw, h, wd, pw, kw, \
                                d);                                                                \
    }                                                                                              \
                                                                                                   \
    static void run_planes_##SUFFIX(dyn_job *j, int backward) {                                    \
        const int h = j->h, wd = j->wd, kh = j->kh, kw = j->kw, d = j->dil;                        \
        const int span_h = d * (kh - 1), span_w = d * (kw - 1);                                    \
        const int ph = h + span_h, pw = wd + span_w;                                               \
        const int64_t plane = (int64_t)h * wd;                                                     \
        const int unpadded = span_h == 0 && span_w == 0; /* 1x1: the plane is its own padding */   \
        T *pad = (T *)malloc(sizeof(T) * ((size_t)ph * pw + kw));                                  \
        if (!pad) {                                                                                \
            j->range.status = -1;                                                                  \
            return;                                                                                \
        }                                                                                          \
        T *wrow = pad + (size_t)ph * pw;                                                           \
        for (int64_t p = j->range.begin; p < j->range.end; ++p) {                                  \
            const T *in = (const T *)j->x + p * plane;                                             \
            const T *wt = (const T *)j->w + p * kh * kw;                                           \
            if (!backward) {                                                                       \
                const T *src = unpadded ? in : pad;                                                \
                if (!unpadded) pad_plane_##SUFFIX(pad, in, h, wd, ph, pw, j->top, j->left);        \
                correlate_##SUFFIX((T *)j->out + p * plane, src, wt, h, wd, pw, kh, kw, d, 0,      \
                                   wrow);                                                          \
                continue;                                                                          \
            }                                                                                      \
            const T *g = (const T *)j->g + p * plane;                                              \
            if (j->grad_x) {                                                                       \
                const T *src = unpadded ? g : pad;                                                 \
                if (!unpadded)                                                                     \
                    pad_plane_##SUFFIX(pad, g, h, wd, ph, pw, span_h - j->top, span_w - j->left);  \
                correlate_##SUFFIX((T *)j->grad_x + p * plane, src, wt, h, wd, pw, kh, kw, d, 1,   \
                                   wrow);                                                          \
            }                                                                                      \
            if (j->grad_w) {                                                                       \
                const T *src = unpadded ? in : pad;                                                \
                if (!unpadded) pad_plane_##SUFFIX(pad, in, h, wd, ph, pw, j->top, j->left);        \
                wgrad_plane_##SUFFIX((T *)j->grad_w + p * kh * kw, g, src, h, wd, pw, kh, kw, d);  \
            }                                                                                      \
        }                                                                                          \
        free(pad);                                                                                 \
    }                                                                                              \
                                                                                                   \
    static void *forward_thread_##SUFFIX(void *arg) {                                              \
        run_planes_##SUFFIX((dyn_job *)arg, 0);                                                    \
        return NULL;                                                                               \
    }                                                                                              \
    static void *backward_thread_##SUFFIX(void *arg) {                                             \
        run_planes_##SUFFIX((dyn_job *)arg, 1);                                                    \
        return NULL;                                                                               \
    }

DYN_KERNELS(float, f32)
DYN_KERNELS(double, f64)

#define DYN_ENTRY(T, SUFFIX)                                                                       \
    int dyn_dw_forward_##SUFFIX(const T *x, const T *w, T *out, int64_t planes, int h, int wd,     \
                                int kh, int kw, int dil, int top, int left, int nthreads) {        \
        dyn_job job = {{0, 0, 0}, x, w, NULL, out, NULL, NULL, h, wd, kh, kw, dil, top, left};     \
        return run_split(forward_thread_##SUFFIX, &job, sizeof job, planes, nthreads);             \
    }                                                                                              \
    int dyn_dw_backward_##SUFFIX(const T *x, const T *w, const T *g, T *grad_x, T *grad_w,         \
                                 int64_t planes, int h, int wd, int kh, int kw, int dil, int top,  \
                                 int left, int nthreads) {                                         \
        dyn_job job = {{0, 0, 0}, x, w, g, NULL, grad_x, grad_w, h, wd, kh, kw, dil, top, left};   \
        return run_split(backward_thread_##SUFFIX, &job, sizeof job, planes, nthreads);            \
    }

DYN_ENTRY(float, f32)
DYN_ENTRY(double, f64)
