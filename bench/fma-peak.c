// The machine's fp32 FMA peak, the denominator of the training bench's MFU:
// 12 independent chains of 512-bit fused multiply-adds per thread, nothing else.
// Build and run: gcc -O3 -march=native -pthread bench/fma-peak.c -o /tmp/fma-peak && /tmp/fma-peak 2
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define ITERATIONS 200000000L
#define CHAINS 12

static void *chains(void *out)
{
    __m512 acc[CHAINS];
    __m512 a = _mm512_set1_ps(1.0000001f), b = _mm512_set1_ps(0.999999f);
    for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_set1_ps((float)i);
    for (long n = 0; n < ITERATIONS; n++)
        for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
    float s = 0;
    for (int i = 0; i < CHAINS; i++) s += _mm512_reduce_add_ps(acc[i]);
    *(float *)out = s;
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    pthread_t t[64];
    float sink[64];
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, chains, &sink[i]);
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &end);
    double seconds = (end.tv_sec - start.tv_sec) + (end.tv_nsec - start.tv_nsec) / 1e9;
    printf("%d threads: %.0f GFLOP/s fp32 FMA peak\n", threads, threads * ITERATIONS * CHAINS * 32.0 / seconds / 1e9);
    return sink[0] == 12345.0f;
}
