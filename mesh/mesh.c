/* mesh.c — mesh_dim parsing and the MPI sub-communicators of the 4-D mesh. */
#include "bpt/mesh.h"
#include "bpt/util.h"
#include "bpt/config.h"   /* bpt_mesh_dim_parse: the one parser of the syntax */

#include <stdlib.h>
#include <string.h>

static const char *axis_names[BPT_NAXES] = {"dp", "fsdp", "tp", "sp", "batch", "world"};
const char *bpt_axis_name(bpt_axis a) { return axis_names[a]; }

int bpt_mesh_parse(const char *mesh_dim, int world, int dims[BPT_MESH_AXES], char *err, size_t errlen) {
    char why[512];
    if (bpt_mesh_dim_parse(mesh_dim, dims, why, sizeof why) != 0)
        return bpt_err(err, errlen, "bad value for mesh_dim: '%s' (%s)", mesh_dim, why);
    int infer = -1, prod = 1;
    for (int i = 0; i < BPT_MESH_AXES; i++) {
        if (dims[i] == -1) {
            if (infer >= 0)
                return bpt_err(err, errlen, "bad value for mesh_dim: '%s' (at most one -1)", mesh_dim);
            infer = i;
        } else {
            prod *= dims[i];
        }
    }
    if (infer >= 0) {
        if (world % prod != 0)
            return bpt_err(err, errlen, "bad value for mesh_dim: '%s' (%d ranks are not divisible by %d; HINT: mesh_dim product must equal the number of ranks)", mesh_dim, world, prod);
        dims[infer] = world / prod;
        prod = world;
    }
    if (prod != world)
        return bpt_err(err, errlen, "bad value for mesh_dim: '%s' (product %d != %d ranks; HINT: mesh_dim product must equal the number of ranks)", mesh_dim, prod, world);
    return 0;
}

int bpt_mesh_init(bpt_mesh *m, const char *mesh_dim, char *err, size_t errlen) {
    memset(m, 0, sizeof *m);
    MPI_Comm_size(MPI_COMM_WORLD, &m->world_size);
    MPI_Comm_rank(MPI_COMM_WORLD, &m->world_rank);
    int dims[BPT_MESH_AXES];
    if (bpt_mesh_parse(mesh_dim, m->world_size, dims, err, errlen) != 0) return -1;
    m->dp = dims[0];
    m->fsdp = dims[1];
    m->tp = dims[2];
    m->sp = dims[3];
    /* the node-local rank: Slurm's or Open MPI's word for it, else ranks sharing memory */
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, m->world_rank, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &m->local_rank);
    MPI_Comm_size(node, &m->local_size);
    MPI_Comm_free(&node);
    const char *lr = getenv("SLURM_LOCALID");
    if (!lr) lr = getenv("OMPI_COMM_WORLD_LOCAL_RANK");
    if (lr) m->local_rank = atoi(lr);
    int r = m->world_rank, tp = m->tp, sp = m->sp, fsdp = m->fsdp;
    m->tp_rank = r % tp;
    m->sp_rank = (r / tp) % sp;
    m->fsdp_rank = (r / (tp * sp)) % fsdp;
    m->dp_rank = r / (tp * sp * fsdp);
    int dpr = m->dp_rank, fr = m->fsdp_rank, sr = m->sp_rank, tr = m->tp_rank;
    bpt_comm *c = &m->comm;
    /* ranks sharing every coordinate but one form that axis's communicator (the color
     * numbers the other coordinates, the key orders the ranks along the axis) */
    MPI_Comm_split(MPI_COMM_WORLD, (dpr * fsdp + fr) * sp + sr, tr, &c->comm[BPT_AXIS_TP]);
    MPI_Comm_split(MPI_COMM_WORLD, (dpr * fsdp + fr) * tp + tr, sr, &c->comm[BPT_AXIS_SP]);
    /* parameters are sharded over fsdp x sp: the fsdp communicator spans both */
    MPI_Comm_split(MPI_COMM_WORLD, dpr * tp + tr, fr * sp + sr, &c->comm[BPT_AXIS_FSDP]);
    MPI_Comm_split(MPI_COMM_WORLD, (fr * sp + sr) * tp + tr, dpr, &c->comm[BPT_AXIS_DP]);
    /* the loss's tokens: every rank of one tp coordinate */
    MPI_Comm_split(MPI_COMM_WORLD, tr, (dpr * fsdp + fr) * sp + sr, &c->comm[BPT_AXIS_BATCH]);
    MPI_Comm_dup(MPI_COMM_WORLD, &c->comm[BPT_AXIS_WORLD]);
    for (int a = 0; a < BPT_NAXES; a++) {
        MPI_Comm_size(c->comm[a], &c->size[a]);
        MPI_Comm_rank(c->comm[a], &c->rank[a]);
    }
    return 0;
}

void bpt_mesh_free(bpt_mesh *m) {
    bpt_comm_nccl_free(&m->comm);   /* first: its watchdog poll must not outlive the process's CUDA */
    for (int a = 0; a < BPT_NAXES; a++)
        if (m->comm.comm[a] != MPI_COMM_NULL && m->comm.comm[a]) MPI_Comm_free(&m->comm.comm[a]);
}
