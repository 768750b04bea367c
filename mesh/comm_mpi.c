/* comm_mpi.c — the collectives of comm.h over MPI, for host buffers. Byte counts are
 * what this rank sends under a ring algorithm: all-reduce 2(p-1)/p n, all-gather and
 * reduce-scatter (p-1)/p of the full buffer, broadcast n. */
#include "bpt/comm.h"

static void count(bpt_comm *c, bpt_axis a, double bytes) { c->bytes[a] += (uint64_t)bytes; }

void bpt_allreduce_f32(bpt_comm *c, bpt_axis a, float *buf, size_t n) {
    int p = c->size[a];
    if (p == 1) return;
    MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, c->comm[a]);
    count(c, a, 2.0 * (p - 1) / p * n * sizeof(float));
}

void bpt_allreduce_f64(bpt_comm *c, bpt_axis a, double *buf, size_t n) {
    int p = c->size[a];
    if (p == 1) return;
    MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, MPI_SUM, c->comm[a]);
    count(c, a, 2.0 * (p - 1) / p * n * sizeof(double));
}

int bpt_allreduce_max_int(bpt_comm *c, bpt_axis a, int v) {
    if (c->size[a] == 1) return v;
    int out;
    MPI_Allreduce(&v, &out, 1, MPI_INT, MPI_MAX, c->comm[a]);
    return out;
}

void bpt_allgather_f32(bpt_comm *c, bpt_axis a, float *out, const float *in, size_t n) {
    int p = c->size[a];
    MPI_Allgather(in, (int)n, MPI_FLOAT, out, (int)n, MPI_FLOAT, c->comm[a]);
    count(c, a, (double)(p - 1) * n * sizeof(float));
}

void bpt_reduce_scatter_f32(bpt_comm *c, bpt_axis a, float *out, const float *in, size_t n) {
    int p = c->size[a];
    MPI_Reduce_scatter_block(in, out, (int)n, MPI_FLOAT, MPI_SUM, c->comm[a]);
    count(c, a, (double)(p - 1) * n * sizeof(float));
}

void bpt_broadcast(bpt_comm *c, bpt_axis a, void *buf, size_t bytes, int root) {
    if (c->size[a] == 1) return;
    MPI_Bcast(buf, (int)bytes, MPI_BYTE, root, c->comm[a]);
    count(c, a, (double)bytes);
}

void bpt_barrier(bpt_comm *c, bpt_axis a) { MPI_Barrier(c->comm[a]); }
