package recommend_test

import (
	"context"
	"testing"
	"time"

	"github.com/ripple-rec/ripple/internal/demo"
	"github.com/ripple-rec/ripple/internal/features"
	"github.com/ripple-rec/ripple/internal/model"
	"github.com/ripple-rec/ripple/internal/recommend"
	"github.com/ripple-rec/ripple/internal/train"
)

// BenchmarkRecommendTrained is BenchmarkRecommend's zipf mix with and
// without a trained blend serving, in one run: the ratio is the cost of
// the model (history read through three item tables, head selection).
func BenchmarkRecommendTrained(b *testing.B) {
	opts := demo.DefaultOptions(time.Now())
	ds := demo.Generate(opts)
	e := features.NewEngine(features.DefaultConfig(), nil)
	for i, r := range ds.Records() {
		e.Apply(uint64(i+1), &r)
	}
	res, err := train.Train(context.Background(), ds.Events, train.DefaultConfig(),
		&train.Stream{Features: features.DefaultConfig(), Recommend: recommend.DefaultConfig()})
	if err != nil {
		b.Fatal(err)
	}
	res.Set.Name = "blend@bench"
	users := zipfUsers(4096, opts.Users)
	ctx := context.Background()
	for _, bc := range []struct {
		name string
		set  *model.Set
	}{{"stream", nil}, {"trained", res.Set}} {
		p := recommend.New(e, recommend.DefaultConfig())
		p.Models = func() *model.Set { return bc.set }
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if r := p.Recommend(ctx, recommend.Request{User: users[i%len(users)], K: 10}); len(r.Items) == 0 {
					b.Fatal("no items")
				}
				i++
			}
		})
	}
}
