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
	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/features"
	"github.com/ripple-rec/ripple/internal/feedback"
	"github.com/ripple-rec/ripple/internal/model"
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
	// The feedback loop's engagement rates read for the head (the ctr
	// feature) and a learned ranker reordering it: the cost over zipf-users.
	b.Run("zipf-users-ranked", func(b *testing.B) {
		tr := feedback.New(feedback.DefaultOptions(), nil)
		us := zipfUsers(4096, users)
		for i, u := range us[:1000] {
			res := p.Recommend(ctx, recommend.Request{User: u, K: 10})
			ids := make([]string, len(res.Items))
			for j, it := range res.Items {
				ids[j] = it.Item
			}
			tr.Served(u, res.Model, ids, nil)
			tr.Observe([]event.Interaction{{User: u, Item: ids[i%len(ids)], Type: "click"}})
		}
		set := model.NewSet("blend@1", nil, nil)
		set.Ranker = &model.Ranker{Features: model.RankFeatures, Mean: make([]float64, model.NumRankFeatures),
			Scale: []float64{1, 1, 1, 1, 1, 1}, Weights: []float64{0, 1, 0.5, 0.2, 0.1, 2}, Source: "pairwise"}
		rp := recommend.New(e, recommend.DefaultConfig())
		rp.Explorer = tr
		rp.Models = func() *model.Set { return set }
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if res := rp.Recommend(ctx, recommend.Request{User: us[i%len(us)], K: 10}); len(res.Items) == 0 {
				b.Fatal("no items")
			}
			i++
		}
	})
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
