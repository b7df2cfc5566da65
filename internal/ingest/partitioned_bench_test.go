package ingest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/features"
	"github.com/ripple-rec/ripple/internal/ingest"
)

// BenchmarkKafkaReplay is one node catching up on a 6-partition kfake topic
// (in process, loopback): read, decode and apply every partition into one
// engine, as recovery and the live appliers do. Reports events/s.
func BenchmarkKafkaReplay(b *testing.B) {
	const total = 200_000
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(6, kafkaTopic))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	lg, err := ingest.OpenKafka(ctx, ingest.KafkaOptions{Brokers: c.ListenAddrs(), Topic: kafkaTopic})
	if err != nil {
		b.Fatal(err)
	}
	defer lg.Close()
	types := []string{"view", "click", "cart", "purchase"}
	base := time.Now().Add(-time.Hour).UnixMilli()
	var rec event.Record
	rec.Kind = event.KindInteraction
	for i := 0; i < total; i += 1000 {
		recs := make([]ingest.Keyed, 1000)
		for j := range recs {
			n := i + j
			rec.Interaction = event.Interaction{User: fmt.Sprint("u", n%20_000), Item: fmt.Sprint("i", (n*7919)%5_000),
				Type: types[n%4], TS: base + int64(n)}
			recs[j] = ingest.Keyed{Key: []byte(rec.Interaction.User), Value: event.AppendBinary(nil, &rec)}
		}
		if _, err := lg.Append(ctx, recs); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		eng := features.NewEngine(features.DefaultConfig(), nil)
		svc := ingest.NewPartitioned(lg, eng, nil, nil, nil, ingest.Options{})
		if err := svc.Recover(ctx); err != nil {
			b.Fatal(err)
		}
		if got := eng.UserCount(); got != 20_000 {
			b.Fatalf("%d users after replay", got)
		}
		svc.Close()
	}
	b.ReportMetric(float64(total*b.N)/b.Elapsed().Seconds(), "events/s")
}
