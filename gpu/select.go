package gpu

import (
	"fmt"
	"log/slog"
)

// Select opens the backend that mode asks for: "cpu" returns nil (the CPU
// engine), "gpu" opens the device or fails with the reason, and "auto"
// opens it when it can and otherwise logs one line saying why it falls
// back to the CPU engine and returns nil.
func Select(mode string, o Options, log *slog.Logger) (*Device, error) {
	switch mode {
	case "cpu":
		return nil, nil
	case "gpu", "auto", "":
	default:
		return nil, fmt.Errorf("device %q: want auto, cpu or gpu", mode)
	}
	d, err := Open(o)
	if err == nil {
		in := d.Info()
		log.Info("gpu: serving on the device", "name", in.Name, "capability", fmt.Sprintf("%d.%d", in.Capability[0], in.Capability[1]),
			"driver", in.Driver, "kernels", in.Kernels, "precision", in.Precision)
		return d, nil
	}
	if mode == "gpu" {
		return nil, fmt.Errorf("--device gpu: %w", err)
	}
	log.Warn("gpu: no usable GPU, falling back to the CPU engine", "reason", err.Error())
	return nil, nil
}
