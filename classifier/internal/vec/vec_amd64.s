#include "textflag.h"

// AVX2 epilogue loops (see simd_amd64.go). Each processes n floats, n a
// multiple of 8; the Go wrappers do the tail. Addition order matches the
// scalar code: (x + b) + r.

// func biasReluAVX2(x *float32, n int, b float32)
TEXT ·biasReluAVX2(SB), NOSPLIT, $0-20
	MOVQ         x+0(FP), DI
	MOVQ         n+8(FP), CX
	VBROADCASTSS b+16(FP), Y1
	VXORPS       Y0, Y0, Y0

br32:
	CMPQ    CX, $32
	JL      br8
	VADDPS  (DI), Y1, Y2
	VADDPS  32(DI), Y1, Y3
	VADDPS  64(DI), Y1, Y4
	VADDPS  96(DI), Y1, Y5
	VMAXPS  Y0, Y2, Y2
	VMAXPS  Y0, Y3, Y3
	VMAXPS  Y0, Y4, Y4
	VMAXPS  Y0, Y5, Y5
	VMOVUPS Y2, (DI)
	VMOVUPS Y3, 32(DI)
	VMOVUPS Y4, 64(DI)
	VMOVUPS Y5, 96(DI)
	ADDQ    $128, DI
	SUBQ    $32, CX
	JMP     br32

br8:
	CMPQ    CX, $8
	JL      brdone
	VADDPS  (DI), Y1, Y2
	VMAXPS  Y0, Y2, Y2
	VMOVUPS Y2, (DI)
	ADDQ    $32, DI
	SUBQ    $8, CX
	JMP     br8

brdone:
	VZEROUPPER
	RET

// func biasResReluAVX2(x, r *float32, n int, b float32)
TEXT ·biasResReluAVX2(SB), NOSPLIT, $0-28
	MOVQ         x+0(FP), DI
	MOVQ         r+8(FP), SI
	MOVQ         n+16(FP), CX
	VBROADCASTSS b+24(FP), Y1
	VXORPS       Y0, Y0, Y0

brr32:
	CMPQ    CX, $32
	JL      brr8
	VADDPS  (DI), Y1, Y2
	VADDPS  32(DI), Y1, Y3
	VADDPS  64(DI), Y1, Y4
	VADDPS  96(DI), Y1, Y5
	VADDPS  (SI), Y2, Y2
	VADDPS  32(SI), Y3, Y3
	VADDPS  64(SI), Y4, Y4
	VADDPS  96(SI), Y5, Y5
	VMAXPS  Y0, Y2, Y2
	VMAXPS  Y0, Y3, Y3
	VMAXPS  Y0, Y4, Y4
	VMAXPS  Y0, Y5, Y5
	VMOVUPS Y2, (DI)
	VMOVUPS Y3, 32(DI)
	VMOVUPS Y4, 64(DI)
	VMOVUPS Y5, 96(DI)
	ADDQ    $128, DI
	ADDQ    $128, SI
	SUBQ    $32, CX
	JMP     brr32

brr8:
	CMPQ    CX, $8
	JL      brrdone
	VADDPS  (DI), Y1, Y2
	VADDPS  (SI), Y2, Y2
	VMAXPS  Y0, Y2, Y2
	VMOVUPS Y2, (DI)
	ADDQ    $32, DI
	ADDQ    $32, SI
	SUBQ    $8, CX
	JMP     brr8

brrdone:
	VZEROUPPER
	RET

// func biasAVX2(x *float32, n int, b float32)
TEXT ·biasAVX2(SB), NOSPLIT, $0-20
	MOVQ         x+0(FP), DI
	MOVQ         n+8(FP), CX
	VBROADCASTSS b+16(FP), Y1

b32:
	CMPQ    CX, $32
	JL      b8
	VADDPS  (DI), Y1, Y2
	VADDPS  32(DI), Y1, Y3
	VADDPS  64(DI), Y1, Y4
	VADDPS  96(DI), Y1, Y5
	VMOVUPS Y2, (DI)
	VMOVUPS Y3, 32(DI)
	VMOVUPS Y4, 64(DI)
	VMOVUPS Y5, 96(DI)
	ADDQ    $128, DI
	SUBQ    $32, CX
	JMP     b32

b8:
	CMPQ    CX, $8
	JL      bdone
	VADDPS  (DI), Y1, Y2
	VMOVUPS Y2, (DI)
	ADDQ    $32, DI
	SUBQ    $8, CX
	JMP     b8

bdone:
	VZEROUPPER
	RET
