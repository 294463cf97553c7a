//go:build amd64 && !noasm

package index

import "golang.org/x/sys/cpu"

// hasAsm reports whether the assembly kernels can run on this processor.
var hasAsm = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// useAsm selects the assembly kernels; tests turn it off to run the pure-Go
// twins on the same machine.
var useAsm = hasAsm

// dot4AVX2 scores q against the four rows a..d (n floats each, n a positive
// multiple of 8) into out, prefetching the rows pa..pd meanwhile.
//
//go:noescape
func dot4AVX2(out *[4]float32, q, a, b, c, d, pa, pb, pc, pd *float32, n int)

// l2x4AVX2 is dot4AVX2 for squared Euclidean distances.
//
//go:noescape
func l2x4AVX2(out *[4]float32, q, a, b, c, d, pa, pb, pc, pd *float32, n int)

// l2x1AVX2 returns ‖a−b‖² over n floats, n a positive multiple of 8.
//
//go:noescape
func l2x1AVX2(a, b *float32, n int) float32

// dot1AVX2 returns <a, b> over n floats, n a positive multiple of 8.
//
//go:noescape
func dot1AVX2(a, b *float32, n int) float32

// prefetch4AVX2 prefetches n floats at each of a..d.
//
//go:noescape
func prefetch4AVX2(a, b, c, d *float32, n int)

// prefetch1 prefetches the line at p.
//
//go:noescape
func prefetch1(p *int32)
