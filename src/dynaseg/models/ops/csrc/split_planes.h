/*
 * Splitting independent (image, channel) planes over threads, shared by the CPU kernels in this
 * directory (dynamic_depthwise.c, adaptive_avg_pool.c). Each plane is computed by one thread in a
 * fixed order, so a kernel's results do not depend on the number of threads.
 */
#ifndef DYNASEG_SPLIT_PLANES_H
#define DYNASEG_SPLIT_PLANES_H

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_THREADS 256

/* The first member of every kernel's job struct: its planes [begin, end), and its status, set to
 * -1 by a job that could not finish (out of memory). */
typedef struct {
    int64_t begin, end;
    int status;
} plane_range;

/* Run fn on nthreads copies of the job `base` (a struct of `size` bytes that starts with a
 * plane_range), splitting planes [0, planes) into contiguous ranges; a range whose thread could
 * not be started runs on the calling thread. Returns 0, or -1 if a range could not be computed,
 * so the caller raises instead of using unwritten output. */
static int run_split(void *(*fn)(void *), const void *base, size_t size, int64_t planes,
                     int nthreads) {
    if (nthreads < 1) nthreads = 1;
    if (nthreads > MAX_THREADS) nthreads = MAX_THREADS;
    if (nthreads > planes) nthreads = (int)(planes > 0 ? planes : 1);
    unsigned char *jobs = (unsigned char *)malloc(size * (size_t)nthreads);
    if (!jobs) return -1;
    pthread_t threads[MAX_THREADS];
    int started[MAX_THREADS];
    for (int t = 0; t < nthreads; ++t) {
        plane_range *range = (plane_range *)(jobs + size * t);
        memcpy(range, base, size);
        range->begin = planes * t / nthreads;
        range->end = planes * (t + 1) / nthreads;
        range->status = 0;
        started[t] = 0;
    }
    for (int t = 1; t < nthreads; ++t)
        started[t] = pthread_create(&threads[t], NULL, fn, jobs + size * t) == 0;
    fn(jobs);
    for (int t = 1; t < nthreads; ++t) {
        if (started[t]) pthread_join(threads[t], NULL);
        else fn(jobs + size * t); /* run the range here rather than leave it unwritten */
    }
    int status = 0;
    for (int t = 0; t < nthreads; ++t)
        if (((plane_range *)(jobs + size * t))->status != 0) status = -1;
    free(jobs);
    return status;
}

#endif
