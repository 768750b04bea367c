/* bpt_grad — loss, accuracy and every gradient of one batch, for the PyTorch oracle.
 *
 *   bpt_grad --params IN.h5 --batch BATCH.h5 --output OUT.h5 [--mode grad|eval] [config...]
 *
 * IN.h5 /params/<HF name> (fp32, HF shapes); BATCH.h5 /input_tokens, /target_tokens
 * (int32, B x T), /loss_masks (fp32). OUT.h5 /loss, /accuracy (float64 scalars) and, in
 * grad mode, /grads/<HF name>. The loss is the token-weighted mean over the batch.
 */
#include "bpt/bpt.h"
#include "kernels/kernels.h"

#include <hdf5.h>
#include <stdlib.h>
#include <string.h>

static int read_2d(hid_t f, const char *name, hid_t type, void **out, hsize_t dims[2], int ndim_want) {
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d < 0) return -1;
    hid_t sp = H5Dget_space(d);
    int nd = H5Sget_simple_extent_ndims(sp);
    hsize_t dd[2] = {1, 1};
    if (nd != ndim_want || nd > 2) { H5Sclose(sp); H5Dclose(d); return -2; }
    H5Sget_simple_extent_dims(sp, dd, NULL);
    size_t n = (size_t)dd[0] * (nd == 2 ? dd[1] : 1);
    *out = bpt_xmalloc(n * 4);
    herr_t e = H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, *out);
    H5Sclose(sp);
    H5Dclose(d);
    dims[0] = dd[0];
    dims[1] = nd == 2 ? dd[1] : 0;
    return e < 0 ? -1 : 0;
}

static void write_scalar(hid_t f, const char *name, double v) {
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t d = H5Dcreate2(f, name, H5T_NATIVE_DOUBLE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v);
    H5Dclose(d);
    H5Sclose(sp);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    const char *params = NULL, *batch = NULL, *output = NULL, *mode = "grad";
    char **rest = bpt_xcalloc((size_t)argc, sizeof(char *));
    int nrest = 0;
    for (int i = 1; i < argc; i++) {
        const char **dst = !strcmp(argv[i], "--params") ? &params : !strcmp(argv[i], "--batch") ? &batch
                         : !strcmp(argv[i], "--output") ? &output : !strcmp(argv[i], "--mode") ? &mode : NULL;
        if (dst && i + 1 < argc) *dst = argv[++i];
        else rest[nrest++] = argv[i];
    }
    if (!params || !batch || !output) bpt_die("usage: bpt_grad --params IN.h5 --batch BATCH.h5 --output OUT.h5 [--mode grad|eval] [config...]");
    int train = strcmp(mode, "eval") != 0;

    hid_t fb = H5Fopen(batch, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (fb < 0) bpt_die("%s: cannot open", batch);
    int32_t *inp, *tgt;
    float *mask;
    hsize_t d1[2], d2[2], d3[2];
    if (read_2d(fb, "input_tokens", H5T_NATIVE_INT32, (void **)&inp, d1, 2) ||
        read_2d(fb, "target_tokens", H5T_NATIVE_INT32, (void **)&tgt, d2, 2) ||
        read_2d(fb, "loss_masks", H5T_NATIVE_FLOAT, (void **)&mask, d3, 2))
        bpt_die("%s: expected /input_tokens, /target_tokens (int32) and /loss_masks (float32), B x T", batch);
    H5Fclose(fb);
    int B = (int)d1[0], T = (int)d1[1];

    /* the batch shape sets seq_length and batch_size of the (unused) train dataset */
    char **args = bpt_xcalloc((size_t)nrest + 3, sizeof(char *));
    char a1[64], a2[64];
    snprintf(a1, sizeof a1, "--train_dataset.hdf5_dataset.seq_length=%d", T);
    snprintf(a2, sizeof a2, "--train_dataset.hdf5_dataset.batch_size=%d", B);
    args[0] = a1;
    args[1] = a2;
    for (int i = 0; i < nrest; i++) args[i + 2] = rest[i];
    bpt_config c;
    char err[1024];
    bpt_config_defaults(&c);
    if (bpt_config_from_args(&c, nrest + 2, args, err, sizeof err) != 0) bpt_die("%s", err);

    size_t peak = bpt_plan_peak_bytes(&c, B, T);
    bpt_arena arena;
    BPT_CHECK(bpt_arena_init(&arena, &bpt_kernels_cpu, peak) == 0, "arena");
    bpt_model *m = bpt_model_create(&c.llama, &bpt_kernels_cpu, &arena, B, T, 1, NULL);

    hid_t fp = H5Fopen(params, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (fp < 0) bpt_die("%s: cannot open", params);
    for (int i = 0; i < m->ntensors; i++) {
        const bpt_tensor *t = &m->tensors[i];
        char name[160];
        snprintf(name, sizeof name, "params/%s", t->name);
        float *h;
        hsize_t dd[2];
        int rc = read_2d(fp, name, H5T_NATIVE_FLOAT, (void **)&h, dd, t->ndim);
        if (rc == -1) bpt_die("%s: missing tensor %s", params, t->name);
        if (rc == -2 || (int64_t)dd[0] != t->shape[0] || (t->ndim == 2 && (int64_t)dd[1] != t->shape[1]))
            bpt_die("%s: tensor %s has the wrong shape (model expects [%lld%s%lld])", params, t->name,
                    (long long)t->shape[0], t->ndim == 2 ? ", " : "", t->ndim == 2 ? (long long)t->shape[1] : 0LL);
        bpt_model_set(m, BPT_BUF_PARAM, i, h);
        free(h);
    }
    H5Fclose(fp);

    double count = 0, out[2] = {0, 0};
    for (int i = 0; i < B * T; i++) count += mask[i];
    if (train) bpt_model_forward_backward(m, inp, tgt, mask, (float)(1.0 / count), out);
    else bpt_model_forward(m, inp, tgt, mask, out);
    printf("loss %.9g accuracy %.6g peak_arena_bytes %zu\n", out[0] / count, out[1] / count, arena.peak);

    hid_t fo = H5Fcreate(output, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (fo < 0) bpt_die("%s: cannot create", output);
    write_scalar(fo, "loss", out[0] / count);
    write_scalar(fo, "accuracy", out[1] / count);
    if (train) {
        hid_t g = H5Gcreate2(fo, "grads", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        for (int i = 0; i < m->ntensors; i++) {
            const bpt_tensor *t = &m->tensors[i];
            float *h = bpt_xmalloc(t->numel * sizeof(float));
            bpt_model_get(m, BPT_BUF_GRAD, i, h);
            hsize_t dims[2] = {(hsize_t)t->shape[0], (hsize_t)t->shape[1]};
            hid_t sp = H5Screate_simple(t->ndim, dims, NULL);
            hid_t d = H5Dcreate2(g, t->name, H5T_NATIVE_FLOAT, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
            H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, h);
            H5Dclose(d);
            H5Sclose(sp);
            free(h);
        }
        H5Gclose(g);
    }
    H5Fclose(fo);
    bpt_model_free(m);
    bpt_arena_destroy(&arena);
    free(inp); free(tgt); free(mask); free(rest); free(args);
    MPI_Finalize();
    return 0;
}
