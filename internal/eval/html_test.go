package eval

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/recommend"
	"github.com/ripple-rec/ripple/internal/train"
)

func TestHTMLReportHasCurvesPerModel(t *testing.T) {
	r := runString(t, synthetic, Options{Workers: 2})
	var b bytes.Buffer
	if err := r.WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	svgs := regexp.MustCompile(`(?s)<svg.*?</svg>`).FindAllString(page, -1)
	if len(svgs) != 3 {
		t.Fatalf("%d plots, want the model comparison, HR and NDCG", len(svgs))
	}
	for _, svg := range svgs {
		if err := xml.Unmarshal([]byte(svg), new(struct{})); err != nil {
			t.Fatalf("plot is not well-formed: %v", err)
		}
	}
	for _, svg := range svgs[1:] {
		if n := strings.Count(svg, "<polyline"); n != len(r.Models) {
			t.Errorf("%d curves for %d models", n, len(r.Models))
		}
	}
	if !strings.Contains(page, "<table>") || !strings.Contains(page, ModelPopRec) {
		t.Error("no table")
	}
	for _, m := range r.Models {
		if len(m.Curve) != Depth || m.Curve[9].NDCG != m.NDCG(10) || m.Curve[19].HR != m.HR(20) {
			t.Errorf("%s: curve disagrees with the cutoffs", m.Model)
		}
	}
}

// The comparison has a bar per model and metric, and an ILD column only
// when the dataset has categories.
func TestHTMLComparesModels(t *testing.T) {
	ild := 0.5
	r := &Report{Models: []ModelResult{
		{Model: "a", Metrics: Metrics{At: []AtK{{K: 10, HR: 0.2, NDCG: 0.1}}, Coverage: 0.3, ILD: &ild, Novelty: 9}},
		{Model: "b <&>", Metrics: Metrics{At: []AtK{{K: 10, HR: 0.1, NDCG: 0.05}}, Coverage: 0.6, Novelty: 11}},
	}}
	tests := []struct {
		name    string
		ild     *float64
		columns []string
		bars    int
	}{
		{"with categories", &ild, []string{"HR@10", "NDCG@10", "coverage@10", "ILD@10", "novelty@10 (bits)"}, 9}, // b has no ILD
		{"without", nil, []string{"HR@10", "NDCG@10", "coverage@10", "novelty@10 (bits)"}, 8},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r.Models[0].ILD = tc.ild
			svg := string(r.compareSVG())
			if err := xml.Unmarshal([]byte(svg), new(struct{})); err != nil {
				t.Fatalf("not well-formed: %v\n%s", err, svg)
			}
			for _, c := range tc.columns {
				if !strings.Contains(svg, ">"+c+"<") {
					t.Errorf("no column %s", c)
				}
			}
			if strings.Contains(svg, "ILD@10") != (tc.ild != nil) {
				t.Error("ILD column shown without categories or missing with them")
			}
			if n := strings.Count(svg, "<rect"); n != tc.bars {
				t.Errorf("%d bars, want %d", n, tc.bars)
			}
			// The longest bar of a column is the full width: b's coverage.
			if !strings.Contains(svg, `width="100.0"`) || !strings.Contains(svg, ">0.600<") || !strings.Contains(svg, ">11.00<") {
				t.Errorf("bars not scaled per column:\n%s", svg)
			}
		})
	}
}

// blocks: users 0..19 use items a*, users 20..39 use items b*; MF must
// recommend within the user's block.
func TestMFLearnsBlocks(t *testing.T) {
	var evs []event.Interaction
	for u := range 40 {
		block := "a"
		if u >= 20 {
			block = "b"
		}
		for i := range 6 {
			if (u+i)%3 != 0 {
				evs = append(evs, event.Interaction{User: fmt.Sprint("u", u), Item: fmt.Sprint(block, i)})
			}
		}
	}
	m := NewMF(evs, DefaultMFParams())
	for _, u := range []struct{ user, block string }{{"u1", "a"}, {"u25", "b"}} {
		c := &Case{User: u.user}
		for _, e := range evs {
			if e.User == u.user {
				c.History = append(c.History, e.Item)
			}
		}
		list, _ := m.Rank(context.Background(), c, 2)
		if len(list) == 0 || !strings.HasPrefix(list[0].ID, u.block) {
			t.Errorf("%s: %v, want block %s first", u.user, list, u.block)
		}
	}
	if l, _ := m.Rank(context.Background(), &Case{User: "stranger"}, 3); len(l) != 0 {
		t.Error("unknown user got a ranking")
	}
}

func TestVariantsEvaluatedInOneRun(t *testing.T) {
	short := train.DefaultConfig()
	short.History = 1
	r := runString(t, synthetic, Options{Workers: 2, Variants: []Variant{{Name: "short", Train: &short}}})
	names := ""
	for _, m := range r.Models {
		names += m.Model + ";"
	}
	if !strings.Contains(names, ModelTrained+" [short]") || len(r.VariantTraining) != 1 || r.VariantTraining[0].Name != "short" {
		t.Fatalf("models %s, variant training %+v", names, r.VariantTraining)
	}
}

// With NoTrain, variants are the streaming pipeline under their recommend
// settings: nothing is trained, and a setting that changes the ranking
// shows in the metrics.
func TestVariantsWithoutTraining(t *testing.T) {
	noCovis := recommend.DefaultConfig()
	noCovis.WeightCovis = 0
	noCovis.WeightPopular = 1
	r := runString(t, synthetic, Options{Workers: 2, NoTrain: true,
		Variants: []Variant{{Name: "popular", Recommend: &noCovis}}})
	var base, variant *ModelResult
	for i := range r.Models {
		switch r.Models[i].Model {
		case ModelServing:
			base = &r.Models[i]
		case ModelServing + " [popular]":
			variant = &r.Models[i]
		}
	}
	if base == nil || variant == nil || r.Training != nil || len(r.VariantTraining) != 0 {
		t.Fatalf("want the streaming model and its variant, nothing trained; got %+v", r.Models)
	}
	if base.At[1] == variant.At[1] {
		t.Errorf("popularity alone ranks like co-visitation: %+v", base.At[1])
	}
}
