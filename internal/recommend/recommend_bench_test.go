package recommend_test

import (
	"context"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/ripple-rec/ripple/internal/demo"
	"github.com/ripple-rec/ripple/internal/features"
	"github.com/ripple-rec/ripple/internal/recommend"
)

// demoEngine is the state `ripple serve --demo` serves: the demo catalogue
// and events applied in log order.
func demoEngine(b *testing.B) (*features.Engine, int) {
	b.Helper()
	opts := demo.DefaultOptions(time.Now())
	ds := demo.Generate(opts)
	e := features.NewEngine(features.DefaultConfig(), nil)
	for i, r := range ds.Records() {
		e.Apply(uint64(i+1), &r)
	}
	return e, opts.Users
}

// zipfUsers draws n user ids u0..u(users-1) with P(rank r) ∝ 1/(r+1)^1.1,
// the mix `ripple loadgen` and `ripple bench` use.
func zipfUsers(n, users int) []string {
	cdf := make([]float64, users)
	sum := 0.0
	for i := range cdf {
		sum += math.Pow(float64(i+1), -1.1)
		cdf[i] = sum
	}
	rng := rand.New(rand.NewPCG(1, 2))
	out := make([]string, n)
	for i := range out {
		out[i] = "u" + strconv.Itoa(min(sort.SearchFloat64s(cdf, rng.Float64()*sum), users-1))
	}
	return out
}

// BenchmarkRecommend is the pipeline alone (no HTTP, no JSON): candidates,
// filters, scoring and diversity for k=10 over the demo state.
func BenchmarkRecommend(b *testing.B) {
	e, users := demoEngine(b)
	p := recommend.New(e, recommend.DefaultConfig())
	ctx := context.Background()
	for _, bc := range []struct {
		name  string
		users []string
	}{
		{"zipf-users", zipfUsers(4096, users)},
		{"cold-start", []string{"nobody"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			i, cands := 0, 0
			for b.Loop() {
				res := p.Recommend(ctx, recommend.Request{User: bc.users[i%len(bc.users)], K: 10})
				if len(res.Items) == 0 {
					b.Fatal("no items")
				}
				cands += res.Candidates
				i++
			}
			b.ReportMetric(float64(cands)/float64(i), "candidates/op")
		})
	}
	b.Run("zipf-users-parallel", func(b *testing.B) {
		us := zipfUsers(4096, users)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := rand.IntN(len(us))
			for pb.Next() {
				p.Recommend(ctx, recommend.Request{User: us[i%len(us)], K: 10})
				i++
			}
		})
	})
}
