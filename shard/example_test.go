package shard_test

import (
	"context"
	"fmt"

	"github.com/tandemml/tandem/shard"
)

// Three shards of a tiny index, each a list sorted best first. Asked for k′ = 1 each, every shard returns a
// full list that reaches the merged 3rd score, so all three are asked for 2; then only shard 0 is still in
// doubt and is asked for 3.
func ExampleGather() {
	index := [][]shard.Hit{
		{{ID: 4, Score: 0.9}, {ID: 7, Score: 0.8}, {ID: 1, Score: 0.1}},
		{{ID: 2, Score: 0.5}},
		{{ID: 3, Score: 0.3}, {ID: 8, Score: 0.2}},
	}
	s := shard.SearcherFunc(func(_ context.Context, sh, limit int) ([]shard.Hit, error) {
		return index[sh][:min(limit, len(index[sh]))], nil
	})
	res, err := shard.Gather(context.Background(), s, len(index), 3, 1, shard.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.Hits)
	fmt.Println("refetches", res.Refetches, "rows merged", res.Merged)
	// Output:
	// [{4 0.9} {7 0.8} {2 0.5}]
	// refetches 4 rows merged 11
}

func ExampleKPrime() {
	for _, s := range []int{4, 16, 64} {
		fmt.Printf("k=1000 S=%d k′=%d\n", s, shard.KPrime(1000, s, shard.DefaultP))
	}
	// Output:
	// k=1000 S=4 k′=323
	// k=1000 S=16 k′=106
	// k=1000 S=64 k′=40
}

func ExampleOf() {
	s, err := shard.Of(42, 64)
	fmt.Println(s, err)
	// Output: 45 <nil>
}
