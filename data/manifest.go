package data

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// ManifestFile is the name of a data directory's manifest.
const ManifestFile = "manifest.json"

// ManifestVersion is the manifest format this build writes and reads.
const ManifestVersion = 1

// Manifest describes a data directory: who wrote it, under which schema,
// the time split and how many rows each table holds.
type Manifest struct {
	Version int `json:"version"`
	// Source is "simulator" or the name of an importer (e.g. "movielens").
	Source string `json:"source"`
	// GroundTruth says impressions carry true probabilities (p_true_*).
	GroundTruth bool   `json:"ground_truth"`
	SchemaHash  string `json:"schema_hash"`
	Format      Format `json:"format"`
	// Config is the full configuration (JSON) the data was made with.
	Config json.RawMessage `json:"config"`
	// Scale and Seed are the simulator's, when Source is "simulator".
	Scale string `json:"scale,omitempty"`
	Seed  uint64 `json:"seed,omitempty"`
	// Split boundaries in ms since the Unix epoch: history (organic only)
	// from HistoryStartMs, train from TrainStartMs, then validation, test,
	// and the end of data.
	HistoryStartMs    int64 `json:"history_start_ms"`
	TrainStartMs      int64 `json:"train_start_ms"`
	ValidationStartMs int64 `json:"validation_start_ms"`
	TestStartMs       int64 `json:"test_start_ms"`
	EndMs             int64 `json:"end_ms"`
	// Rows counts each table's rows.
	Rows map[string]int64 `json:"rows"`
}

// WriteManifest writes m into dir atomically (temp file, fsync, rename).
func WriteManifest(dir string, m *Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	path := filepath.Join(dir, ManifestFile)
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("write manifest: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write manifest: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	return nil
}

// ReadManifest reads and checks dir's manifest.
func ReadManifest(dir string) (*Manifest, error) {
	path := filepath.Join(dir, ManifestFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", path, err)
	}
	if m.Version != ManifestVersion {
		return nil, fmt.Errorf("read manifest %s: version %d, this build reads %d", path, m.Version, ManifestVersion)
	}
	if !(m.HistoryStartMs <= m.TrainStartMs && m.TrainStartMs < m.ValidationStartMs &&
		m.ValidationStartMs < m.TestStartMs && m.TestStartMs < m.EndMs) {
		return nil, fmt.Errorf("read manifest %s: split boundaries out of order", path)
	}
	return &m, nil
}
