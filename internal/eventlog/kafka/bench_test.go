package kafka

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkProduceRead produces 100k small records keyed by 1,000 users into 6
// partitions on 3 brokers and reads them all back with one PartitionReader
// per partition. The brokers are kfake, in-process and in-memory, on loopback:
// the numbers measure this package and franz-go, not a real Kafka (no disk,
// no replication traffic), so read them as an upper bound for the client
// side only.
func BenchmarkProduceRead(b *testing.B) {
	const records, batch, users = 100_000, 5_000, 1_000
	c := newCluster(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	p := newProducer(b, c, topic, 0)
	readers := make([]*PartitionReader, numPartitions)
	next := make([]uint64, numPartitions)
	for i := range readers {
		readers[i] = newReader(b, c, topic, int32(i), 1)
		next[i] = 1
	}
	recs := make([]Record, batch)
	for i := range recs {
		recs[i] = Record{Key: fmt.Appendf(nil, "u%d", i%users), Value: make([]byte, 100)}
	}
	var produceTime, readTime time.Duration
	for b.Loop() {
		start := time.Now()
		for range records / batch {
			if err := p.Append(ctx, recs); err != nil {
				b.Fatal(err)
			}
		}
		produceTime += time.Since(start)

		start = time.Now()
		n := 0
		for i, r := range readers {
			_, end, err := r.Refresh(ctx)
			if err != nil {
				b.Fatal(err)
			}
			for next[i] < end {
				next[i], err = r.Read(ctx, next[i], 10_000, func(uint64, []byte) error { n++; return nil })
				if err != nil {
					b.Fatal(err)
				}
			}
		}
		readTime += time.Since(start)
		if n != records {
			b.Fatalf("read %d records, want %d", n, records)
		}
	}
	total := float64(records * b.N)
	b.ReportMetric(total/produceTime.Seconds(), "produced-records/s")
	b.ReportMetric(total/readTime.Seconds(), "read-records/s")
	b.ReportMetric(total/b.Elapsed().Seconds(), "records/s")
}
