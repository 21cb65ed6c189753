/*
 * Adaptive average pooling of (image, channel) planes on the CPU, equal bit for bit to PyTorch's
 * CPU kernel for contiguous NCHW input (torch.nn.functional.adaptive_avg_pool2d): the k x k
 * context DMNet's filter generator pools (Eq. 1 of "Dynamic Multi-scale Filters for Semantic
 * Segmentation", He et al., ICCV 2019) and PSP's pyramid bins.
 *
 * Output cell (i, j) averages rows floor(i*H/OH) <= y < ceil((i+1)*H/OH) and columns
 * floor(j*W/OW) <= x < ceil((j+1)*W/OW). As in PyTorch, the sum starts at +0, adds the cell's
 * inputs row by row in the input's dtype, and is divided by the number of rows, then by the number
 * of columns; so every output is the same float. PyTorch walks one plane at a time and recomputes
 * the bin limits per cell; here POOL_LANES planes are copied side by side into a tile and summed
 * as vectors (each lane one plane, in the same order), and the limits are computed once.
 */
#include <stdint.h>
#include <stdlib.h>

#include "split_planes.h"

#define POOL_LANES 16

typedef struct {
    plane_range range; /* first: see split_planes.h */
    const void *x;
    void *out;
    int h, w, oh, ow;
    const int *limits; /* row starts[oh], row ends[oh], column starts[ow], column ends[ow] */
} pool_job;

#define POOL_KERNELS(T, SUFFIX)                                                                    \
    typedef T SUFFIX##_lanes __attribute__((vector_size(POOL_LANES * sizeof(T))));                 \
                                                                                                   \
    static void pool_plane_##SUFFIX(const T *in, T *out, const pool_job *j) {                      \
        const int *r0 = j->limits, *r1 = r0 + j->oh, *c0 = r1 + j->oh, *c1 = c0 + j->ow;           \
        for (int i = 0; i < j->oh; ++i)                                                            \
            for (int k = 0; k < j->ow; ++k) {                                                      \
                T s = 0;                                                                           \
                for (int y = r0[i]; y < r1[i]; ++y)                                                \
                    for (int x = c0[k]; x < c1[k]; ++x) s += in[(int64_t)y * j->w + x];            \
                out[i * j->ow + k] = s / (T)(r1[i] - r0[i]) / (T)(c1[k] - c0[k]);                  \
            }                                                                                      \
    }                                                                                              \
                                                                                                   \
    static void *pool_thread_##SUFFIX(void *arg) {                                                 \
        pool_job *j = (pool_job *)arg;                                                             \
        const int *r0 = j->limits, *r1 = r0 + j->oh, *c0 = r1 + j->oh, *c1 = c0 + j->ow;           \
        const int64_t hw = (int64_t)j->h * j->w, cells = (int64_t)j->oh * j->ow;                   \
        const T *x = (const T *)j->x;                                                              \
        T *out = (T *)j->out;                                                                      \
        int64_t p = j->range.begin;                                                                \
        if (j->range.end - p >= POOL_LANES) {                                                      \
            SUFFIX##_lanes *tile = (SUFFIX##_lanes *)aligned_alloc(                                \
                sizeof(SUFFIX##_lanes), sizeof(SUFFIX##_lanes) * (size_t)hw);                      \
            if (!tile) {                                                                           \
                j->range.status = -1;                                                              \
                return NULL;                                                                       \
            }                                                                                      \
            for (; p + POOL_LANES <= j->range.end; p += POOL_LANES) {                              \
                for (int64_t q = 0; q < hw; ++q)                                                   \
                    for (int v = 0; v < POOL_LANES; ++v) tile[q][v] = x[(p + v) * hw + q];         \
                for (int i = 0; i < j->oh; ++i)                                                    \
                    for (int k = 0; k < j->ow; ++k) {                                              \
                        SUFFIX##_lanes s = {0};                                                    \
                        for (int y = r0[i]; y < r1[i]; ++y)                                        \
                            for (int c = c0[k]; c < c1[k]; ++c) s += tile[(int64_t)y * j->w + c];  \
                        s = s / (T)(r1[i] - r0[i]) / (T)(c1[k] - c0[k]);                           \
                        for (int v = 0; v < POOL_LANES; ++v)                                       \
                            out[(p + v) * cells + i * j->ow + k] = s[v];                           \
                    }                                                                              \
            }                                                                                      \
            free(tile);                                                                            \
        }                                                                                          \
        for (; p < j->range.end; ++p) pool_plane_##SUFFIX(x + p * hw, out + p * cells, j);         \
        return NULL;                                                                               \
    }                                                                                              \
                                                                                                   \
    int adaptive_avg_pool2d_##SUFFIX(const T *x, T *out, int64_t planes, int h, int w, int oh,     \
                                     int ow, int nthreads) {                                       \
        int *limits = (int *)malloc(sizeof(int) * 2 * ((size_t)oh + ow));                          \
        if (!limits) return -1;                                                                    \
        for (int i = 0; i < oh; ++i) {                                                             \
            limits[i] = (int)((int64_t)i * h / oh);                                                \
            limits[oh + i] = (int)(((int64_t)(i + 1) * h + oh - 1) / oh);                          \
        }                                                                                          \
        for (int k = 0; k < ow; ++k) {                                                             \
            limits[2 * oh + k] = (int)((int64_t)k * w / ow);                                       \
            limits[2 * oh + ow + k] = (int)(((int64_t)(k + 1) * w + ow - 1) / ow);                 \
        }                                                                                          \
        pool_job job = {{0, 0, 0}, x, out, h, w, oh, ow, limits};                                  \
        int status = run_split(pool_thread_##SUFFIX, &job, sizeof job, planes, nthreads);          \
        free(limits);                                                                              \
        return status;                                                                             \
    }

POOL_KERNELS(float, f32)
POOL_KERNELS(double, f64)
