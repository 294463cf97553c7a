package tower

import (
	"gorgonia.org/gorgonia"

	"github.com/tandemml/tandem/gemm"
)

// Every graph built here multiplies float32 matrices through gorgonia's
// BLAS. gonum's Sgemm, the default, was about half of a training step's
// CPU (docs/BENCHMARKS.md, "Training throughput"); gemm.BLAS runs the
// same products on the inference engine's packed kernel and leaves every
// other routine (float64 included: the gradient checks) to gonum.
func init() {
	gorgonia.Use(gemm.BLAS{})
}
