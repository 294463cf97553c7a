//go:build amd64 && !noasm

#include "textflag.h"

// tailmask<>+4t(SB) holds 8 int32 lanes: the first 8−t zero, the last t
// all ones. ANDed with a row's last 8 columns it keeps only the t columns
// that the full blocks did not cover.
DATA tailmask<>+0x00(SB)/8, $0
DATA tailmask<>+0x08(SB)/8, $0
DATA tailmask<>+0x10(SB)/8, $0
DATA tailmask<>+0x18(SB)/8, $0
DATA tailmask<>+0x20(SB)/8, $-1
DATA tailmask<>+0x28(SB)/8, $-1
DATA tailmask<>+0x30(SB)/8, $-1
DATA tailmask<>+0x38(SB)/8, $-1
GLOBL tailmask<>(SB), RODATA|NOPTR, $64

// REDUCE4 adds the 8 lanes of each of Y0..Y3, leaving the four sums in X0
// in that order. Every sum is ((l0+l1)+(l2+l3)) + ((l4+l5)+(l6+l7)),
// whichever register it came from. With a..d the four rows:
//
//	Y0 = a01 a23 b01 b23 | a45 a67 b45 b67
//	Y2 = c01 c23 d01 d23 | c45 c67 d45 d67
//	Y0 = a0-3 b0-3 c0-3 d0-3 | a4-7 b4-7 c4-7 d4-7
//	X0 = a b c d
#define REDUCE4 \
	VHADDPS      Y1, Y0, Y0; \
	VHADDPS      Y3, Y2, Y2; \
	VHADDPS      Y2, Y0, Y0; \
	VEXTRACTF128 $1, Y0, X1; \
	VADDPS       X1, X0, X0

// func dotsF32AVX2(out, q, rows []float32, d int)
//
// Registers: DX out, BX rows left, SI q, DI R8 R9 R10 the four rows of a
// group, R11 row stride in bytes, AX full blocks of 8 columns, R12 byte
// offset of a row's last 8 columns (0 when d is a multiple of 8), R13
// column offset, CX block counter, Y14 tail mask, Y13 q's masked tail.
// A group of fewer than 4 rows repeats its first row in the missing slots
// and stores only its own sums.
TEXT ·dotsF32AVX2(SB), NOSPLIT, $0-80
	MOVQ out_base+0(FP), DX
	MOVQ out_len+8(FP), BX
	MOVQ q_base+24(FP), SI
	MOVQ rows_base+48(FP), DI
	MOVQ d+72(FP), AX
	LEAQ (AX*4), R11
	MOVQ AX, R12
	ANDQ $7, R12
	SHRQ $3, AX
	TESTQ R12, R12
	JZ   f32loop
	LEAQ tailmask<>(SB), CX
	VMOVUPS (CX)(R12*4), Y14
	MOVQ d+72(FP), R12
	SUBQ $8, R12
	SHLQ $2, R12
	VANDPS (SI)(R12*1), Y14, Y13

f32loop:
	CMPQ BX, $4
	JLT  f32rem
	LEAQ (DI)(R11*1), R8
	LEAQ (DI)(R11*2), R9
	LEAQ (R8)(R11*2), R10

f32body:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	XORQ   R13, R13
	MOVQ   AX, CX

f32block:
	VMOVUPS     (SI)(R13*1), Y4
	VFMADD231PS (DI)(R13*1), Y4, Y0
	VFMADD231PS (R8)(R13*1), Y4, Y1
	VFMADD231PS (R9)(R13*1), Y4, Y2
	VFMADD231PS (R10)(R13*1), Y4, Y3
	ADDQ        $32, R13
	DECQ        CX
	JNZ         f32block

	TESTQ R12, R12
	JZ    f32reduce
	VANDPS      (DI)(R12*1), Y14, Y5
	VANDPS      (R8)(R12*1), Y14, Y6
	VANDPS      (R9)(R12*1), Y14, Y7
	VANDPS      (R10)(R12*1), Y14, Y8
	VFMADD231PS Y5, Y13, Y0
	VFMADD231PS Y6, Y13, Y1
	VFMADD231PS Y7, Y13, Y2
	VFMADD231PS Y8, Y13, Y3

f32reduce:
	REDUCE4
	CMPQ BX, $4
	JLT  f32part
	VMOVUPS X0, (DX)
	ADDQ    $16, DX
	LEAQ    (DI)(R11*4), DI
	SUBQ    $4, BX
	JNZ     f32loop
	VZEROUPPER
	RET

f32rem:
	TESTQ BX, BX
	JZ    f32done
	MOVQ  DI, R8
	MOVQ  DI, R9
	MOVQ  DI, R10
	CMPQ  BX, $2
	JLT   f32body
	LEAQ  (DI)(R11*1), R8
	CMPQ  BX, $3
	JLT   f32body
	LEAQ  (DI)(R11*2), R9
	JMP   f32body

f32part:
	VMOVSS X0, (DX)
	CMPQ   BX, $2
	JLT    f32done
	VEXTRACTPS $1, X0, 4(DX)
	CMPQ   BX, $3
	JLT    f32done
	VEXTRACTPS $2, X0, 8(DX)

f32done:
	VZEROUPPER
	RET

// func dotsBF16AVX2(out, q []float32, rows []uint16, d int)
//
// As dotsF32AVX2, with rows of bfloat16: 8 columns are 16 bytes, widened
// by zero-extending each 16-bit value to 32 bits and shifting it into the
// high half. R11 and R12 count row bytes; q's offsets are twice theirs.
TEXT ·dotsBF16AVX2(SB), NOSPLIT, $0-80
	MOVQ out_base+0(FP), DX
	MOVQ out_len+8(FP), BX
	MOVQ q_base+24(FP), SI
	MOVQ rows_base+48(FP), DI
	MOVQ d+72(FP), AX
	LEAQ (AX*2), R11
	MOVQ AX, R12
	ANDQ $7, R12
	SHRQ $3, AX
	TESTQ R12, R12
	JZ   bfloop
	LEAQ tailmask<>(SB), CX
	VMOVUPS (CX)(R12*4), Y14
	MOVQ d+72(FP), R12
	SUBQ $8, R12
	SHLQ $1, R12
	VANDPS (SI)(R12*2), Y14, Y13

bfloop:
	CMPQ BX, $4
	JLT  bfrem
	LEAQ (DI)(R11*1), R8
	LEAQ (DI)(R11*2), R9
	LEAQ (R8)(R11*2), R10

bfbody:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	XORQ   R13, R13
	MOVQ   AX, CX

bfblock:
	VMOVUPS     (SI)(R13*2), Y4
	VPMOVZXWD   (DI)(R13*1), Y5
	VPMOVZXWD   (R8)(R13*1), Y6
	VPMOVZXWD   (R9)(R13*1), Y7
	VPMOVZXWD   (R10)(R13*1), Y8
	VPSLLD      $16, Y5, Y5
	VPSLLD      $16, Y6, Y6
	VPSLLD      $16, Y7, Y7
	VPSLLD      $16, Y8, Y8
	VFMADD231PS Y5, Y4, Y0
	VFMADD231PS Y6, Y4, Y1
	VFMADD231PS Y7, Y4, Y2
	VFMADD231PS Y8, Y4, Y3
	ADDQ        $16, R13
	DECQ        CX
	JNZ         bfblock

	TESTQ R12, R12
	JZ    bfreduce
	VPMOVZXWD   (DI)(R12*1), Y5
	VPMOVZXWD   (R8)(R12*1), Y6
	VPMOVZXWD   (R9)(R12*1), Y7
	VPMOVZXWD   (R10)(R12*1), Y8
	VPSLLD      $16, Y5, Y5
	VPSLLD      $16, Y6, Y6
	VPSLLD      $16, Y7, Y7
	VPSLLD      $16, Y8, Y8
	VANDPS      Y14, Y5, Y5
	VANDPS      Y14, Y6, Y6
	VANDPS      Y14, Y7, Y7
	VANDPS      Y14, Y8, Y8
	VFMADD231PS Y5, Y13, Y0
	VFMADD231PS Y6, Y13, Y1
	VFMADD231PS Y7, Y13, Y2
	VFMADD231PS Y8, Y13, Y3

bfreduce:
	REDUCE4
	CMPQ BX, $4
	JLT  bfpart
	VMOVUPS X0, (DX)
	ADDQ    $16, DX
	LEAQ    (DI)(R11*4), DI
	SUBQ    $4, BX
	JNZ     bfloop
	VZEROUPPER
	RET

bfrem:
	TESTQ BX, BX
	JZ    bfdone
	MOVQ  DI, R8
	MOVQ  DI, R9
	MOVQ  DI, R10
	CMPQ  BX, $2
	JLT   bfbody
	LEAQ  (DI)(R11*1), R8
	CMPQ  BX, $3
	JLT   bfbody
	LEAQ  (DI)(R11*2), R9
	JMP   bfbody

bfpart:
	VMOVSS X0, (DX)
	CMPQ   BX, $2
	JLT    bfdone
	VEXTRACTPS $1, X0, 4(DX)
	CMPQ   BX, $3
	JLT    bfdone
	VEXTRACTPS $2, X0, 8(DX)

bfdone:
	VZEROUPPER
	RET

// func firstAboveAVX2(x []float32, t float32) int
//
// The index of the first x[i] > t, or len(x): 32 values an iteration,
// then 8, then one by one. The comparison is ordered (t < x[i], quiet), so
// a NaN is never above t.
TEXT ·firstAboveAVX2(SB), NOSPLIT, $0-40
	MOVQ         x_base+0(FP), SI
	MOVQ         x_len+8(FP), CX
	VBROADCASTSS t+24(FP), Y0
	XORQ         AX, AX

fa32:
	LEAQ      32(AX), DX
	CMPQ      DX, CX
	JA        fa8
	VCMPPS    $0x11, (SI)(AX*4), Y0, Y1
	VCMPPS    $0x11, 32(SI)(AX*4), Y0, Y2
	VCMPPS    $0x11, 64(SI)(AX*4), Y0, Y3
	VCMPPS    $0x11, 96(SI)(AX*4), Y0, Y4
	VORPS     Y2, Y1, Y5
	VORPS     Y4, Y3, Y6
	VORPS     Y6, Y5, Y5
	VMOVMSKPS Y5, BX
	TESTL     BX, BX
	JNZ       fafound32
	MOVQ      DX, AX
	JMP       fa32

fafound32:
	VMOVMSKPS Y1, BX
	TESTL     BX, BX
	JNZ       fabit
	ADDQ      $8, AX
	VMOVMSKPS Y2, BX
	TESTL     BX, BX
	JNZ       fabit
	ADDQ      $8, AX
	VMOVMSKPS Y3, BX
	TESTL     BX, BX
	JNZ       fabit
	ADDQ      $8, AX
	VMOVMSKPS Y4, BX
	JMP       fabit

fa8:
	LEAQ      8(AX), DX
	CMPQ      DX, CX
	JA        fa1
	VCMPPS    $0x11, (SI)(AX*4), Y0, Y1
	VMOVMSKPS Y1, BX
	TESTL     BX, BX
	JNZ       fabit
	MOVQ      DX, AX
	JMP       fa8

fa1:
	CMPQ      AX, CX
	JAE       faend
	VCMPSS    $0x11, (SI)(AX*4), X0, X1
	VMOVMSKPS X1, BX
	ANDL      $1, BX
	JNZ       fabit
	INCQ      AX
	JMP       fa1

fabit:
	BSFL BX, BX
	ADDQ BX, AX

faend:
	MOVQ AX, ret+32(FP)
	VZEROUPPER
	RET
