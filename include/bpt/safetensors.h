/* safetensors.h — the safetensors container (https://github.com/huggingface/safetensors):
 *
 *   bytes 0..7      N, the header length, little-endian uint64
 *   bytes 8..8+N    a JSON object: "__metadata__" (ignored) and, per tensor,
 *                   NAME: {"dtype": "F32", "shape": [a, b], "data_offsets": [begin, end]}
 *   bytes 8+N...    the data region; a tensor's bytes are [begin, end) of it, row-major
 *
 * Reading (bpt ckpt import) parses and validates the header, in memory or from a file,
 * then reads tensors one at a time as fp32; writing (bpt ckpt export) makes the header
 * of tensors laid out back to back. The hosts are assumed little-endian, as the format
 * is. Errors go into the caller's err buffer (util.h): a parse of bytes says what is
 * wrong ("malformed header: ...", "truncated: ..."), a function given a path puts the
 * path first.
 */
#ifndef BPT_SAFETENSORS_H
#define BPT_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define BPT_SAFETENSORS_MAX_DIMS 8
#define BPT_SAFETENSORS_MAX_HEADER ((uint64_t)100 << 20)   /* a longer header is not a safetensors file */

/* The element types bpt reads (converted to fp32: exactly, except F64). */
typedef enum { BPT_ST_F32 = 0, BPT_ST_F16, BPT_ST_BF16, BPT_ST_F64 } bpt_st_dtype;

typedef struct bpt_safetensors_tensor {
    char *name;
    bpt_st_dtype dtype;
    int ndim;
    int64_t shape[BPT_SAFETENSORS_MAX_DIMS];
    uint64_t offset;       /* absolute byte offset of the data in the file */
    uint64_t nbytes;       /* numel * dtype size; within the file */
} bpt_safetensors_tensor;

/* A parsed header: the tensors in header order, without __metadata__. */
typedef struct bpt_safetensors_header {
    uint64_t data_start;   /* 8 + N: where the data region begins */
    int n;
    bpt_safetensors_tensor *t;   /* names malloc'd */
} bpt_safetensors_header;

/* An open safetensors file with its parsed header. */
typedef struct bpt_safetensors_file {
    char *path;
    int fd;
    bpt_safetensors_header h;
} bpt_safetensors_file;

/* "F32", "F16", "BF16", "F64"; the element size in bytes. */
const char *bpt_safetensors_dtype_name(bpt_st_dtype d);
int bpt_safetensors_dtype_size(bpt_st_dtype d);

/* bfloat16 bits (the upper half of an fp32) and IEEE half bits -> float, exactly. */
float bpt_bf16_to_f32(uint16_t h);
float bpt_f16_to_f32(uint16_t h);

/* From the first len bytes of a file of file_size bytes: *size = 8 + N, the bytes a
 * parse of the header needs. Checks N against the file and the 100 MiB limit. 0 or -1. */
int bpt_safetensors_header_size(const void *buf, size_t len, uint64_t file_size, uint64_t *size,
                                char *err, size_t errlen);
/* Parse and validate the header held in the first len bytes of buf (8 + N of them at
 * least: the length, the JSON; the rest of the file may follow), the file being
 * file_size bytes long: valid JSON without duplicate keys, every entry with a known
 * dtype, a shape of at most 8 non-negative dims whose byte size does not overflow,
 * data_offsets [begin, end] of exactly that size and within the data region. On 0, *out
 * holds the tensors (free with bpt_safetensors_header_free); on -1, *out is empty. */
int bpt_safetensors_parse_header(const void *buf, size_t len, uint64_t file_size,
                                 bpt_safetensors_header *out, char *err, size_t errlen);
void bpt_safetensors_header_free(bpt_safetensors_header *h);
/* The index of the tensor called name in h, or -1. */
int bpt_safetensors_find(const bpt_safetensors_header *h, const char *name);

/* The header of a file holding t[0..n) back to back in that order, each with its name,
 * dtype, ndim and shape set: the 8-byte length and the compact JSON ("__metadata__":
 * {"format": "pt"} first), padded with spaces to a multiple of 8 bytes. Fills each
 * t's offset and nbytes; returns the bytes (malloc'd), their number in *len. */
unsigned char *bpt_safetensors_header_write(bpt_safetensors_tensor *t, int n, size_t *len);

/* Open path and parse its header (errors name the path). 0, or -1 with f closed. */
int bpt_safetensors_open(const char *path, bpt_safetensors_file *f, char *err, size_t errlen);
/* Read tensor t of f converted to fp32 into out (nbytes / dtype size floats). 0 or -1. */
int bpt_safetensors_read_f32(const bpt_safetensors_file *f, const bpt_safetensors_tensor *t, float *out,
                             char *err, size_t errlen);
void bpt_safetensors_close(bpt_safetensors_file *f);

#endif
