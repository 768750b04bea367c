/* bench_ckpt — save and load time of a training state (params + AdamW moments) through
 * parallel HDF5, on however many ranks it is launched with (mesh 1,N,1: each rank
 * writes and reads its fsdp shard).
 *
 *   mpirun -np N bench/bench_ckpt DIR [preset (default 1b)] [config overrides...]
 *
 * Prints one line: ranks, file size, save s and GB/s, load s and GB/s. Compare with
 * the raw sequential write speed of the same disk:
 *   dd if=/dev/zero of=DIR/dd.bin bs=16M count=256 conv=fsync
 */
#include "bpt/bpt.h"
#include "kernels/kernels.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int provided;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    if (argc < 2) bpt_die("usage: bench_ckpt DIR [preset]");
    const char *dir = argv[1], *preset = argc > 2 ? argv[2] : "1b";
    char err[1024], path[4096];
    bpt_config c;
    char pre[64];
    snprintf(pre, sizeof pre, "--load_llama_config=%s", preset);
    char *args[64] = {pre, "--mesh_dim=1,-1,1", "--train_dataset.hdf5_dataset.seq_length=16",
                      "--train_dataset.hdf5_dataset.batch_size=1"};
    int na = 4;
    for (int i = 3; i < argc && na < 64; i++) args[na++] = argv[i];
    if (bpt_config_from_args(&c, na, args, err, sizeof err) != 0) bpt_die("%s", err);
    bpt_mesh mesh;
    if (bpt_mesh_init(&mesh, c.mesh_dim, err, sizeof err) != 0) bpt_die("%s", err);
    size_t n = bpt_llama_num_params(&c.llama);
    size_t cap = 4 * (n / mesh.fsdp + (size_t)mesh.fsdp * 70000000) * sizeof(float) + ((size_t)256 << 20);
    bpt_arena a;
    if (bpt_arena_init(&a, &bpt_kernels_cpu, cap) != 0) bpt_die("arena");
    bpt_model *m = bpt_model_create(&c.llama, &bpt_kernels_cpu, &a, 1, 16, 1, &mesh.comm);
    /* a cheap non-zero pattern in every shard, so pages are real */
    for (int b = 0; b < 4; b += 2) {
        float *p = m->buf[b == 0 ? BPT_BUF_PARAM : BPT_BUF_M];
        for (size_t i = 0; i < m->nparams; i++) p[i] = (float)(i % 977) * 1e-3f;
    }
    memcpy(m->buf[BPT_BUF_V], m->buf[BPT_BUF_M], m->nparams * sizeof(float));
    snprintf(path, sizeof path, "%s/bench_%d.h5", dir, mesh.world_size);
    bpt_ckpt_meta meta = {1, 0, 0, 0, 0};
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = bpt_now();
    if (bpt_ckpt_save(path, m, &meta, "", 1, err, sizeof err) != 0) bpt_die("%s", err);
    MPI_Barrier(MPI_COMM_WORLD);
    double ts = bpt_now() - t0;
    t0 = bpt_now();
    if (bpt_ckpt_load(path, BPT_LOAD_TRAINSTATE, m, &meta, err, sizeof err) != 0) bpt_die("%s", err);
    MPI_Barrier(MPI_COMM_WORLD);
    double tl = bpt_now() - t0;
    struct stat st;
    stat(path, &st);
    double gb = st.st_size / 1e9;
    if (mesh.world_rank == 0)
        printf("| %d | %s (%.2fB) | %.2f GB | %.1f s | %.2f GB/s | %.1f s | %.2f GB/s |\n", mesh.world_size, preset,
               n / 1e9, gb, ts, gb / ts, tl, gb / tl);
    if (mesh.world_rank == 0) unlink(path);
    bpt_model_free(m);
    bpt_arena_destroy(&a);
    bpt_mesh_free(&mesh);
    MPI_Finalize();
    return 0;
}
