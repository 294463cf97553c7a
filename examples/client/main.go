// Command client is the smallest Go client of a tandem server: it sends
// one Retrieve and ranks what came back with Rank, for a user described by
// value (tandem keeps no user feature store).
//
//	go run ./cmd/tandem serve -model MODELDIR -db DBDIR &
//	go run ./examples/client -addr 127.0.0.1:7070
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	tandemv1 "github.com/tandemml/tandem/proto/tandem/v1"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:7070", "server address")
	k := flag.Int("k", 20, "ads to retrieve")
	flag.Parse()

	conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	c := tandemv1.NewTandemClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()

	now := time.Now().UnixMilli()
	user := &tandemv1.UserContext{
		UserId:      42,
		Surface:     "home_feed",
		ViewType:    "grid",
		Categorical: map[string]string{"country": "de", "device": "android", "age_bucket": "25-34"},
		Dense:       map[string]float64{"activity": 1.2, "account_age_days": 400},
		// Newest first, each before the request time.
		Events: []*tandemv1.Event{
			{ItemId: 1001, Action: "click", Surface: "home_feed", TsMs: now - 60_000},
			{ItemId: 2002, Action: "save", Surface: "search", TsMs: now - 3_600_000},
		},
	}
	ret, err := c.Retrieve(ctx, &tandemv1.RetrieveRequest{User: user, K: int32(*k)})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("snapshot %s; features given their defaults: %v\n", ret.SnapshotVersion, ret.DefaultedFeatures)
	ids := make([]int64, len(ret.Ads))
	for i, a := range ret.Ads {
		ids[i] = a.AdId
	}
	rank, err := c.Rank(ctx, &tandemv1.RankRequest{User: user, AdIds: ids})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("model %s ranks %d ads; tasks %v\n", rank.ModelVersion, len(rank.Ads), rank.Tasks)
	for i, a := range rank.Ads[:min(5, len(rank.Ads))] {
		fmt.Printf("%d. ad %d  p=%v  utility %.5f\n", i+1, a.AdId, a.Probabilities, a.Utility)
	}
}
