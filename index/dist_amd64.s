//go:build amd64 && !noasm

#include "textflag.h"

// func dot4AVX2(out *[4]float32, q, a, b, c, d, pa, pb, pc, pd *float32, n int)
//
// out[0..3] = <q, a>, <q, b>, <q, c>, <q, d> over n floats, n > 0 and a
// multiple of 8. While it runs it prefetches the n floats at pa..pd, the
// rows the caller scores next, one 64-byte line of each per step.
//
// Registers: SI q; R8 R9 R10 R11 the rows; R12 R13 BX CX the rows to
// prefetch; AX byte offset; DX n in bytes; DI end of the two-block loop.
// Y0..Y3 sum the even blocks of the four rows, Y4..Y7 the odd ones, so
// eight independent chains hide the latency of the fused multiply-add.
TEXT ·dot4AVX2(SB), NOSPLIT, $0-88
	MOVQ q+8(FP), SI
	MOVQ a+16(FP), R8
	MOVQ b+24(FP), R9
	MOVQ c+32(FP), R10
	MOVQ d+40(FP), R11
	MOVQ pa+48(FP), R12
	MOVQ pb+56(FP), R13
	MOVQ pc+64(FP), BX
	MOVQ pd+72(FP), CX
	MOVQ n+80(FP), DX
	SHLQ $2, DX
	XORQ AX, AX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	MOVQ DX, DI
	ANDQ $-64, DI
	JZ   d4tail

d4loop:
	PREFETCHT0  (R12)(AX*1)
	PREFETCHT0  (R13)(AX*1)
	PREFETCHT0  (BX)(AX*1)
	PREFETCHT0  (CX)(AX*1)
	VMOVUPS     (SI)(AX*1), Y8
	VMOVUPS     32(SI)(AX*1), Y9
	VFMADD231PS (R8)(AX*1), Y8, Y0
	VFMADD231PS (R9)(AX*1), Y8, Y1
	VFMADD231PS (R10)(AX*1), Y8, Y2
	VFMADD231PS (R11)(AX*1), Y8, Y3
	VFMADD231PS 32(R8)(AX*1), Y9, Y4
	VFMADD231PS 32(R9)(AX*1), Y9, Y5
	VFMADD231PS 32(R10)(AX*1), Y9, Y6
	VFMADD231PS 32(R11)(AX*1), Y9, Y7
	ADDQ        $64, AX
	CMPQ        AX, DI
	JLT         d4loop

d4tail:
	CMPQ        AX, DX
	JGE         d4reduce
	PREFETCHT0  (R12)(AX*1)
	PREFETCHT0  (R13)(AX*1)
	PREFETCHT0  (BX)(AX*1)
	PREFETCHT0  (CX)(AX*1)
	VMOVUPS     (SI)(AX*1), Y8
	VFMADD231PS (R8)(AX*1), Y8, Y0
	VFMADD231PS (R9)(AX*1), Y8, Y1
	VFMADD231PS (R10)(AX*1), Y8, Y2
	VFMADD231PS (R11)(AX*1), Y8, Y3

d4reduce:
	VADDPS       Y4, Y0, Y0
	VADDPS       Y5, Y1, Y1
	VADDPS       Y6, Y2, Y2
	VADDPS       Y7, Y3, Y3
	VHADDPS      Y1, Y0, Y0
	VHADDPS      Y3, Y2, Y2
	VHADDPS      Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS       X1, X0, X0
	MOVQ         out+0(FP), DI
	VMOVUPS      X0, (DI)
	VZEROUPPER
	RET

// func l2x4AVX2(out *[4]float32, q, a, b, c, d, pa, pb, pc, pd *float32, n int)
//
// As dot4AVX2 with squared Euclidean distances: out[0..3] = ‖q−a‖², …,
// each difference formed exactly as a float32 subtraction and squared into
// the sum with a fused multiply-add. Y10..Y13 hold the differences.
TEXT ·l2x4AVX2(SB), NOSPLIT, $0-88
	MOVQ q+8(FP), SI
	MOVQ a+16(FP), R8
	MOVQ b+24(FP), R9
	MOVQ c+32(FP), R10
	MOVQ d+40(FP), R11
	MOVQ pa+48(FP), R12
	MOVQ pb+56(FP), R13
	MOVQ pc+64(FP), BX
	MOVQ pd+72(FP), CX
	MOVQ n+80(FP), DX
	SHLQ $2, DX
	XORQ AX, AX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	MOVQ DX, DI
	ANDQ $-64, DI
	JZ   l4tail

l4loop:
	PREFETCHT0  (R12)(AX*1)
	PREFETCHT0  (R13)(AX*1)
	PREFETCHT0  (BX)(AX*1)
	PREFETCHT0  (CX)(AX*1)
	VMOVUPS     (SI)(AX*1), Y8
	VMOVUPS     32(SI)(AX*1), Y9
	VSUBPS      (R8)(AX*1), Y8, Y10
	VSUBPS      (R9)(AX*1), Y8, Y11
	VSUBPS      (R10)(AX*1), Y8, Y12
	VSUBPS      (R11)(AX*1), Y8, Y13
	VFMADD231PS Y10, Y10, Y0
	VFMADD231PS Y11, Y11, Y1
	VFMADD231PS Y12, Y12, Y2
	VFMADD231PS Y13, Y13, Y3
	VSUBPS      32(R8)(AX*1), Y9, Y10
	VSUBPS      32(R9)(AX*1), Y9, Y11
	VSUBPS      32(R10)(AX*1), Y9, Y12
	VSUBPS      32(R11)(AX*1), Y9, Y13
	VFMADD231PS Y10, Y10, Y4
	VFMADD231PS Y11, Y11, Y5
	VFMADD231PS Y12, Y12, Y6
	VFMADD231PS Y13, Y13, Y7
	ADDQ        $64, AX
	CMPQ        AX, DI
	JLT         l4loop

l4tail:
	CMPQ        AX, DX
	JGE         l4reduce
	PREFETCHT0  (R12)(AX*1)
	PREFETCHT0  (R13)(AX*1)
	PREFETCHT0  (BX)(AX*1)
	PREFETCHT0  (CX)(AX*1)
	VMOVUPS     (SI)(AX*1), Y8
	VSUBPS      (R8)(AX*1), Y8, Y10
	VSUBPS      (R9)(AX*1), Y8, Y11
	VSUBPS      (R10)(AX*1), Y8, Y12
	VSUBPS      (R11)(AX*1), Y8, Y13
	VFMADD231PS Y10, Y10, Y0
	VFMADD231PS Y11, Y11, Y1
	VFMADD231PS Y12, Y12, Y2
	VFMADD231PS Y13, Y13, Y3

l4reduce:
	VADDPS       Y4, Y0, Y0
	VADDPS       Y5, Y1, Y1
	VADDPS       Y6, Y2, Y2
	VADDPS       Y7, Y3, Y3
	VHADDPS      Y1, Y0, Y0
	VHADDPS      Y3, Y2, Y2
	VHADDPS      Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS       X1, X0, X0
	MOVQ         out+0(FP), DI
	VMOVUPS      X0, (DI)
	VZEROUPPER
	RET

// func l2x1AVX2(a, b *float32, n int) float32
//
// ‖a−b‖² over n floats, n > 0 and a multiple of 8, in four chains.
TEXT ·l2x1AVX2(SB), NOSPLIT, $0-28
	MOVQ   a+0(FP), SI
	MOVQ   b+8(FP), DI
	MOVQ   n+16(FP), DX
	SHLQ   $2, DX
	XORQ   AX, AX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	MOVQ   DX, CX
	ANDQ   $-128, CX
	JZ     l1one

l1loop:
	VMOVUPS     (SI)(AX*1), Y4
	VMOVUPS     32(SI)(AX*1), Y5
	VMOVUPS     64(SI)(AX*1), Y6
	VMOVUPS     96(SI)(AX*1), Y7
	VSUBPS      (DI)(AX*1), Y4, Y4
	VSUBPS      32(DI)(AX*1), Y5, Y5
	VSUBPS      64(DI)(AX*1), Y6, Y6
	VSUBPS      96(DI)(AX*1), Y7, Y7
	VFMADD231PS Y4, Y4, Y0
	VFMADD231PS Y5, Y5, Y1
	VFMADD231PS Y6, Y6, Y2
	VFMADD231PS Y7, Y7, Y3
	ADDQ        $128, AX
	CMPQ        AX, CX
	JLT         l1loop

l1one:
	CMPQ        AX, DX
	JGE         l1reduce
	VMOVUPS     (SI)(AX*1), Y4
	VSUBPS      (DI)(AX*1), Y4, Y4
	VFMADD231PS Y4, Y4, Y0
	ADDQ        $32, AX
	JMP         l1one

l1reduce:
	VADDPS       Y1, Y0, Y0
	VADDPS       Y3, Y2, Y2
	VADDPS       Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS       X1, X0, X0
	VHADDPS      X0, X0, X0
	VHADDPS      X0, X0, X0
	VZEROUPPER
	MOVSS        X0, ret+24(FP)
	RET

// func dot1AVX2(a, b *float32, n int) float32
//
// <a, b> over n floats, n > 0 and a multiple of 8, in four chains of
// eight lanes.
TEXT ·dot1AVX2(SB), NOSPLIT, $0-28
	MOVQ   a+0(FP), SI
	MOVQ   b+8(FP), DI
	MOVQ   n+16(FP), DX
	SHLQ   $2, DX
	XORQ   AX, AX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	MOVQ   DX, CX
	ANDQ   $-128, CX
	JZ     d1one

d1loop:
	VMOVUPS     (SI)(AX*1), Y4
	VMOVUPS     32(SI)(AX*1), Y5
	VMOVUPS     64(SI)(AX*1), Y6
	VMOVUPS     96(SI)(AX*1), Y7
	VFMADD231PS (DI)(AX*1), Y4, Y0
	VFMADD231PS 32(DI)(AX*1), Y5, Y1
	VFMADD231PS 64(DI)(AX*1), Y6, Y2
	VFMADD231PS 96(DI)(AX*1), Y7, Y3
	ADDQ        $128, AX
	CMPQ        AX, CX
	JLT         d1loop

d1one:
	CMPQ        AX, DX
	JGE         d1reduce
	VMOVUPS     (SI)(AX*1), Y4
	VFMADD231PS (DI)(AX*1), Y4, Y0
	ADDQ        $32, AX
	JMP         d1one

d1reduce:
	VADDPS       Y1, Y0, Y0
	VADDPS       Y3, Y2, Y2
	VADDPS       Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS       X1, X0, X0
	VHADDPS      X0, X0, X0
	VHADDPS      X0, X0, X0
	VZEROUPPER
	MOVSS        X0, ret+24(FP)
	RET

// func prefetch4AVX2(a, b, c, d *float32, n int)
//
// Prefetches the n floats at each of a..d into the first-level cache.
TEXT ·prefetch4AVX2(SB), NOSPLIT, $0-40
	MOVQ a+0(FP), R8
	MOVQ b+8(FP), R9
	MOVQ c+16(FP), R10
	MOVQ d+24(FP), R11
	MOVQ n+32(FP), DX
	SHLQ $2, DX
	XORQ AX, AX

pfloop:
	PREFETCHT0 (R8)(AX*1)
	PREFETCHT0 (R9)(AX*1)
	PREFETCHT0 (R10)(AX*1)
	PREFETCHT0 (R11)(AX*1)
	ADDQ       $64, AX
	CMPQ       AX, DX
	JLT        pfloop
	RET

// func prefetch1(p *int32)
TEXT ·prefetch1(SB), NOSPLIT, $0-8
	MOVQ       p+0(FP), AX
	PREFETCHT0 (AX)
	RET
