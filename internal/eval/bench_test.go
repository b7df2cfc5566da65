package eval

import (
	"context"
	"testing"

	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/features"
	"github.com/ripple-rec/ripple/internal/recommend"
)

// benchCases loads a shared dataset, replays its training input and returns
// the evaluation cases with both models.
func benchCases(b *testing.B, rel string) ([]Case, map[string]ranker) {
	b.Helper()
	d, err := LoadFile(datasetPath(b, rel), event.FormatSeq)
	if err != nil {
		b.Fatal(err)
	}
	h, err := d.Split(SplitTest)
	if err != nil {
		b.Fatal(err)
	}
	engine := features.NewEngine(features.DefaultConfig(), nil)
	if err := replay(context.Background(), engine, d.Categories.items(), h.Train, func(int, int) {}); err != nil {
		b.Fatal(err)
	}
	engine.RefreshTrending()
	return h.Cases, map[string]ranker{
		"serving": Serving{Pipeline: recommend.New(engine, recommend.DefaultConfig())},
		"poprec":  NewPopRec(h.Train),
	}
}

// BenchmarkEvaluateCase is one user's evaluation: the model's ranking at
// Depth plus the metric bookkeeping.
func BenchmarkEvaluateCase(b *testing.B) {
	cases, models := benchCases(b, "amazon-seq/Toys_and_Games/Toys_and_Games.txt")
	for _, name := range []string{"serving", "poprec"} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := evaluateCase(context.Background(), models[name], &cases[i%len(cases)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

func BenchmarkReplay(b *testing.B) {
	d, err := LoadFile(datasetPath(b, "amazon-seq/LastFM/LastFM.txt"), event.FormatSeq)
	if err != nil {
		b.Fatal(err)
	}
	h, _ := d.Split(SplitTest)
	b.ReportAllocs()
	for b.Loop() {
		engine := features.NewEngine(features.DefaultConfig(), nil)
		_ = replay(context.Background(), engine, nil, h.Train, func(int, int) {})
	}
	b.ReportMetric(float64(len(h.Train))*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
