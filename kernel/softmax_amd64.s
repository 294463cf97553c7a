//go:build amd64 && !noasm

#include "textflag.h"

// Constants of softmaxAVX2, each broadcast over a 32-byte vector.
//
// float32: log2(e); ln 2 split as ln2hi + ln2lo (ln2hi = float32(ln 2),
// ln2lo = float32(ln 2 − ln2hi)); exp32's underflow threshold −103.972
// and −104, the argument that replaces those below it; the coefficients
// c0..c5 of exp32's polynomial, rounded to float32 as exp32 rounds
// them. int32: the exponent bias 127 plus 64. float64: 1.

DATA smlog2e<>+0x00(SB)/8, $0x3fb8aa3b3fb8aa3b
DATA smlog2e<>+0x08(SB)/8, $0x3fb8aa3b3fb8aa3b
DATA smlog2e<>+0x10(SB)/8, $0x3fb8aa3b3fb8aa3b
DATA smlog2e<>+0x18(SB)/8, $0x3fb8aa3b3fb8aa3b
GLOBL smlog2e<>(SB), RODATA|NOPTR, $32

DATA smln2hi<>+0x00(SB)/8, $0x3f3172183f317218
DATA smln2hi<>+0x08(SB)/8, $0x3f3172183f317218
DATA smln2hi<>+0x10(SB)/8, $0x3f3172183f317218
DATA smln2hi<>+0x18(SB)/8, $0x3f3172183f317218
GLOBL smln2hi<>(SB), RODATA|NOPTR, $32

DATA smln2lo<>+0x00(SB)/8, $0xb102e308b102e308
DATA smln2lo<>+0x08(SB)/8, $0xb102e308b102e308
DATA smln2lo<>+0x10(SB)/8, $0xb102e308b102e308
DATA smln2lo<>+0x18(SB)/8, $0xb102e308b102e308
GLOBL smln2lo<>(SB), RODATA|NOPTR, $32

DATA smthr<>+0x00(SB)/8, $0xc2cff1aac2cff1aa
DATA smthr<>+0x08(SB)/8, $0xc2cff1aac2cff1aa
DATA smthr<>+0x10(SB)/8, $0xc2cff1aac2cff1aa
DATA smthr<>+0x18(SB)/8, $0xc2cff1aac2cff1aa
GLOBL smthr<>(SB), RODATA|NOPTR, $32

DATA smfloor<>+0x00(SB)/8, $0xc2d00000c2d00000
DATA smfloor<>+0x08(SB)/8, $0xc2d00000c2d00000
DATA smfloor<>+0x10(SB)/8, $0xc2d00000c2d00000
DATA smfloor<>+0x18(SB)/8, $0xc2d00000c2d00000
GLOBL smfloor<>(SB), RODATA|NOPTR, $32

DATA smc0<>+0x00(SB)/8, $0x3f0000003f000000
DATA smc0<>+0x08(SB)/8, $0x3f0000003f000000
DATA smc0<>+0x10(SB)/8, $0x3f0000003f000000
DATA smc0<>+0x18(SB)/8, $0x3f0000003f000000
GLOBL smc0<>(SB), RODATA|NOPTR, $32

DATA smc1<>+0x00(SB)/8, $0x3e2aaaaa3e2aaaaa
DATA smc1<>+0x08(SB)/8, $0x3e2aaaaa3e2aaaaa
DATA smc1<>+0x10(SB)/8, $0x3e2aaaaa3e2aaaaa
DATA smc1<>+0x18(SB)/8, $0x3e2aaaaa3e2aaaaa
GLOBL smc1<>(SB), RODATA|NOPTR, $32

DATA smc2<>+0x00(SB)/8, $0x3d2aa9c13d2aa9c1
DATA smc2<>+0x08(SB)/8, $0x3d2aa9c13d2aa9c1
DATA smc2<>+0x10(SB)/8, $0x3d2aa9c13d2aa9c1
DATA smc2<>+0x18(SB)/8, $0x3d2aa9c13d2aa9c1
GLOBL smc2<>(SB), RODATA|NOPTR, $32

DATA smc3<>+0x00(SB)/8, $0x3c0889083c088908
DATA smc3<>+0x08(SB)/8, $0x3c0889083c088908
DATA smc3<>+0x10(SB)/8, $0x3c0889083c088908
DATA smc3<>+0x18(SB)/8, $0x3c0889083c088908
GLOBL smc3<>(SB), RODATA|NOPTR, $32

DATA smc4<>+0x00(SB)/8, $0x3ab743ce3ab743ce
DATA smc4<>+0x08(SB)/8, $0x3ab743ce3ab743ce
DATA smc4<>+0x10(SB)/8, $0x3ab743ce3ab743ce
DATA smc4<>+0x18(SB)/8, $0x3ab743ce3ab743ce
GLOBL smc4<>(SB), RODATA|NOPTR, $32

DATA smc5<>+0x00(SB)/8, $0x3950696739506967
DATA smc5<>+0x08(SB)/8, $0x3950696739506967
DATA smc5<>+0x10(SB)/8, $0x3950696739506967
DATA smc5<>+0x18(SB)/8, $0x3950696739506967
GLOBL smc5<>(SB), RODATA|NOPTR, $32

DATA smbias<>+0x00(SB)/8, $0x000000bf000000bf
DATA smbias<>+0x08(SB)/8, $0x000000bf000000bf
DATA smbias<>+0x10(SB)/8, $0x000000bf000000bf
DATA smbias<>+0x18(SB)/8, $0x000000bf000000bf
GLOBL smbias<>(SB), RODATA|NOPTR, $32

DATA smone64<>+0x00(SB)/8, $0x3ff0000000000000
DATA smone64<>+0x08(SB)/8, $0x3ff0000000000000
DATA smone64<>+0x10(SB)/8, $0x3ff0000000000000
DATA smone64<>+0x18(SB)/8, $0x3ff0000000000000
GLOBL smone64<>(SB), RODATA|NOPTR, $32

// smmask<>+32(t−1) (t = 1..8) selects, in the last 8 values of a row of
// width ≥ 8 whose full blocks before them leave t values, the last t
// lanes. smmask<>+256+32(t−1) (t = 1..7) selects, in the vector a row of
// width t < 8 is loaded into (see softmaxAVX2), one lane per value.
DATA smmask<>+0x000(SB)/8, $0x0000000000000000
DATA smmask<>+0x008(SB)/8, $0x0000000000000000
DATA smmask<>+0x010(SB)/8, $0x0000000000000000
DATA smmask<>+0x018(SB)/8, $0xffffffff00000000
DATA smmask<>+0x020(SB)/8, $0x0000000000000000
DATA smmask<>+0x028(SB)/8, $0x0000000000000000
DATA smmask<>+0x030(SB)/8, $0x0000000000000000
DATA smmask<>+0x038(SB)/8, $0xffffffffffffffff
DATA smmask<>+0x040(SB)/8, $0x0000000000000000
DATA smmask<>+0x048(SB)/8, $0x0000000000000000
DATA smmask<>+0x050(SB)/8, $0xffffffff00000000
DATA smmask<>+0x058(SB)/8, $0xffffffffffffffff
DATA smmask<>+0x060(SB)/8, $0x0000000000000000
DATA smmask<>+0x068(SB)/8, $0x0000000000000000
DATA smmask<>+0x070(SB)/8, $0xffffffffffffffff
DATA smmask<>+0x078(SB)/8, $0xffffffffffffffff
DATA smmask<>+0x080(SB)/8, $0x0000000000000000
DATA smmask<>+0x088(SB)/8, $0xffffffff00000000
DATA smmask<>+0x090(SB)/8, $0xffffffffffffffff
DATA smmask<>+0x098(SB)/8, $0xffffffffffffffff
DATA smmask<>+0x0a0(SB)/8, $0x0000000000000000
DATA smmask<>+0x0a8(SB)/8, $0xffffffffffffffff
DATA smmask<>+0x0b0(SB)/8, $0xffffffffffffffff
DATA smmask<>+0x0b8(SB)/8, $0xffffffffffffffff
DATA smmask<>+0x0c0(SB)/8, $0xffffffff00000000
DATA smmask<>+0x0c8(SB)/8, $0xffffffffffffffff
DATA smmask<>+0x0d0(SB)/8, $0xffffffffffffffff
DATA smmask<>+0x0d8(SB)/8, $0xffffffffffffffff
DATA smmask<>+0x0e0(SB)/8, $0xffffffffffffffff
DATA smmask<>+0x0e8(SB)/8, $0xffffffffffffffff
DATA smmask<>+0x0f0(SB)/8, $0xffffffffffffffff
DATA smmask<>+0x0f8(SB)/8, $0xffffffffffffffff
DATA smmask<>+0x100(SB)/8, $0x00000000ffffffff
DATA smmask<>+0x108(SB)/8, $0x0000000000000000
DATA smmask<>+0x110(SB)/8, $0x0000000000000000
DATA smmask<>+0x118(SB)/8, $0x0000000000000000
DATA smmask<>+0x120(SB)/8, $0xffffffffffffffff
DATA smmask<>+0x128(SB)/8, $0x0000000000000000
DATA smmask<>+0x130(SB)/8, $0x0000000000000000
DATA smmask<>+0x138(SB)/8, $0x0000000000000000
DATA smmask<>+0x140(SB)/8, $0xffffffffffffffff
DATA smmask<>+0x148(SB)/8, $0xffffffff00000000
DATA smmask<>+0x150(SB)/8, $0x0000000000000000
DATA smmask<>+0x158(SB)/8, $0x0000000000000000
DATA smmask<>+0x160(SB)/8, $0xffffffffffffffff
DATA smmask<>+0x168(SB)/8, $0xffffffffffffffff
DATA smmask<>+0x170(SB)/8, $0x0000000000000000
DATA smmask<>+0x178(SB)/8, $0x0000000000000000
DATA smmask<>+0x180(SB)/8, $0xffffffffffffffff
DATA smmask<>+0x188(SB)/8, $0xffffffffffffffff
DATA smmask<>+0x190(SB)/8, $0x0000000000000000
DATA smmask<>+0x198(SB)/8, $0xffffffff00000000
DATA smmask<>+0x1a0(SB)/8, $0xffffffffffffffff
DATA smmask<>+0x1a8(SB)/8, $0xffffffffffffffff
DATA smmask<>+0x1b0(SB)/8, $0x0000000000000000
DATA smmask<>+0x1b8(SB)/8, $0xffffffffffffffff
DATA smmask<>+0x1c0(SB)/8, $0xffffffffffffffff
DATA smmask<>+0x1c8(SB)/8, $0xffffffffffffffff
DATA smmask<>+0x1d0(SB)/8, $0xffffffff00000000
DATA smmask<>+0x1d8(SB)/8, $0xffffffffffffffff
GLOBL smmask<>(SB), RODATA|NOPTR, $480

// MAX8 folds 8 values, in Y3, into the running maximum Y1 and their NaN
// lanes (unordered with themselves) into Y2.
#define MAX8 \
	VMAXPS Y3, Y1, Y1;     \
	VCMPPS $3, Y3, Y3, Y4; \
	VORPS  Y4, Y2, Y2

// EXP8 replaces the 8 values x in Y0 by e = e^(x−m), m in Y15, into Y4.
//
// Reduction, exact up to one rounding of r: s = x − m rounded and its
// error lo (TwoSum: s + lo = x − m exactly). s < −103.972 (−Inf and a
// difference that overflows included) becomes −104, with lo = 0: its
// weight rounds to +0 below, as exp32 returns 0 there (testing s rather
// than x − m can only change a weight of at most 2⁻¹⁴⁹). n = round(
// s·log2 e), ties to even, and r = (s − n·ln2hi) + (lo − n·ln2lo): the
// first term is exact (an FMA, and s − n·ln2hi is a multiple of 2⁻²⁵
// below 0.5 in magnitude, or s itself when n = 0), the second is below
// 7e-6 and its own rounding below 4e-13, so r is x − m − n·ln 2 rounded
// once, as exp32 rounds it from float64.
//
// Then exp32's polynomial p = c0 + c1·r + … + c5·r⁵ by Estrin's scheme
// with FMAs, (c0 + c1·r) + (c2 + c3·r)·r² + (c4 + c5·r)·r⁴; q = p·r² + r;
// and e = q·2^(n+64) + 2^(n+64): q + 1 rounded once, as exp32 rounds it,
// and scaled exactly. Since m is the maximum, s ≤ 0 and n lies in
// [−150, 0], so e is a normal float32 in [2⁻⁸⁷, 2⁶⁴] even where e^(x−m)
// itself is subnormal or 0: the factor 2⁶⁴ is taken out of the sum
// instead, and the one rounding into the subnormal range is the final
// one, in SCALEMEM or SCALEREG. An argument replaced by −104 gets e < 2⁻⁸⁶ and a
// weight below 2⁻¹⁵⁰, which rounds to +0.
//
// Registers: Y15 m, Y9 log2 e, Y8 ln2hi, Y12 c0, Y11 c2, Y10 c4; Y0-Y6
// scratch.
#define EXP8 \
	VSUBPS       Y15, Y0, Y1;               \
	VADDPS       Y15, Y1, Y2;               \
	VSUBPS       Y2, Y1, Y3;                \
	VSUBPS       Y2, Y0, Y0;                \
	VADDPS       Y15, Y3, Y3;               \
	VSUBPS       Y3, Y0, Y0;                \
	VCMPPS       $1, smthr<>(SB), Y1, Y3;   \
	VBLENDVPS    Y3, smfloor<>(SB), Y1, Y1; \
	VANDNPS      Y0, Y3, Y0;                \
	VMULPS       Y9, Y1, Y2;                \
	VROUNDPS     $0, Y2, Y2;                \
	VFNMADD231PS Y8, Y2, Y1;                \
	VFNMADD231PS smln2lo<>(SB), Y2, Y0;     \
	VADDPS       Y1, Y0, Y0;                \
	VCVTPS2DQ    Y2, Y2;                    \
	VPADDD       smbias<>(SB), Y2, Y2;      \
	VPSLLD       $23, Y2, Y2;               \
	VMULPS       Y0, Y0, Y1;                \
	VMOVAPS      Y12, Y4;                   \
	VFMADD231PS  smc1<>(SB), Y0, Y4;        \
	VMOVAPS      Y11, Y5;                   \
	VFMADD231PS  smc3<>(SB), Y0, Y5;        \
	VMOVAPS      Y10, Y6;                   \
	VFMADD231PS  smc5<>(SB), Y0, Y6;        \
	VMULPS       Y1, Y1, Y3;                \
	VFMADD231PS  Y5, Y1, Y4;                \
	VFMADD231PS  Y6, Y3, Y4;                \
	VFMADD213PS  Y0, Y1, Y4;                \
	VFMADD213PS  Y2, Y2, Y4

// SUM8 adds the 8 values e in Y4, widened to float64, into the running
// sums Y14 (lanes 0-3) and Y13 (lanes 4-7), which start as Y7's.
#define SUM8 \
	VCVTPS2PD    X4, Y5;       \
	VEXTRACTF128 $1, Y4, X6;   \
	VCVTPS2PD    X6, Y6;       \
	VADDPD       Y5, Y14, Y14; \
	VADDPD       Y6, Y13, Y13

// SCALEMEM and SCALEREG replace the 8 values e, at p or in Y7, by
// float32(float64(e)·inv), inv = 1/sum (float64) in Y15, into Y1.
#define SCALEMEM(p) \
	VCVTPS2PD   (p), Y1;        \
	VCVTPS2PD   16(p), Y2;      \
	VMULPD      Y15, Y1, Y1;    \
	VMULPD      Y15, Y2, Y2;    \
	VCVTPD2PSY  Y1, X1;         \
	VCVTPD2PSY  Y2, X2;         \
	VINSERTF128 $1, X2, Y1, Y1

#define SCALEREG \
	VCVTPS2PD    X7, Y1;      \
	VEXTRACTF128 $1, Y7, X2;  \
	VCVTPS2PD    X2, Y2;      \
	VMULPD       Y15, Y1, Y1; \
	VMULPD       Y15, Y2, Y2; \
	VCVTPD2PSY   Y1, X1;      \
	VCVTPD2PSY   Y2, X2;      \
	VINSERTF128  $1, X2, Y1, Y1

// func softmaxAVX2(x []float32) bool
//
// Three passes over the row: the maximum m (and the NaN check), the
// exponentials and their sum, the scaling by 1/sum. The row's last
// t = len(x) − 8·⌊(len(x)−1)/8⌋ values (1 to 8) are loaded once, before
// anything is written, into a vector Y7 that holds only values of the
// row, read from inside it:
//
//   - a row of width ≥ 8: its last 8 values, x[len−8:len];
//   - width 4 to 7: x[0:4] and x[t−4:t];
//   - width 2 or 3: x[0:2] and x[t−2:t], twice;
//   - width 1: x[0] in every lane.
//
// The full blocks of 8 before them are processed where they lie: their
// exponentials are stored into the row, then read back and scaled. Y7
// goes through the same instructions in registers, so every lane gets
// the bits its value gets anywhere else. Of the lanes that repeat a value
// (of a full block, or of Y7 itself) only one, picked by the mask at R10,
// enters the sum; the maximum does not care. At the end Y7 is stored back
// over the same places, after the full blocks, so a value stored twice
// gets the same bits twice. Nothing is written when the row has a NaN or
// an infinite maximum: the result is false and Go takes the row.
//
// Registers: SI x, CX len(x), DX full blocks, BX t, R8 block pointer, R9
// block counter, R10 the sum mask of Y7.
TEXT ·softmaxAVX2(SB), NOSPLIT, $0-25
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), CX
	LEAQ -1(CX), DX
	SHRQ $3, DX              // DX = ⌊(len−1)/8⌋
	MOVQ DX, BX
	SHLQ $3, BX
	NEGQ BX
	ADDQ CX, BX              // BX = t = len − 8·DX
	LEAQ smmask<>(SB), R10
	MOVQ BX, AX
	SHLQ $5, AX
	LEAQ -32(R10)(AX*1), R10 // R10 = smmask<>+32(t−1)
	CMPQ CX, $8
	JLT  short
	VMOVUPS -32(SI)(CX*4), Y7
	JMP  loaded

short:
	ADDQ $256, R10
	CMPQ BX, $4
	JLT  short3
	VMOVUPS     (SI), X7
	VMOVUPS     -16(SI)(BX*4), X0
	VINSERTF128 $1, X0, Y7, Y7
	JMP         loaded

short3:
	CMPQ BX, $2
	JLT  short1
	VMOVSD      (SI), X7
	VMOVHPS     -8(SI)(BX*4), X7, X7
	VINSERTF128 $1, X7, Y7, Y7
	JMP         loaded

short1:
	VBROADCASTSS (SI), Y7

loaded:
	// Pass 1: the maximum in Y1, NaN lanes in Y2.
	VMOVAPS Y7, Y1
	VCMPPS  $3, Y7, Y7, Y2
	MOVQ    SI, R8
	MOVQ    DX, R9
	TESTQ   R9, R9
	JZ      maxdone

maxloop:
	VMOVUPS (R8), Y3
	MAX8
	ADDQ    $32, R8
	DECQ    R9
	JNZ     maxloop

maxdone:
	VMOVMSKPS Y2, AX
	TESTL     AX, AX
	JNZ       decline

	// m in every lane of Y15; an infinite m is declined.
	VPERM2F128 $1, Y1, Y1, Y2
	VMAXPS     Y2, Y1, Y1
	VPERMILPS  $0x4e, Y1, Y2
	VMAXPS     Y2, Y1, Y1
	VPERMILPS  $0xb1, Y1, Y2
	VMAXPS     Y2, Y1, Y15
	VMOVD      X15, AX
	ANDL       $0x7fffffff, AX
	CMPL       AX, $0x7f800000
	JEQ        decline

	// Pass 2: the exponentials, Y7's first; its lanes that enter the sum
	// start the float64 sums Y14 and Y13.
	VMOVUPS      smlog2e<>(SB), Y9
	VMOVUPS      smln2hi<>(SB), Y8
	VMOVUPS      smc0<>(SB), Y12
	VMOVUPS      smc2<>(SB), Y11
	VMOVUPS      smc4<>(SB), Y10
	VMOVAPS      Y7, Y0
	EXP8
	VMOVAPS      Y4, Y7
	VANDPS       (R10), Y4, Y4
	VCVTPS2PD    X4, Y14
	VEXTRACTF128 $1, Y4, X6
	VCVTPS2PD    X6, Y13
	MOVQ         SI, R8
	MOVQ         DX, R9
	TESTQ        R9, R9
	JZ           expdone

exploop:
	VMOVUPS (R8), Y0
	EXP8
	VMOVUPS Y4, (R8)
	SUM8
	ADDQ    $32, R8
	DECQ    R9
	JNZ     exploop

expdone:
	// The sum of the e, in every lane of Y0: with s_l the sum of lane l,
	// a_l = s_l + s_l+4 (l = 0..3) and sum = (a0 + a2) + (a1 + a3).
	// Y15 = 1/sum.
	VADDPD     Y13, Y14, Y0
	VPERM2F128 $1, Y0, Y0, Y1
	VADDPD     Y1, Y0, Y0
	VPERMILPD  $5, Y0, Y1
	VADDPD     Y1, Y0, Y0
	VMOVUPD    smone64<>(SB), Y15
	VDIVPD     Y0, Y15, Y15

	// Pass 3: scale the full blocks, then Y7, and store Y7 back where it
	// came from.
	MOVQ  SI, R8
	MOVQ  DX, R9
	TESTQ R9, R9
	JZ    scaletail

scaleloop:
	SCALEMEM(R8)
	VMOVUPS Y1, (R8)
	ADDQ    $32, R8
	DECQ    R9
	JNZ     scaleloop

scaletail:
	SCALEREG
	CMPQ CX, $8
	JLT  shortout
	VMOVUPS Y1, -32(SI)(CX*4)
	JMP     done

shortout:
	CMPQ BX, $4
	JLT  shortout3
	VMOVUPS      X1, (SI)
	VEXTRACTF128 $1, Y1, X2
	VMOVUPS      X2, -16(SI)(BX*4)
	JMP          done

shortout3:
	CMPQ BX, $2
	JLT  shortout1
	VMOVSD  X1, (SI)
	VMOVHPS X1, -8(SI)(BX*4)
	JMP     done

shortout1:
	VMOVSS X1, (SI)

done:
	VZEROUPPER
	MOVB $1, ret+24(FP)
	RET

decline:
	VZEROUPPER
	MOVB $0, ret+24(FP)
	RET
