package data

import (
	"os"
	"testing"
)

func TestScratchSlow(t *testing.T) {
	b, err := os.ReadFile(os.Getenv("SLOW"))
	if err != nil {
		t.Skip()
	}
	fuzzParquet[Item](t, b)
	fuzzParquet[Ad](t, b)
}
