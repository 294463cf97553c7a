package data

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

func FuzzScratchParquet(f *testing.F) {
	dir := f.TempDir()
	writeTable(f, dir, TableItems, FormatParquet, sampleItems(20, 1))
	writeTable(f, dir, TableAds, FormatParquet, sampleAds(20, 1))
	for _, table := range []string{TableItems, TableAds} {
		b, _ := os.ReadFile(filepath.Join(dir, FileName(table, FormatParquet)))
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, content []byte) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		before := ms.TotalAlloc
		start := time.Now()
		fuzzParquet[Item](t, content)
		fuzzParquet[Ad](t, content)
		runtime.ReadMemStats(&ms)
		if d := time.Since(start); d > 100*time.Millisecond || ms.TotalAlloc-before > 50<<20 {
			os.WriteFile(fmt.Sprintf("/tmp/slowpq/%x-%dms-%dMB", sha256.Sum256(content), d.Milliseconds(), (ms.TotalAlloc-before)>>20), content, 0o644)
		}
	})
}
