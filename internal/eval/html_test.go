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
	if len(svgs) != 2 {
		t.Fatalf("%d plots, want HR and NDCG", len(svgs))
	}
	for _, svg := range svgs {
		if err := xml.Unmarshal([]byte(svg), new(struct{})); err != nil {
			t.Fatalf("plot is not well-formed: %v", err)
		}
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
