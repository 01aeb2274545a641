// Thin C layer over oneDNN's C API: one struct per primitive holding the
// primitive, its argument list and one memory object per argument (data
// handles are set at each execution, so Go owns every buffer).
#ifndef FRACD_DNNL_GLUE_H
#define FRACD_DNNL_GLUE_H

#include <stddef.h>
#include <oneapi/dnnl/dnnl.h>

#define FD_MAX_ARGS 11

typedef struct fd_prim {
	dnnl_primitive_t prim;
	dnnl_primitive_desc_t pd;
	int nargs;
	int args[FD_MAX_ARGS];
	dnnl_memory_t mem[FD_MAX_ARGS];
	size_t scratch; // bytes of user scratchpad (0: none)
	char impl[64];  // implementation name, for benchmarks and logs
} fd_prim;

// Layout codes shared with Go.
enum { FD_NCHW = 0, FD_BLOCKED = 1, FD_ANY = 2, FD_NC = 3 };

int fd_init(void);
void fd_free(fd_prim *p);
size_t fd_arg_size(fd_prim *p, int arg);
const dnnl_memory_desc_t *fd_arg_md(fd_prim *p, int arg);
int fd_same_md(const dnnl_memory_desc_t *a, const dnnl_memory_desc_t *b);
int fd_exec(fd_prim *p, int nthr, void *a0, void *a1, void *a2, void *a3, void *a4, void *a5,
            void *a6, void *a7, void *a8, void *a9, void *scratch);

// kind: 0 forward inference, 1 forward training, 2 backward data, 3 backward weights,
// 4 forward inference with bfloat16 source and weights (f32 bias and destination),
// 5 as 4 with a bfloat16 destination.
int fd_conv(fd_prim **out, int kind, int n, int c, int h, int w, int oc, int k, int s, int p,
            int src_layout, int dst_layout, int bias, int sum, int relu, int nthr);
int fd_reorder(fd_prim **out, const dnnl_memory_desc_t *src, const dnnl_memory_desc_t *dst, int nthr);
// a plain (OIHW / NCHW / nChw16c) descriptor, returned in storage the caller frees with fd_md_free.
dnnl_memory_desc_t *fd_md(int n, int c, int h, int w, int layout, int weights, int bf16);
// whether the CPU runs bfloat16 natively (AVX512-BF16 or later), not emulated.
int fd_native_bf16(void);
void fd_md_free(dnnl_memory_desc_t *md);
// kind: 0 forward inference, 1 forward training, 2 backward; alg 0 max, 1 avg.
int fd_pool(fd_prim **out, int kind, int alg, int n, int c, int h, int w, int k, int s, int p, int nthr);

#endif
