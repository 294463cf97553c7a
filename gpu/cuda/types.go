package cuda

// Ptr is a device address (CUdeviceptr).
type Ptr uint64

// Context is a CUDA context (CUcontext).
type Context uintptr

// Stream is a CUDA stream (CUstream); 0 is the legacy default stream.
type Stream uintptr

// Module is a loaded module (CUmodule).
type Module uintptr

// Function is a kernel of a module (CUfunction).
type Function uintptr

// Graph is a captured CUDA graph (CUgraph).
type Graph uintptr

// GraphExec is an instantiated, launchable graph (CUgraphExec).
type GraphExec uintptr

// Handle is a cuBLAS or cuBLASLt handle, a cuBLASLt matmul descriptor or a
// cuBLASLt matrix layout.
type Handle uintptr

// Device attributes (CUdevice_attribute, cuda.h).
const (
	AttrMultiprocessorCount    = 16
	AttrComputeCapabilityMajor = 75
	AttrComputeCapabilityMinor = 76
)

// CUDA error codes (CUresult, cuda.h) that callers test for.
const (
	ErrInvalidValue   = 1
	ErrOutOfMemory    = 2
	ErrNotInitialized = 3
	ErrNoDevice       = 100
	ErrNotFound       = 500
	ErrIllegalAddress = 700
)

// Operations (cublasOperation_t, cublas_api.h).
const (
	OpN = 0 // no transpose
	OpT = 1 // transpose
)

// Data types (cudaDataType, library_types.h).
const (
	R32F  = 0  // float32
	R16BF = 14 // bfloat16
)

// Compute types (cublasComputeType_t, cublas_api.h).
const (
	Compute32F         = 68 // fp32, tensor cores allowed by the math mode
	Compute32FPedantic = 69 // fp32 throughout
	Compute32FFast16BF = 75 // fp32 accumulation, inputs rounded to bf16
	Compute32FFastTF32 = 77 // fp32 accumulation, inputs rounded to tf32
)

// GemmDefault is CUBLAS_GEMM_DEFAULT, the heuristic algorithm choice.
const GemmDefault = -1

// Math modes (cublasMath_t, cublas_api.h).
const (
	MathDefault  = 0
	MathPedantic = 2
	MathTF32     = 3
)

// cuBLASLt matmul descriptor attributes (cublasLtMatmulDescAttributes_t,
// cublasLt.h, CUDA 12/13).
const (
	LtDescComputeType  = 0
	LtDescScaleType    = 1
	LtDescPointerMode  = 2
	LtDescTransA       = 3  // int32 cublasOperation_t
	LtDescTransB       = 4  // int32 cublasOperation_t
	LtDescEpilogue     = 7  // uint32 cublasLtEpilogue_t
	LtDescBiasPointer  = 8  // const void*, length = rows of D
	LtDescBiasDataType = 26 // int32 cudaDataType
)

// cuBLASLt epilogues (cublasLtEpilogue_t, cublasLt.h, CUDA 12/13).
const (
	EpilogueDefault  = 1
	EpilogueReLU     = 2
	EpilogueBias     = 4
	EpilogueReLUBias = 6  // RELU | BIAS
	EpilogueGELU     = 32 // GELU
	EpilogueGELUBias = 36 // GELU | BIAS
)

// Stream flags, capture modes and launch parameter keys (cuda.h).
const (
	streamNonBlocking      = 1
	captureModeThreadLocal = 1
	launchParamBufferPtr   = 1 // CU_LAUNCH_PARAM_BUFFER_POINTER
	launchParamBufferSize  = 2 // CU_LAUNCH_PARAM_BUFFER_SIZE
	launchParamEnd         = 0 // CU_LAUNCH_PARAM_END
)

// cuBLAS status codes (cublasStatus_t, cublas_api.h) that callers test for.
const (
	StatusInvalidValue    = 7
	StatusExecutionFailed = 13
	StatusNotSupported    = 15
)

// NVRTCErrorCompilation is NVRTC_ERROR_COMPILATION (nvrtc.h).
const NVRTCErrorCompilation = 6
