//go:build !nodnnl

#include "glue.h"

#include <stdlib.h>
#include <string.h>

// oneDNN's CPU runtime here is OpenMP: the thread count of a parallel
// region is the calling thread's ICV, so it is set right before each
// primitive is created (the JIT kernels fix their partition then) and run.
extern void omp_set_num_threads(int);

static dnnl_engine_t eng;
static dnnl_stream_t strm;

int fd_native_bf16(void) {
	// ISA values are feature masks: each includes the ones below it
	return (dnnl_get_effective_cpu_isa() & dnnl_cpu_isa_avx512_core_bf16) == dnnl_cpu_isa_avx512_core_bf16;
}

int fd_init(void) {
	if (eng) return 0;
	int st = dnnl_engine_create(&eng, dnnl_cpu, 0);
	if (st != dnnl_success) return st;
	// the default CPU stream is in-order and synchronous for the OpenMP runtime
	return dnnl_stream_create(&strm, eng, dnnl_stream_default_flags);
}

static dnnl_format_tag_t tag_of(int layout, int weights) {
	if (weights) return layout == FD_ANY ? dnnl_format_tag_any : dnnl_oihw;
	switch (layout) {
	case FD_BLOCKED: return dnnl_nChw16c;
	case FD_ANY: return dnnl_format_tag_any;
	case FD_NC: return dnnl_nc;
	default: return dnnl_nchw;
	}
}

static int md4t(dnnl_memory_desc_t *md, int n, int c, int h, int w, int layout, int weights, dnnl_data_type_t dt) {
	dnnl_dims_t d = {n, c, h, w};
	return dnnl_memory_desc_init_by_tag(md, 4, d, dt, tag_of(layout, weights));
}

static int md4(dnnl_memory_desc_t *md, int n, int c, int h, int w, int layout, int weights) {
	return md4t(md, n, c, h, w, layout, weights, dnnl_f32);
}

dnnl_memory_desc_t *fd_md(int n, int c, int h, int w, int layout, int weights, int bf16) {
	dnnl_memory_desc_t *md = malloc(sizeof *md);
	if (!md) return NULL;
	if (md4t(md, n, c, h, w, layout, weights, bf16 ? dnnl_bf16 : dnnl_f32) != dnnl_success) {
		free(md);
		return NULL;
	}
	return md;
}

void fd_md_free(dnnl_memory_desc_t *md) { free(md); }

int fd_same_md(const dnnl_memory_desc_t *a, const dnnl_memory_desc_t *b) {
	return dnnl_memory_desc_equal(a, b);
}

void fd_free(fd_prim *p) {
	if (!p) return;
	for (int i = 0; i < p->nargs; i++)
		if (p->mem[i]) dnnl_memory_destroy(p->mem[i]);
	if (p->prim) dnnl_primitive_destroy(p->prim);
	if (p->pd) dnnl_primitive_desc_destroy(p->pd);
	free(p);
}

const dnnl_memory_desc_t *fd_arg_md(fd_prim *p, int arg) {
	return dnnl_primitive_desc_query_md(p->pd, dnnl_query_exec_arg_md, arg);
}

size_t fd_arg_size(fd_prim *p, int arg) { return dnnl_memory_desc_get_size(fd_arg_md(p, arg)); }

// finish creates the primitive from its descriptor and one memory object
// per argument (handles unset); it takes ownership of attr.
static int finish(fd_prim **out, const_dnnl_op_desc_t desc, dnnl_primitive_attr_t attr,
                  const_dnnl_primitive_desc_t hint, const int *args, int nargs, int nthr) {
	omp_set_num_threads(nthr);
	fd_prim *p = calloc(1, sizeof *p);
	if (!p) {
		dnnl_primitive_attr_destroy(attr);
		return dnnl_out_of_memory;
	}
	int st = dnnl_primitive_desc_create(&p->pd, desc, attr, eng, hint);
	dnnl_primitive_attr_destroy(attr);
	if (st != dnnl_success) {
		p->pd = NULL;
		fd_free(p);
		return st;
	}
	const char *impl = NULL;
	dnnl_primitive_desc_query(p->pd, dnnl_query_impl_info_str, 0, &impl);
	if (impl) strncpy(p->impl, impl, sizeof p->impl - 1);
	if ((st = dnnl_primitive_create(&p->prim, p->pd)) != dnnl_success) {
		p->prim = NULL;
		fd_free(p);
		return st;
	}
	const dnnl_memory_desc_t *sp = dnnl_primitive_desc_query_md(p->pd, dnnl_query_scratchpad_md, 0);
	p->scratch = sp ? dnnl_memory_desc_get_size(sp) : 0;
	for (int i = 0; i < nargs; i++) {
		p->args[i] = args[i];
		if ((st = dnnl_memory_create(&p->mem[i], fd_arg_md(p, args[i]), eng, DNNL_MEMORY_NONE)) != dnnl_success) {
			p->nargs = i;
			fd_free(p);
			return st;
		}
		p->nargs = i + 1;
	}
	if (p->scratch) {
		p->args[nargs] = DNNL_ARG_SCRATCHPAD;
		if ((st = dnnl_memory_create(&p->mem[nargs], sp, eng, DNNL_MEMORY_NONE)) != dnnl_success) {
			fd_free(p);
			return st;
		}
		p->nargs = nargs + 1;
	}
	*out = p;
	return dnnl_success;
}

static dnnl_primitive_attr_t new_attr(void) {
	dnnl_primitive_attr_t attr = NULL;
	dnnl_primitive_attr_create(&attr);
	// user scratchpad: each compiled graph owns its own, so graphs can run
	// concurrently
	dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
	return attr;
}

int fd_exec(fd_prim *p, int nthr, void *a0, void *a1, void *a2, void *a3, void *a4, void *a5,
            void *a6, void *a7, void *a8, void *a9, void *scratch) {
	void *ptr[FD_MAX_ARGS] = {a0, a1, a2, a3, a4, a5, a6, a7, a8, a9};
	dnnl_exec_arg_t args[FD_MAX_ARGS];
	int n = 0;
	for (int i = 0; i < p->nargs; i++) {
		void *h = p->args[i] == DNNL_ARG_SCRATCHPAD ? scratch : ptr[n++];
		int st = dnnl_memory_set_data_handle_v2(p->mem[i], h, strm);
		if (st != dnnl_success) return st;
		args[i].arg = p->args[i];
		args[i].memory = p->mem[i];
	}
	omp_set_num_threads(nthr);
	int st = dnnl_primitive_execute(p->prim, strm, p->nargs, args);
	if (st != dnnl_success) return st;
	return dnnl_stream_wait(strm);
}

// bf16: source and weights in bfloat16 (bias stays f32); bf16 == 2: the
// destination too, else it is f32.
static int conv_desc(dnnl_convolution_desc_t *cd, dnnl_prop_kind_t prop, int n, int c, int h, int w, int oc,
                     int k, int s, int p, int src_layout, int dst_layout, int bias, int bf16) {
	int oh = (h + 2 * p - k) / s + 1, ow = (w + 2 * p - k) / s + 1;
	dnnl_memory_desc_t src, wei, b, dst;
	dnnl_dims_t bd = {oc};
	dnnl_data_type_t dt = bf16 ? dnnl_bf16 : dnnl_f32;
	md4t(&src, n, c, h, w, src_layout, 0, dt);
	md4t(&wei, oc, c, k, k, FD_ANY, 1, dt);
	md4t(&dst, n, oc, oh, ow, dst_layout, 0, bf16 == 2 ? dnnl_bf16 : dnnl_f32);
	if (bias) dnnl_memory_desc_init_by_tag(&b, 1, bd, dnnl_f32, dnnl_x);
	dnnl_dims_t st = {s, s}, pad = {p, p};
	return dnnl_convolution_forward_desc_init(cd, prop, dnnl_convolution_direct, &src, &wei, bias ? &b : NULL, &dst,
	                                          st, pad, pad);
}

int fd_conv(fd_prim **out, int kind, int n, int c, int h, int w, int oc, int k, int s, int p,
            int src_layout, int dst_layout, int bias, int sum, int relu, int nthr) {
	dnnl_convolution_desc_t fwd;
	int bf16 = kind == 4 ? 1 : kind == 5 ? 2 : 0;
	if (bf16) kind = 0;
	dnnl_prop_kind_t prop = kind == 0 ? dnnl_forward_inference : dnnl_forward_training;
	int st = conv_desc(&fwd, prop, n, c, h, w, oc, k, s, p, src_layout, dst_layout, bias, bf16);
	if (st != dnnl_success) return st;
	dnnl_primitive_attr_t attr = new_attr();
	if (kind <= 1) {
		if (sum || relu) {
			dnnl_post_ops_t po;
			dnnl_post_ops_create(&po);
			if (sum) dnnl_post_ops_append_sum(po, 1.0f);
			if (relu) dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f);
			dnnl_primitive_attr_set_post_ops(attr, po);
			dnnl_post_ops_destroy(po);
		}
		int a[] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_BIAS, DNNL_ARG_DST};
		if (bias) return finish(out, &fwd, attr, NULL, a, 4, nthr);
		int a2[] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST};
		return finish(out, &fwd, attr, NULL, a2, 3, nthr);
	}
	// backward passes need the forward primitive descriptor as a hint
	omp_set_num_threads(nthr);
	dnnl_primitive_desc_t hint;
	st = dnnl_primitive_desc_create(&hint, &fwd, NULL, eng, NULL);
	if (st != dnnl_success) {
		dnnl_primitive_attr_destroy(attr);
		return st;
	}
	int oh = (h + 2 * p - k) / s + 1, ow = (w + 2 * p - k) / s + 1;
	dnnl_memory_desc_t src, wei, dst;
	md4(&src, n, c, h, w, src_layout, 0);
	md4(&wei, oc, c, k, k, FD_ANY, 1);
	md4(&dst, n, oc, oh, ow, dst_layout, 0);
	dnnl_dims_t sd = {s, s}, pad = {p, p};
	dnnl_convolution_desc_t bd;
	if (kind == 2) {
		st = dnnl_convolution_backward_data_desc_init(&bd, dnnl_convolution_direct, &src, &wei, &dst, sd, pad, pad);
		int a[] = {DNNL_ARG_DIFF_DST, DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_SRC};
		if (st == dnnl_success) st = finish(out, &bd, attr, hint, a, 3, nthr);
		else dnnl_primitive_attr_destroy(attr);
	} else {
		st = dnnl_convolution_backward_weights_desc_init(&bd, dnnl_convolution_direct, &src, &wei, NULL, &dst, sd, pad,
		                                                 pad);
		int a[] = {DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_WEIGHTS};
		if (st == dnnl_success) st = finish(out, &bd, attr, hint, a, 3, nthr);
		else dnnl_primitive_attr_destroy(attr);
	}
	dnnl_primitive_desc_destroy(hint);
	return st;
}

int fd_reorder(fd_prim **out, const dnnl_memory_desc_t *src, const dnnl_memory_desc_t *dst, int nthr) {
	omp_set_num_threads(nthr);
	fd_prim *p = calloc(1, sizeof *p);
	if (!p) return dnnl_out_of_memory;
	dnnl_primitive_attr_t attr = new_attr();
	int st = dnnl_reorder_primitive_desc_create(&p->pd, src, eng, dst, eng, attr);
	dnnl_primitive_attr_destroy(attr);
	if (st != dnnl_success) {
		p->pd = NULL;
		fd_free(p);
		return st;
	}
	if ((st = dnnl_primitive_create(&p->prim, p->pd)) != dnnl_success) {
		p->prim = NULL;
		fd_free(p);
		return st;
	}
	const dnnl_memory_desc_t *sp = dnnl_primitive_desc_query_md(p->pd, dnnl_query_scratchpad_md, 0);
	p->scratch = sp ? dnnl_memory_desc_get_size(sp) : 0;
	const dnnl_memory_desc_t *mds[2] = {src, dst};
	int args[2] = {DNNL_ARG_FROM, DNNL_ARG_TO};
	for (int i = 0; i < 2; i++) {
		p->args[i] = args[i];
		if ((st = dnnl_memory_create(&p->mem[i], mds[i], eng, DNNL_MEMORY_NONE)) != dnnl_success) {
			p->nargs = i;
			fd_free(p);
			return st;
		}
		p->nargs = i + 1;
	}
	if (p->scratch) {
		p->args[2] = DNNL_ARG_SCRATCHPAD;
		if ((st = dnnl_memory_create(&p->mem[2], sp, eng, DNNL_MEMORY_NONE)) != dnnl_success) {
			fd_free(p);
			return st;
		}
		p->nargs = 3;
	}
	*out = p;
	return dnnl_success;
}

int fd_pool(fd_prim **out, int kind, int alg, int n, int c, int h, int w, int k, int s, int p, int nthr) {
	int oh = (h + 2 * p - k) / s + 1, ow = (w + 2 * p - k) / s + 1;
	dnnl_memory_desc_t src, dst;
	md4(&src, n, c, h, w, FD_BLOCKED, 0);
	md4(&dst, n, c, oh, ow, FD_BLOCKED, 0);
	dnnl_alg_kind_t a = alg == 0 ? dnnl_pooling_max : dnnl_pooling_avg_exclude_padding;
	dnnl_dims_t sd = {s, s}, kd = {k, k}, pad = {p, p};
	dnnl_pooling_desc_t fwd;
	dnnl_prop_kind_t prop = kind == 0 ? dnnl_forward_inference : dnnl_forward_training;
	int st = dnnl_pooling_forward_desc_init(&fwd, prop, a, &src, &dst, sd, kd, pad, pad);
	if (st != dnnl_success) return st;
	int ws = kind != 0 && alg == 0;
	if (kind <= 1) {
		int args[] = {DNNL_ARG_SRC, DNNL_ARG_DST, DNNL_ARG_WORKSPACE};
		return finish(out, &fwd, new_attr(), NULL, args, ws ? 3 : 2, nthr);
	}
	omp_set_num_threads(nthr);
	dnnl_primitive_desc_t hint;
	if ((st = dnnl_primitive_desc_create(&hint, &fwd, NULL, eng, NULL)) != dnnl_success) return st;
	dnnl_pooling_desc_t bd;
	st = dnnl_pooling_backward_desc_init(&bd, a, &src, &dst, sd, kd, pad, pad);
	if (st == dnnl_success) {
		int args[] = {DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_SRC, DNNL_ARG_WORKSPACE};
		st = finish(out, &bd, new_attr(), hint, args, ws ? 3 : 2, nthr);
	}
	dnnl_primitive_desc_destroy(hint);
	return st;
}
