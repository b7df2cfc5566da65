package nats

import (
	"context"
	"strconv"
	"testing"
	"time"
)

// BenchmarkAppendRead appends b.N records of 120 bytes keyed by 10,000 users
// to a real nats-server on loopback in batches of 1,000, then reads all 6
// partitions back; it reports both rates.
func BenchmarkAppendRead(b *testing.B) {
	s := startServer(b)
	const parts, batch = 6, 1000
	l := openLog(b, s, parts)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	value := make([]byte, 120)
	recs := make([]Record, 0, batch)
	b.ResetTimer()
	t0 := time.Now()
	for i := 0; i < b.N; i += batch {
		recs = recs[:0]
		for j := i; j < min(i+batch, b.N); j++ {
			recs = append(recs, Record{Key: []byte("u" + strconv.Itoa(j%10000)), Value: value, ID: "e" + strconv.Itoa(j)})
		}
		if err := l.Append(ctx, recs); err != nil {
			b.Fatal(err)
		}
	}
	appendTime := time.Since(t0)
	t0 = time.Now()
	n := 0
	for p := range parts {
		r, err := l.Reader(p)
		if err != nil {
			b.Fatal(err)
		}
		for from := uint64(1); ; {
			got := 0
			from, err = r.Read(ctx, from, 4096, func(uint64, []byte) error { got++; return nil })
			if err != nil {
				b.Fatal(err)
			}
			if n += got; got == 0 {
				break
			}
		}
		r.Close()
	}
	readTime := time.Since(t0)
	b.StopTimer()
	if n != b.N {
		b.Fatalf("read %d of %d records", n, b.N)
	}
	b.ReportMetric(float64(b.N)/appendTime.Seconds(), "appends/s")
	b.ReportMetric(float64(b.N)/readTime.Seconds(), "reads/s")
}
