// Package bf16 converts between float32 and bfloat16.
//
// A bfloat16 value is the upper half of an IEEE 754 binary32: one sign
// bit, the same 8 exponent bits and the top 7 of the 23 mantissa bits.
// It keeps float32's range at a quarter of its precision (about 3
// significant decimal digits), which halves the size of model weights on
// disk. Values are carried here as their bit patterns in a uint16.
//
// [FromFloat32] rounds to nearest, ties to even, as IEEE 754 does: a
// float32 that lies exactly between two bfloat16 values goes to the one
// whose last mantissa bit is zero. Rounding past the largest finite
// bfloat16 (about 3.3895e38) gives an infinity of the same sign. Zeros,
// subnormals and infinities keep their sign; a NaN stays a NaN of the
// same sign and is made quiet (the top mantissa bit is set), so that
// truncating its payload can never turn it into an infinity.
//
// [ToFloat32] is exact: every bfloat16 value is a float32 value.
package bf16
