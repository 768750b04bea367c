# tiny.sh — the tiny model the multi-rank, fault, TensorBoard and same-as tests train
# (sourced): 2 layers, D 64, 8 heads, 4 kv heads, F 192, 256 byte tokens, fp32, chunks
# that divide T = 64; batch 8 of the synthetic corpus. TOP is the source tree.
# tiny_common TRAIN.h5 [EVAL.h5]: the array TINY, to which a test adds its own keys.
TINY_MODEL=(--config "$TOP/jobs/configs/demo.yaml" --load_llama_config=tiny --dtype=fp32
            --llama.vocab_size=256 --llama.hidden_size=64 --llama.num_attention_heads=8 --llama.num_key_value_heads=4
            --llama.intermediate_size=192 --llama.num_hidden_layers=2
            --llama.scan_query_chunk_size=16 --llama.scan_key_chunk_size=32
            --llama.scan_mlp_chunk_size=16 --llama.scan_loss_chunk_size=32)
tiny_common() {
    TINY=("${TINY_MODEL[@]}" --train_dataset.hdf5_dataset.path="$1" --train_dataset.hdf5_dataset.seq_length=64
          --train_dataset.hdf5_dataset.batch_size=8 --log_freq=1 --peak_flops=1e11 --checkpointer.save_optimizer_state=true)
    if [ -n "${2:-}" ]; then
        TINY+=(--eval_dataset.hdf5_dataset.path="$2" --eval_dataset.hdf5_dataset.seq_length=64
               --eval_dataset.hdf5_dataset.batch_size=8)
    fi
}
