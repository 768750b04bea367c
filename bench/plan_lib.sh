# plan_lib.sh — what plan_tables.sh and plan_sp.sh share: the reference's recipe as
# bpt plan arguments, and reading a size out of the plan's output. Sourced.
#   recipe_plan OUT MODEL T MESH RANKS BATCH [overrides...]   bpt plan into the file OUT
#   plan_size OUT KEY                                          "1.50 GiB" from KEY's line
recipe_plan() {
    local out=$1 model=$2 T=$3 mesh=$4 n=$5 batch=$6; shift 6
    src/bpt plan --load_llama_config="$model" --mesh_dim="$mesh" --world_size="$n" \
        --llama.max_sequence_length="$T" --train_dataset.hdf5_dataset.seq_length="$T" \
        --train_dataset.hdf5_dataset.batch_size="$batch" --llama.scan_attention=true --llama.scan_mlp=true \
        --llama.scan_loss=true --llama.remat_block=nothing_saveable --llama.remat_attention=nothing_saveable \
        --llama.remat_mlp=nothing_saveable --llama.scan_query_chunk_size=2048 --llama.scan_key_chunk_size=4096 \
        --llama.scan_mlp_chunk_size=2048 --llama.scan_loss_chunk_size=2048 "$@" > "$out"
}
plan_size() { sed -n "s/^ *$2 *\([0-9.]* [KMGT]*i*B\).*/\1/p" "$1" | head -n 1; }
