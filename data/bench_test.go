package data

import (
	"io"
	"testing"
)

const benchRows = 1 << 20

// BenchmarkWriteImpressions measures writing impressions; see the rows/s
// metric. Parquet is the format that matters; JSONL is for comparison.
func BenchmarkWriteImpressions(b *testing.B) {
	rows := sampleImpressions(benchRows, 1)
	for _, f := range Formats {
		b.Run(string(f), func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				w, err := Create[Impression](b.TempDir(), TableImpressions, f)
				if err != nil {
					b.Fatal(err)
				}
				for i := 0; i < len(rows); i += 8192 {
					if err := w.Write(rows[i:min(i+8192, len(rows))]); err != nil {
						b.Fatal(err)
					}
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(benchRows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// BenchmarkReadImpressions measures reading (and checking) impressions; see
// the rows/s metric.
func BenchmarkReadImpressions(b *testing.B) {
	rows := sampleImpressions(benchRows, 1)
	for _, f := range Formats {
		b.Run(string(f), func(b *testing.B) {
			dir := b.TempDir()
			writeTable(b, dir, TableImpressions, f, rows)
			batch := make([]Impression, 8192)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				r, err := Open[Impression](dir, TableImpressions)
				if err != nil {
					b.Fatal(err)
				}
				total := 0
				for {
					n, err := r.Read(batch)
					total += n
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				r.Close()
				if total != benchRows {
					b.Fatalf("read %d rows, want %d", total, benchRows)
				}
			}
			b.ReportMetric(float64(benchRows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
