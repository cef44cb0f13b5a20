/* A tiny fork-join pool for the forward pass: the caller plus n-1 workers pull task
 * indices from a shared counter. BLAS calls made inside tasks run single-threaded
 * (the pool lowers OpenBLAS to one thread for the parallel region). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "loupe_impl.h"

extern void openblas_set_num_threads(int) __attribute__((weak));
extern int openblas_get_num_threads(void) __attribute__((weak));

struct lpi_pool {
    int n; /* threads including the caller */
    pthread_t *th;
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    unsigned long gen;
    int busy, stop;
    void (*fn)(int task, int thread, void *ctx);
    void *ctx;
    int n_tasks;
    atomic_int next;
};

typedef struct worker_arg {
    lpi_pool *p;
    int id;
} worker_arg;

static void drain(lpi_pool *p, int id)
{
    for (;;) {
        int t = atomic_fetch_add(&p->next, 1);
        if (t >= p->n_tasks)
            break;
        p->fn(t, id, p->ctx);
    }
}

static void *worker(void *arg)
{
    worker_arg *wa = arg;
    lpi_pool *p = wa->p;
    int id = wa->id;
    free(wa);
    unsigned long seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->gen == seen && !p->stop)
            pthread_cond_wait(&p->go, &p->mu);
        if (p->stop)
            break;
        seen = p->gen;
        pthread_mutex_unlock(&p->mu);
        drain(p, id);
        pthread_mutex_lock(&p->mu);
        if (--p->busy == 0)
            pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

lpi_pool *lpi_pool_new(int n)
{
    if (n < 1)
        n = 1;
    lpi_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->n = n;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    p->th = calloc((size_t)n, sizeof *p->th);
    for (int i = 1; i < n; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        wa->p = p;
        wa->id = i;
        if (pthread_create(&p->th[i], NULL, worker, wa) != 0) {
            free(wa);
            p->n = i; /* run with what we have */
            break;
        }
    }
    return p;
}

void lpi_pool_free(lpi_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++)
        pthread_join(p->th[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done);
    free(p->th);
    free(p);
}

int lpi_pool_size(const lpi_pool *p) { return p ? p->n : 1; }

void lpi_pool_run(lpi_pool *p, int n_tasks, void (*fn)(int task, int thread, void *ctx), void *ctx)
{
    if (!p || p->n == 1 || n_tasks <= 1) {
        for (int t = 0; t < n_tasks; t++)
            fn(t, 0, ctx);
        return;
    }
    int blas_threads = openblas_get_num_threads ? openblas_get_num_threads() : 1;
    if (openblas_set_num_threads && blas_threads > 1)
        openblas_set_num_threads(1);
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->n_tasks = n_tasks;
    atomic_store(&p->next, 0);
    p->busy = p->n - 1;
    p->gen++;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    drain(p, 0);
    pthread_mutex_lock(&p->mu);
    while (p->busy > 0)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
    if (openblas_set_num_threads && blas_threads > 1)
        openblas_set_num_threads(blas_threads);
}
