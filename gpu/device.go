package gpu

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"unsafe"

	"github.com/tandemml/tandem/gpu/cuda"
	"github.com/tandemml/tandem/gpu/kernels"
)

// Precision is the arithmetic of the GEMMs.
type Precision int

const (
	// FP32 uses cuBLAS's pedantic fp32 compute (for audits and parity).
	FP32 Precision = iota
	// TF32 lets cuBLAS use TF32 tensor cores for fp32 GEMMs.
	TF32
	// BF16 stores the big GEMMs' weights in bfloat16 and converts their
	// inputs on the device; accumulation and outputs stay fp32, and gates,
	// softmax, layer norm, heads and logits stay fp32 throughout.
	BF16
)

func (p Precision) String() string {
	switch p {
	case TF32:
		return "tf32"
	case BF16:
		return "bf16"
	}
	return "fp32"
}

// ParsePrecision reads "fp32", "tf32" or "bf16".
func ParsePrecision(s string) (Precision, error) {
	switch strings.ToLower(s) {
	case "fp32", "":
		return FP32, nil
	case "tf32":
		return TF32, nil
	case "bf16":
		return BF16, nil
	}
	return 0, fmt.Errorf("gpu: precision %q: want fp32, tf32 or bf16", s)
}

// DefaultBuckets are the batch sizes graphs are captured for.
var DefaultBuckets = []int{1, 8, 32, 128, 512, 2048}

// Options configure Open.
type Options struct {
	Paths     cuda.Paths // library overrides ("" discovers; see cuda.PathsFromEnv)
	Ordinal   int        // device ordinal
	Lanes     int        // concurrent streams (default 2)
	Buckets   []int      // batch buckets, ascending (default DefaultBuckets)
	Precision Precision
	// CacheDir caches NVRTC's CUBIN by source hash and device ("" : the
	// user cache directory; "-": no cache).
	CacheDir string
	// NoGraphs issues every step on the stream instead of launching the
	// captured graph (debug and per-layer comparison).
	NoGraphs bool
	// WorkspaceBytes per lane for cuBLAS and cuBLASLt (default 32 MiB).
	WorkspaceBytes uint64
}

// Info describes the opened device and libraries.
type Info struct {
	Name          string            `json:"name"`
	Capability    [2]int            `json:"compute_capability"`
	MemoryBytes   uint64            `json:"memory_bytes"`
	Driver        int               `json:"driver_version"`
	CUBLAS        int               `json:"cublas_version"`
	CUBLASLt      uint64            `json:"cublaslt_version"`
	NVRTC         string            `json:"nvrtc_version"`  // "" when absent
	Kernels       string            `json:"kernels_source"` // "nvrtc", "nvrtc-cache" or "ptx"
	KernelsReason string            `json:"kernels_reason,omitempty"`
	Libraries     map[string]string `json:"libraries"`
	Precision     string            `json:"precision"`
	Lanes         int               `json:"lanes"`
	Buckets       []int             `json:"buckets"`
}

// Device is an opened GPU.
type Device struct {
	api   *cuda.API
	drv   *cuda.Driver
	o     Options
	info  Info
	dev   int32
	ctx   cuda.Context
	mod   cuda.Module
	fn    map[string]cuda.Function
	lanes []*lane
	free  chan *lane
}

// Open loads the CUDA libraries, opens the device's primary context,
// compiles the kernels (NVRTC, else the embedded PTX) and starts the lanes.
// Any failure is returned with its reason; nothing is left open.
func Open(o Options) (d *Device, err error) {
	if o.Lanes <= 0 {
		o.Lanes = 2
	}
	if len(o.Buckets) == 0 {
		o.Buckets = DefaultBuckets
	}
	if !slices.IsSorted(o.Buckets) || o.Buckets[0] < 1 {
		return nil, fmt.Errorf("gpu: buckets %v: want ascending sizes ≥ 1", o.Buckets)
	}
	if o.WorkspaceBytes == 0 {
		o.WorkspaceBytes = 32 << 20
	}
	api, err := cuda.Load(o.Paths)
	if err != nil {
		return nil, err
	}
	d = &Device{api: api, drv: api.Driver, o: o, fn: map[string]cuda.Function{}}
	d.info = Info{Libraries: api.Loaded, Precision: o.Precision.String(), Lanes: o.Lanes, Buckets: o.Buckets}
	defer func() {
		if err != nil {
			d.Close()
			d = nil
		}
	}()
	// The context and module are set up on the first lane's thread; every
	// lane makes the same primary context current on its own.
	first, err := d.startLane(true)
	if err != nil {
		return d, err
	}
	for len(d.lanes) < o.Lanes {
		if _, err := d.startLane(false); err != nil {
			return d, err
		}
	}
	d.free = make(chan *lane, len(d.lanes))
	for _, l := range d.lanes {
		d.free <- l
	}
	_ = first
	return d, nil
}

// init runs on the first lane: driver, device, context, kernels.
func (d *Device) init() error {
	drv := d.drv
	if err := drv.Init(); err != nil {
		return fmt.Errorf("gpu: %w", err)
	}
	n, err := drv.DeviceCount()
	if err != nil {
		return fmt.Errorf("gpu: %w", err)
	}
	if d.o.Ordinal >= n {
		return fmt.Errorf("gpu: device %d requested, %d present", d.o.Ordinal, n)
	}
	if d.dev, err = drv.Device(d.o.Ordinal); err != nil {
		return fmt.Errorf("gpu: %w", err)
	}
	in := &d.info
	if in.Driver, err = drv.DriverVersion(); err != nil {
		return fmt.Errorf("gpu: %w", err)
	}
	if in.Name, err = drv.DeviceName(d.dev); err != nil {
		return fmt.Errorf("gpu: %w", err)
	}
	for i, a := range []int{cuda.AttrComputeCapabilityMajor, cuda.AttrComputeCapabilityMinor} {
		if in.Capability[i], err = drv.DeviceAttribute(a, d.dev); err != nil {
			return fmt.Errorf("gpu: %w", err)
		}
	}
	if in.MemoryBytes, err = drv.DeviceTotalMem(d.dev); err != nil {
		return fmt.Errorf("gpu: %w", err)
	}
	if d.ctx, err = drv.PrimaryCtxRetain(d.dev); err != nil {
		return fmt.Errorf("gpu: %w", err)
	}
	if err := drv.CtxSetCurrent(d.ctx); err != nil {
		return fmt.Errorf("gpu: %w", err)
	}
	in.CUBLASLt = d.api.Lt.Version()
	image, err := d.kernelImage()
	if err != nil {
		return err
	}
	if d.mod, err = drv.ModuleLoadData(image); err != nil {
		return fmt.Errorf("gpu: loading the %s kernels: %w", in.Kernels, err)
	}
	for _, name := range kernels.Names() {
		f, err := drv.ModuleGetFunction(d.mod, name)
		if err != nil {
			return fmt.Errorf("gpu: kernel %s: %w", name, err)
		}
		d.fn[name] = f
	}
	return nil
}

// kernelImage compiles the kernel source with NVRTC for this device (or
// reads the cached CUBIN), falling back to the embedded PTX with the reason.
func (d *Device) kernelImage() ([]byte, error) {
	in := &d.info
	nv := d.api.NVRTC
	if nv == nil {
		in.Kernels, in.KernelsReason = "ptx", fmt.Sprint(d.api.NVRTCErr)
		return kernels.PTX(), nil
	}
	maj, minor, err := nv.Version()
	if err == nil {
		in.NVRTC = fmt.Sprintf("%d.%d", maj, minor)
	}
	arch := fmt.Sprintf("sm_%d%d", in.Capability[0], in.Capability[1])
	src := kernels.Source()
	sum := sha256.Sum256([]byte(src + "\x00" + arch + "\x00" + in.NVRTC))
	cache := ""
	if dir := d.cacheDir(); dir != "" {
		cache = filepath.Join(dir, hex.EncodeToString(sum[:12])+".cubin")
		if b, err := os.ReadFile(cache); err == nil && len(b) > 0 {
			in.Kernels = "nvrtc-cache"
			return b, nil
		}
	}
	cubin, log, err := nv.Compile(src, "kernels.cu", []string{"--gpu-architecture=" + arch, "--std=c++17"})
	if err != nil {
		in.Kernels, in.KernelsReason = "ptx", fmt.Sprintf("nvrtc failed: %v %s", err, strings.TrimSpace(log))
		return kernels.PTX(), nil
	}
	in.Kernels = "nvrtc"
	if cache != "" {
		if err := os.MkdirAll(filepath.Dir(cache), 0o755); err == nil {
			tmp := cache + ".tmp"
			if os.WriteFile(tmp, cubin, 0o644) == nil {
				_ = os.Rename(tmp, cache)
			}
		}
	}
	return cubin, nil
}

func (d *Device) cacheDir() string {
	switch d.o.CacheDir {
	case "-":
		return ""
	case "":
		dir, err := os.UserCacheDir()
		if err != nil {
			return ""
		}
		return filepath.Join(dir, "tandem", "kernels")
	}
	return d.o.CacheDir
}

// Info returns what was opened.
func (d *Device) Info() Info { return d.info }

// Close stops the lanes and releases the context. Models on the device
// must be closed first.
func (d *Device) Close() error {
	var errs []error
	for _, l := range d.lanes {
		errs = append(errs, l.stop())
	}
	d.lanes = nil
	if d.ctx != 0 {
		errs = append(errs, d.drv.PrimaryCtxRelease(d.dev))
		d.ctx = 0
	}
	return errors.Join(errs...)
}

// bucket returns the smallest bucket holding n rows, or the largest.
func (d *Device) bucket(n int) int {
	for _, b := range d.o.Buckets {
		if b >= n {
			return b
		}
	}
	return d.o.Buckets[len(d.o.Buckets)-1]
}

func (d *Device) maxBucket() int { return d.o.Buckets[len(d.o.Buckets)-1] }

// acquire takes a free lane; release gives it back.
func (d *Device) acquire() *lane  { return <-d.free }
func (d *Device) release(l *lane) { d.free <- l }

// lane is one locked OS thread with the context current and its stream,
// handles, workspace and launch block.
type lane struct {
	d     *Device
	id    int
	work  chan func()
	done  chan struct{}
	s     cuda.Stream
	blas  cuda.Handle
	lt    cuda.Handle
	ws    cuda.Ptr
	wsN   uint64
	ln    map[int]*cuda.Launch // launch blocks by parameter size
	konst unsafe.Pointer       // C memory: float32 constants (see konst*)
}

// Offsets of float32 constants in lane.konst.
const (
	konstOne = iota
	konstZero
	konstN = 64 // room for per-plan scales (attention)
)

// startLane starts a lane goroutine; the first one also initialises the
// device.
func (d *Device) startLane(first bool) (*lane, error) {
	l := &lane{d: d, id: len(d.lanes), work: make(chan func()), done: make(chan struct{})}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer close(l.done)
		var err error
		if first {
			err = d.init()
		} else {
			err = d.drv.CtxSetCurrent(d.ctx)
		}
		if err == nil {
			err = l.setup()
		}
		errc <- err
		if err != nil {
			return
		}
		for f := range l.work {
			f()
		}
		l.teardown()
	}()
	if err := <-errc; err != nil {
		<-l.done
		return nil, err
	}
	d.lanes = append(d.lanes, l)
	return l, nil
}

func (l *lane) setup() error {
	d := l.d
	drv, blas, lt := d.drv, d.api.BLAS, d.api.Lt
	var err error
	wrap := func(e error) error { return fmt.Errorf("gpu: lane %d: %w", l.id, e) }
	if l.s, err = drv.StreamCreate(); err != nil {
		return wrap(err)
	}
	if l.blas, err = blas.Create(); err != nil {
		return wrap(err)
	}
	if d.info.CUBLAS == 0 {
		if d.info.CUBLAS, err = blas.Version(l.blas); err != nil {
			return wrap(err)
		}
	}
	if err := blas.SetStream(l.blas, l.s); err != nil {
		return wrap(err)
	}
	mode := cuda.MathPedantic
	if d.o.Precision == TF32 {
		mode = cuda.MathTF32
	}
	if err := blas.SetMathMode(l.blas, mode); err != nil {
		return wrap(err)
	}
	l.wsN = d.o.WorkspaceBytes
	if l.ws, err = drv.MemAlloc(l.wsN); err != nil {
		return wrap(err)
	}
	if err := blas.SetWorkspace(l.blas, l.ws, l.wsN); err != nil {
		return wrap(err)
	}
	if l.lt, err = lt.Create(); err != nil {
		return wrap(err)
	}
	l.ln = map[int]*cuda.Launch{}
	if l.konst, err = drv.MemAllocHost(konstN * 4); err != nil {
		return wrap(err)
	}
	k := unsafe.Slice((*float32)(l.konst), konstN)
	clear(k)
	k[konstOne] = 1
	return nil
}

func (l *lane) teardown() {
	d := l.d
	if l.konst != nil {
		_ = d.drv.MemFreeHost(l.konst)
	}
	for _, b := range l.ln {
		_ = d.drv.FreeLaunch(b)
	}
	if l.lt != 0 {
		_ = d.api.Lt.Destroy(l.lt)
	}
	if l.blas != 0 {
		_ = d.api.BLAS.Destroy(l.blas)
	}
	if l.ws != 0 {
		_ = d.drv.MemFree(l.ws)
	}
	if l.s != 0 {
		_ = d.drv.StreamDestroy(l.s)
	}
}

// do runs f on the lane's thread and waits for it.
func (l *lane) do(f func() error) error {
	var err error
	ok := make(chan struct{})
	l.work <- func() {
		defer close(ok)
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("gpu: lane %d: %v", l.id, r)
			}
		}()
		err = f()
	}
	<-ok
	return err
}

func (l *lane) stop() error {
	close(l.work)
	<-l.done
	return nil
}

// konstPtr points at float32 constant i of the lane.
func (l *lane) konstPtr(i int) unsafe.Pointer {
	return unsafe.Add(l.konst, 4*i)
}

// launch issues kernel k on the lane's stream. The driver copies the
// parameter block at the call (and at capture), so one block per size is
// reused.
func (l *lane) launch(k kernels.Kernel) error {
	b := k.Bytes()
	ln := l.ln[len(b)]
	if ln == nil {
		var err error
		if ln, err = l.d.drv.NewLaunch(len(b)); err != nil {
			return fmt.Errorf("gpu: kernel %s: %w", k.Name(), err)
		}
		l.ln[len(b)] = ln
	}
	f, ok := l.d.fn[k.Name()]
	if !ok {
		return fmt.Errorf("gpu: kernel %s not loaded", k.Name())
	}
	grid, block := k.Dims()
	if grid[0] == 0 || grid[1] == 0 || grid[2] == 0 {
		return nil // nothing to do (an empty batch dimension)
	}
	copy(ln.Params(), b)
	if err := l.d.drv.LaunchKernel(f, grid, block, 0, l.s, ln); err != nil {
		return fmt.Errorf("gpu: kernel %s: %w", k.Name(), err)
	}
	return nil
}
