/* mesh.h — the 4-D device mesh (dp, fsdp, tp, sp) built from mesh_dim.
 *
 * mesh_dim is "dp,fsdp,tp" or "dp,fsdp,tp,sp" (at most one -1, inferred from the number
 * of ranks; sp is 1 when not given) or the named form "dp:1,fsdp:8,tp:1,sp:4" (mp is
 * accepted for tp, sp may be left out). World rank r sits at
 *   tp   = r % tp_size
 *   sp   = (r / tp_size) % sp_size
 *   fsdp = (r / (tp_size * sp_size)) % fsdp_size
 *   dp   = r / (tp_size * sp_size * fsdp_size)
 * so tensor parallelism is fastest-varying and stays inside a node, and the sequence
 * ring (sp) comes next. Each axis gets its MPI sub-communicator, with two that span
 * more than one axis: the fsdp communicator is fsdp x sp (parameters, gradients and
 * AdamW state are sharded over both, so the sp ranks do not replicate the model), and
 * the batch axis (the loss's token counts) is dp x fsdp x sp. A rank's batch rows are
 * given by its dp and fsdp coordinates; its tokens of them by its sp coordinate.
 */
#ifndef BPT_MESH_H
#define BPT_MESH_H

#include <stddef.h>
#include "comm.h"

typedef struct bpt_mesh {
    int dp, fsdp, tp, sp;         /* axis sizes */
    int dp_rank, fsdp_rank, tp_rank, sp_rank;
    int world_size, world_rank;
    int local_rank, local_size;   /* this rank on its node (chooses the GPU on cuda) */
    bpt_comm comm;
} bpt_mesh;

/* Parse mesh_dim for world_size ranks into dims[BPT_MESH_AXES] (dp, fsdp, tp, sp). 0, or -1 with a one-line error
 * naming mesh_dim, the value and the numbers. No MPI calls. */
int bpt_mesh_parse(const char *mesh_dim, int world_size, int dims[4], char *err, size_t errlen);

/* Build the mesh over MPI_COMM_WORLD (collective). 0 or -1 with message. */
int bpt_mesh_init(bpt_mesh *m, const char *mesh_dim, char *err, size_t errlen);
void bpt_mesh_free(bpt_mesh *m);

#endif
