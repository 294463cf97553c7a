//go:build amd64 && !noasm

#include "textflag.h"

// Micro-kernels C[6×16] (+)= A[6×k]·Wpanel[k×16] with AVX2+FMA.
//
// Registers:
//   Y0…Y11  accumulators: row r of the tile in Y(2r) (columns 0–7) and
//           Y(2r+1) (columns 8–15)
//   Y12,Y13 the 16 values of the current k step of the W panel
//   Y14,Y15 a broadcast element of A (fp32); in the bf16 kernel Y14 only,
//           and Y15 holds the mask 0xffff0000 in every lane
//   CX k, AX unrolled-loop counter
//   SI row 0 of A, DI row 3 of A, BX lda in bytes (rows 1,2 = SI+BX, SI+2BX;
//   rows 4,5 = DI+BX, DI+2BX); both advance 4 bytes a k step
//   DX the W panel, advancing 64 (fp32) or 32 (bf16) bytes a k step
//   R8 row 0 of C, R12 row 3 of C, R9 ldc in bytes
//   R10 bias, R11 flags (1 load C, 2 add bias, 4 ReLU)
//
// Each accumulator lane is one FMA chain over k in increasing order: the
// same operations as kernGoF32 whatever the tile's position.

// One k step against W in Y12, Y13; ao is the byte offset into the rows of A.
#define FMA6(ao) \
	VBROADCASTSS ao(SI), Y14; \
	VFMADD231PS  Y12, Y14, Y0; \
	VFMADD231PS  Y13, Y14, Y1; \
	VBROADCASTSS ao(SI)(BX*1), Y15; \
	VFMADD231PS  Y12, Y15, Y2; \
	VFMADD231PS  Y13, Y15, Y3; \
	VBROADCASTSS ao(SI)(BX*2), Y14; \
	VFMADD231PS  Y12, Y14, Y4; \
	VFMADD231PS  Y13, Y14, Y5; \
	VBROADCASTSS ao(DI), Y15; \
	VFMADD231PS  Y12, Y15, Y6; \
	VFMADD231PS  Y13, Y15, Y7; \
	VBROADCASTSS ao(DI)(BX*1), Y14; \
	VFMADD231PS  Y12, Y14, Y8; \
	VFMADD231PS  Y13, Y14, Y9; \
	VBROADCASTSS ao(DI)(BX*2), Y15; \
	VFMADD231PS  Y12, Y15, Y10; \
	VFMADD231PS  Y13, Y15, Y11

#define STEP_F32(ao, wo) \
	VMOVUPS wo(DX), Y12; \
	VMOVUPS wo+32(DX), Y13; \
	FMA6(ao)

// The same with one register for the broadcasts, leaving Y15 free.
#define FMA6_1(ao) \
	VBROADCASTSS ao(SI), Y14; \
	VFMADD231PS  Y12, Y14, Y0; \
	VFMADD231PS  Y13, Y14, Y1; \
	VBROADCASTSS ao(SI)(BX*1), Y14; \
	VFMADD231PS  Y12, Y14, Y2; \
	VFMADD231PS  Y13, Y14, Y3; \
	VBROADCASTSS ao(SI)(BX*2), Y14; \
	VFMADD231PS  Y12, Y14, Y4; \
	VFMADD231PS  Y13, Y14, Y5; \
	VBROADCASTSS ao(DI), Y14; \
	VFMADD231PS  Y12, Y14, Y6; \
	VFMADD231PS  Y13, Y14, Y7; \
	VBROADCASTSS ao(DI)(BX*1), Y14; \
	VFMADD231PS  Y12, Y14, Y8; \
	VFMADD231PS  Y13, Y14, Y9; \
	VBROADCASTSS ao(DI)(BX*2), Y14; \
	VFMADD231PS  Y12, Y14, Y10; \
	VFMADD231PS  Y13, Y14, Y11

// A bf16 panel step is 16 values of 16 bits, paired in 32-bit lanes: lane
// l holds column l in its low half and column l+8 in its high half. bf16 →
// fp32 is exact: shifting a lane left by 16 gives column l, masking off its
// low half (Y15 = 0xffff0000 in every lane) gives column l+8.
#define STEP_BF16(ao, wo) \
	VMOVDQU wo(DX), Y13; \
	VPSLLD  $16, Y13, Y12; \
	VPAND   Y15, Y13, Y13; \
	FMA6_1(ao)

#define PROLOGUE \
	MOVQ k+0(FP), CX; \
	MOVQ a+8(FP), SI; \
	MOVQ lda+16(FP), BX; \
	MOVQ w+24(FP), DX; \
	MOVQ c+32(FP), R8; \
	MOVQ ldc+40(FP), R9; \
	MOVQ bias+48(FP), R10; \
	MOVQ flags+56(FP), R11; \
	SHLQ $2, BX; \
	LEAQ (SI)(BX*2), DI; \
	ADDQ BX, DI; \
	SHLQ $2, R9; \
	LEAQ (R8)(R9*2), R12; \
	ADDQ R9, R12

#define ZERO_ACC \
	VXORPS Y0, Y0, Y0; \
	VXORPS Y1, Y1, Y1; \
	VXORPS Y2, Y2, Y2; \
	VXORPS Y3, Y3, Y3; \
	VXORPS Y4, Y4, Y4; \
	VXORPS Y5, Y5, Y5; \
	VXORPS Y6, Y6, Y6; \
	VXORPS Y7, Y7, Y7; \
	VXORPS Y8, Y8, Y8; \
	VXORPS Y9, Y9, Y9; \
	VXORPS Y10, Y10, Y10; \
	VXORPS Y11, Y11, Y11

#define LOAD_C \
	VMOVUPS (R8), Y0; \
	VMOVUPS 32(R8), Y1; \
	VMOVUPS (R8)(R9*1), Y2; \
	VMOVUPS 32(R8)(R9*1), Y3; \
	VMOVUPS (R8)(R9*2), Y4; \
	VMOVUPS 32(R8)(R9*2), Y5; \
	VMOVUPS (R12), Y6; \
	VMOVUPS 32(R12), Y7; \
	VMOVUPS (R12)(R9*1), Y8; \
	VMOVUPS 32(R12)(R9*1), Y9; \
	VMOVUPS (R12)(R9*2), Y10; \
	VMOVUPS 32(R12)(R9*2), Y11

#define ADD_BIAS \
	VMOVUPS (R10), Y12; \
	VMOVUPS 32(R10), Y13; \
	VADDPS  Y12, Y0, Y0; \
	VADDPS  Y13, Y1, Y1; \
	VADDPS  Y12, Y2, Y2; \
	VADDPS  Y13, Y3, Y3; \
	VADDPS  Y12, Y4, Y4; \
	VADDPS  Y13, Y5, Y5; \
	VADDPS  Y12, Y6, Y6; \
	VADDPS  Y13, Y7, Y7; \
	VADDPS  Y12, Y8, Y8; \
	VADDPS  Y13, Y9, Y9; \
	VADDPS  Y12, Y10, Y10; \
	VADDPS  Y13, Y11, Y11

// max with the accumulator as the second source operand (first in Go
// syntax): VMAXPS returns it when either is NaN and when both are zeros,
// so NaN and −0 pass through, as "if 0 > x { x = 0 }" does.
#define RELU \
	VXORPS Y12, Y12, Y12; \
	VMAXPS Y0, Y12, Y0; \
	VMAXPS Y1, Y12, Y1; \
	VMAXPS Y2, Y12, Y2; \
	VMAXPS Y3, Y12, Y3; \
	VMAXPS Y4, Y12, Y4; \
	VMAXPS Y5, Y12, Y5; \
	VMAXPS Y6, Y12, Y6; \
	VMAXPS Y7, Y12, Y7; \
	VMAXPS Y8, Y12, Y8; \
	VMAXPS Y9, Y12, Y9; \
	VMAXPS Y10, Y12, Y10; \
	VMAXPS Y11, Y12, Y11

#define STORE_C \
	VMOVUPS Y0, (R8); \
	VMOVUPS Y1, 32(R8); \
	VMOVUPS Y2, (R8)(R9*1); \
	VMOVUPS Y3, 32(R8)(R9*1); \
	VMOVUPS Y4, (R8)(R9*2); \
	VMOVUPS Y5, 32(R8)(R9*2); \
	VMOVUPS Y6, (R12); \
	VMOVUPS Y7, 32(R12); \
	VMOVUPS Y8, (R12)(R9*1); \
	VMOVUPS Y9, 32(R12)(R9*1); \
	VMOVUPS Y10, (R12)(R9*2); \
	VMOVUPS Y11, 32(R12)(R9*2)

// func kernF32(k int, a *float32, lda int, w *float32, c *float32, ldc int, bias *float32, flags int)
TEXT ·kernF32(SB), NOSPLIT, $0-64
	PROLOGUE
	TESTQ $1, R11
	JNZ   f32load
	ZERO_ACC
	JMP   f32body

f32load:
	LOAD_C

f32body:
	MOVQ CX, AX
	SHRQ $2, AX
	JZ   f32tail

f32loop4:
	STEP_F32(0, 0)
	STEP_F32(4, 64)
	STEP_F32(8, 128)
	STEP_F32(12, 192)
	ADDQ $16, SI
	ADDQ $16, DI
	ADDQ $256, DX
	DECQ AX
	JNZ  f32loop4

f32tail:
	ANDQ $3, CX
	JZ   f32epi

f32loop1:
	STEP_F32(0, 0)
	ADDQ $4, SI
	ADDQ $4, DI
	ADDQ $64, DX
	DECQ CX
	JNZ  f32loop1

f32epi:
	TESTQ $2, R11
	JZ    f32relu
	ADD_BIAS

f32relu:
	TESTQ $4, R11
	JZ    f32store
	RELU

f32store:
	STORE_C
	VZEROUPPER
	RET

// func kernBF16(k int, a *float32, lda int, w *uint16, c *float32, ldc int, bias *float32, flags int)
TEXT ·kernBF16(SB), NOSPLIT, $0-64
	PROLOGUE
	TESTQ $1, R11
	JNZ   bf16load
	ZERO_ACC
	JMP   bf16body

bf16load:
	LOAD_C

bf16body:
	MOVL         $0xffff0000, AX
	MOVQ         AX, X15
	VPBROADCASTD X15, Y15
	MOVQ         CX, AX
	SHRQ $2, AX
	JZ   bf16tail

bf16loop4:
	STEP_BF16(0, 0)
	STEP_BF16(4, 32)
	STEP_BF16(8, 64)
	STEP_BF16(12, 96)
	ADDQ $16, SI
	ADDQ $16, DI
	ADDQ $128, DX
	DECQ AX
	JNZ  bf16loop4

bf16tail:
	ANDQ $3, CX
	JZ   bf16epi

bf16loop1:
	STEP_BF16(0, 0)
	ADDQ $4, SI
	ADDQ $4, DI
	ADDQ $32, DX
	DECQ CX
	JNZ  bf16loop1

bf16epi:
	TESTQ $2, R11
	JZ    bf16relu
	ADD_BIAS

bf16relu:
	TESTQ $4, R11
	JZ    bf16store
	RELU

bf16store:
	STORE_C
	VZEROUPPER
	RET

// func fmaPeak(n int)
//
// n iterations of 12 independent register-only VFMADD231PS: the core's FMA
// throughput with nothing else in the way (benchmarks only).
TEXT ·fmaPeak(SB), NOSPLIT, $0-8
	MOVQ n+0(FP), CX
	ZERO_ACC
	VXORPS Y12, Y12, Y12
	VXORPS Y13, Y13, Y13
	TESTQ  CX, CX
	JZ     peakdone

peakloop:
	VFMADD231PS Y12, Y13, Y0
	VFMADD231PS Y12, Y13, Y1
	VFMADD231PS Y12, Y13, Y2
	VFMADD231PS Y12, Y13, Y3
	VFMADD231PS Y12, Y13, Y4
	VFMADD231PS Y12, Y13, Y5
	VFMADD231PS Y12, Y13, Y6
	VFMADD231PS Y12, Y13, Y7
	VFMADD231PS Y12, Y13, Y8
	VFMADD231PS Y12, Y13, Y9
	VFMADD231PS Y12, Y13, Y10
	VFMADD231PS Y12, Y13, Y11
	DECQ        CX
	JNZ         peakloop

peakdone:
	VZEROUPPER
	RET
