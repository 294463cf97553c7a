//go:build ignore

/* host.c: the kernels of kernels.cu compiled for the host, with a launcher
 * that runs one call per thread of the grid, for the stand-in library and the
 * tests. Build: cc -shared -fPIC -O2 -ffp-contract=off -o x.so host.c -lm */
#define TDM_HOST
#include "host.h"
#include "kernels.cu"

typedef struct {
	const char *name;
	size_t size;
	void (*run)(const void *params);
} tdm_entry;

#define TDM_WRAP(name, T) \
	static void run_##name(const void *p) { \
		T a; \
		memcpy(&a, p, sizeof a); \
		name(a); \
	}

TDM_WRAP(tdm_embed_gather, TdmEmbedGatherArgs)
TDM_WRAP(tdm_copy_cols, TdmCopyColsArgs)
TDM_WRAP(tdm_bn_apply, TdmBNApplyArgs)
TDM_WRAP(tdm_seq_tokens, TdmSeqTokensArgs)
TDM_WRAP(tdm_add_pos, TdmAddPosArgs)
TDM_WRAP(tdm_masked_softmax, TdmMaskedSoftmaxArgs)
TDM_WRAP(tdm_add_layer_norm, TdmAddLayerNormArgs)
TDM_WRAP(tdm_seq_summary, TdmSeqSummaryArgs)
TDM_WRAP(tdm_cross_combine, TdmCrossCombineArgs)
TDM_WRAP(tdm_mmoe_combine, TdmMMoECombineArgs)
TDM_WRAP(tdm_to_bf16, TdmToBF16Args)
TDM_WRAP(tdm_row_dot, TdmRowDotArgs)
TDM_WRAP(tdm_eligible, TdmEligibleArgs)
TDM_WRAP(tdm_topk, TdmTopKArgs)

#define TDM_ENTRY(name, T) {#name, sizeof(T), run_##name}

static const tdm_entry tdm_entries[] = {
	TDM_ENTRY(tdm_embed_gather, TdmEmbedGatherArgs),
	TDM_ENTRY(tdm_copy_cols, TdmCopyColsArgs),
	TDM_ENTRY(tdm_bn_apply, TdmBNApplyArgs),
	TDM_ENTRY(tdm_seq_tokens, TdmSeqTokensArgs),
	TDM_ENTRY(tdm_add_pos, TdmAddPosArgs),
	TDM_ENTRY(tdm_masked_softmax, TdmMaskedSoftmaxArgs),
	TDM_ENTRY(tdm_add_layer_norm, TdmAddLayerNormArgs),
	TDM_ENTRY(tdm_seq_summary, TdmSeqSummaryArgs),
	TDM_ENTRY(tdm_cross_combine, TdmCrossCombineArgs),
	TDM_ENTRY(tdm_mmoe_combine, TdmMMoECombineArgs),
	TDM_ENTRY(tdm_to_bf16, TdmToBF16Args),
	TDM_ENTRY(tdm_row_dot, TdmRowDotArgs),
	TDM_ENTRY(tdm_eligible, TdmEligibleArgs),
	TDM_ENTRY(tdm_topk, TdmTopKArgs),
};

static const tdm_entry *tdm_find(const char *name) {
	if (!name) return NULL;
	for (size_t i = 0; i < sizeof tdm_entries / sizeof tdm_entries[0]; i++)
		if (strcmp(tdm_entries[i].name, name) == 0) return &tdm_entries[i];
	return NULL;
}

/* tdm_host_sizeof returns the size of the kernel's parameter struct, 0 for an
 * unknown kernel. */
size_t tdm_host_sizeof(const char *name) {
	const tdm_entry *e = tdm_find(name);
	return e ? e->size : 0;
}

/* tdm_host_launch runs the kernel once per thread of grid x block: 0 success,
 * 1 unknown kernel, 2 size is not the kernel's parameter size. */
int tdm_host_launch(const char *name, const unsigned int grid[3], const unsigned int block[3],
	const void *params, size_t size) {
	const tdm_entry *e = tdm_find(name);
	if (!e) return 1;
	if (size != e->size) return 2;
	gridDim.x = grid[0], gridDim.y = grid[1], gridDim.z = grid[2];
	blockDim.x = block[0], blockDim.y = block[1], blockDim.z = block[2];
	for (unsigned int bz = 0; bz < grid[2]; bz++)
		for (unsigned int by = 0; by < grid[1]; by++)
			for (unsigned int bx = 0; bx < grid[0]; bx++)
				for (unsigned int tz = 0; tz < block[2]; tz++)
					for (unsigned int ty = 0; ty < block[1]; ty++)
						for (unsigned int tx = 0; tx < block[0]; tx++) {
							blockIdx.x = bx, blockIdx.y = by, blockIdx.z = bz;
							threadIdx.x = tx, threadIdx.y = ty, threadIdx.z = tz;
							e->run(params);
						}
	return 0;
}
