/* tboard.h — TensorBoard event files, written from C (no Python in the job).
 *
 * A file is a sequence of TFRecords: uint64 length (little-endian), uint32 masked
 * CRC-32C of those 8 bytes, the data, uint32 masked CRC-32C of the data (masked:
 * ((crc >> 15) | (crc << 17)) + 0xa282ead8). Each record is one tensorflow.Event
 * protocol buffer, encoded by hand (src/tboard.c) with the field numbers of
 * tensorboard/compat/proto/event.proto and summary.proto:
 *   Event            1 wall_time (double), 2 step (int64), 3 file_version (string),
 *                    5 summary (Summary)
 *   Summary          1 value (repeated Value)
 *   Summary.Value    1 tag (string), 2 simple_value (float), 8 tensor (TensorProto),
 *                    9 metadata (SummaryMetadata)
 *   SummaryMetadata  1 plugin_data (PluginData: 1 plugin_name, 2 content)
 *   TensorProto      1 dtype (DT_STRING = 7), 2 tensor_shape (TensorShapeProto: 2 dim,
 *                    TensorShapeProto.Dim: 1 size), 8 string_val (repeated bytes)
 * The first record says file_version "brain.Event:2"; scalars are simple_value (what
 * TensorBoard's scalar dashboard and EventAccumulator.Scalars read); text is a string
 * tensor under the "text" plugin.
 *
 * Writing is buffered; bpt_tboard_flush pushes it to the file and says whether every
 * byte got there (a full disk is an error, as for metrics.jsonl).
 */
#ifndef BPT_TBOARD_H
#define BPT_TBOARD_H

#include <stddef.h>
#include <stdint.h>

typedef struct bpt_tboard bpt_tboard;

/* A new event file in dir (made if missing): events.out.tfevents.<unix time>.<host>
 * (".1", ".2", ... appended should that name exist: a resumed run adds a file, and
 * TensorBoard reads them all, in name order). NULL with err naming the file. */
bpt_tboard *bpt_tboard_open(const char *dir, char *err, size_t errlen);
/* The file's path. */
const char *bpt_tboard_path(const bpt_tboard *t);

/* Scalars of one step go into one event: begin, add each, end. wall_time: seconds since
 * the epoch. */
void bpt_tboard_begin(bpt_tboard *t, int64_t step, double wall_time);
void bpt_tboard_scalar(bpt_tboard *t, const char *tag, double value);
void bpt_tboard_end(bpt_tboard *t);
/* A text summary (the text plugin), e.g. the resolved config. */
void bpt_tboard_text(bpt_tboard *t, int64_t step, double wall_time, const char *tag, const char *text);

/* Write what is buffered. 0, or -1 with err ("<file>: cannot write: <reason>"). */
int bpt_tboard_flush(bpt_tboard *t, char *err, size_t errlen);
void bpt_tboard_close(bpt_tboard *t);

/* CRC-32C (Castagnoli) of n bytes, and TFRecord's mask of it. */
uint32_t bpt_crc32c(const void *data, size_t n);
uint32_t bpt_crc32c_masked(const void *data, size_t n);

#endif
