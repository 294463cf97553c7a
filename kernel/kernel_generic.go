//go:build !amd64 || noasm

package kernel

// hasAsm reports whether the assembly kernels can run here: never in this
// build.
const hasAsm = false

// useAsm exists so that tests can set it; it selects nothing here.
var useAsm = false

func dotsF32(out, q, rows []float32, d int) { dotsF32Go(out, q, rows, d) }

func dotsBF16(out, q []float32, rows []uint16, d int) { dotsBF16Go(out, q, rows, d) }

func firstAbove(x []float32, t float32) int { return firstAboveGo(x, t) }

func softmax(x []float32) { softmaxGo(x) }
