package feedback

import (
	"cmp"
	"slices"
)

// Report is engagement by model and position since the tracker started.
type Report struct {
	WindowSeconds float64 `json:"window_s"`
	// Propensity is the estimated chance a shown item is looked at, per
	// position bucket, relative to position 1: engagement rate at the
	// bucket over the rate at position 1, pooled over every model (the
	// ratio estimator; needs traffic at position 1 to be meaningful).
	Propensity []Bucket      `json:"propensity"`
	Models     []ModelReport `json:"models"`
}

// Bucket is one position group's value.
type Bucket struct {
	Position string  `json:"position"`
	Value    float64 `json:"value"`
}

// ModelReport is one model version's engagement.
type ModelReport struct {
	Model       string             `json:"model"`
	Impressions float64            `json:"impressions"`
	Engagements map[string]float64 `json:"engagements"` // by type
	// Rate is engagements of any type per impression; DebiasedRate divides
	// each engagement by its position's propensity (inverse propensity
	// weighting), so a model that shows good items lower is not penalised.
	Rate         float64         `json:"rate"`
	DebiasedRate float64         `json:"debiased_rate"`
	ByPosition   []PositionStats `json:"by_position"`
}

// PositionStats is a model's numbers in one position bucket.
type PositionStats struct {
	Position    string  `json:"position"`
	Impressions float64 `json:"impressions"`
	Engagements float64 `json:"engagements"`
	Rate        float64 `json:"rate"`
}

// minImpressions is the traffic a bucket needs before its rate is used for
// a propensity; below it the bucket's propensity is 1 (no correction).
const minImpressions = 100

// Report computes the current report.
func (t *Tracker) Report() Report {
	t.mu.Lock()
	defer t.mu.Unlock()
	var imp, eng [7]float64
	for _, c := range t.models {
		for b := range imp {
			imp[b] += c.impressions[b]
			for _, e := range c.engaged {
				eng[b] += e[b]
			}
		}
	}
	prop := [7]float64{1, 1, 1, 1, 1, 1, 1}
	if imp[0] >= minImpressions && eng[0] > 0 {
		top := eng[0] / imp[0]
		for b := 1; b < 7; b++ {
			if imp[b] >= minImpressions && eng[b] > 0 {
				prop[b] = min(1, eng[b]/imp[b]/top)
			}
		}
	}
	r := Report{WindowSeconds: t.opts.Window.Seconds()}
	for b, name := range Buckets {
		r.Propensity = append(r.Propensity, Bucket{name, prop[b]})
	}
	for name, c := range t.models {
		m := ModelReport{Model: name, Engagements: map[string]float64{}}
		debiased := 0.0
		for b, pos := range Buckets {
			ps := PositionStats{Position: pos, Impressions: c.impressions[b]}
			for typ, e := range c.engaged {
				ps.Engagements += e[b]
				m.Engagements[typ] += e[b]
			}
			if ps.Impressions > 0 {
				ps.Rate = ps.Engagements / ps.Impressions
			}
			m.Impressions += ps.Impressions
			debiased += ps.Engagements / prop[b]
			m.ByPosition = append(m.ByPosition, ps)
		}
		if m.Impressions > 0 {
			total := 0.0
			for _, v := range m.Engagements {
				total += v
			}
			m.Rate, m.DebiasedRate = total/m.Impressions, debiased/m.Impressions
		}
		r.Models = append(r.Models, m)
	}
	slices.SortFunc(r.Models, func(a, b ModelReport) int { return cmp.Compare(a.Model, b.Model) })
	return r
}
