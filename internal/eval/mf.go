package eval

import (
	"cmp"
	"context"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"

	"gonum.org/v1/gonum/mat"

	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/features"
)

// MFParams shape the matrix-factorisation baseline: implicit-feedback ALS
// (Hu, Koren and Volinsky 2008), confidence 1 + Alpha·count, with the
// `implicit` library's defaults except for fewer factors (speed).
type MFParams struct {
	Factors    int
	Lambda     float64
	Alpha      float64
	Iterations int
	Seed       uint64
	// MaxScores skips the baseline when evaluated users × catalogue items
	// is larger: full ranking costs users × items × factors. 50M runs it on
	// LastFM, MovieLens and Taobao's 814 users × 55k items, not on the
	// Amazon sets (231M and more).
	MaxScores int
}

// DefaultMFParams are the baseline's settings; untuned on purpose.
func DefaultMFParams() MFParams {
	return MFParams{Factors: 32, Lambda: 0.01, Alpha: 1, Iterations: 15, Seed: 1, MaxScores: 50_000_000}
}

// ModelMF names the baseline in reports.
const ModelMF = "MF (implicit ALS)"

// MF is a trained factorisation.
type MF struct {
	items []string
	index map[string]int
	users map[string]int
	x, y  []float64 // user and item factors, row-major
	f     int
}

// NewMF trains ALS on train.
func NewMF(train []event.Interaction, p MFParams) *MF {
	m := &MF{index: map[string]int{}, users: map[string]int{}, f: p.Factors}
	type cell struct{ u, i int }
	counts := map[cell]float64{}
	for _, e := range train {
		u, ok := m.users[e.User]
		if !ok {
			u = len(m.users)
			m.users[e.User] = u
		}
		i, ok := m.index[e.Item]
		if !ok {
			i = len(m.items)
			m.index[e.Item] = i
			m.items = append(m.items, e.Item)
		}
		counts[cell{u, i}]++
	}
	nu, ni := len(m.users), len(m.items)
	byUser, byItem := make([][]int, nu), make([][]int, ni)
	conf := map[cell]float64{}
	for c, n := range counts {
		byUser[c.u] = append(byUser[c.u], c.i)
		byItem[c.i] = append(byItem[c.i], c.u)
		conf[c] = 1 + p.Alpha*n
	}
	for _, l := range byUser {
		slices.Sort(l)
	}
	for _, l := range byItem {
		slices.Sort(l)
	}
	r := rand.New(rand.NewPCG(p.Seed, 2))
	m.x, m.y = make([]float64, nu*p.Factors), make([]float64, ni*p.Factors)
	for i := range m.y {
		m.y[i] = r.NormFloat64() * 0.01
	}
	for range p.Iterations {
		solveALS(m.x, m.y, byUser, p, func(a, b int) float64 { return conf[cell{a, b}] })
		solveALS(m.y, m.x, byItem, p, func(a, b int) float64 { return conf[cell{b, a}] })
	}
	return m
}

// solveALS recomputes every row of out given fixed factors in: row a solves
// (InᵀIn + In_aᵀ(C_a − I)In_a + λI) out_a = In_aᵀ C_a 1.
func solveALS(out, in []float64, rows [][]int, p MFParams, conf func(a, b int) float64) {
	f := p.Factors
	n := len(in) / f
	gram := mat.NewSymDense(f, nil)
	inM := mat.NewDense(n, f, in)
	gram.SymOuterK(1, inM.T())
	var next int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range max(1, runtime.GOMAXPROCS(0)) {
		wg.Go(func() {
			a := mat.NewSymDense(f, nil)
			bv := mat.NewVecDense(f, nil)
			xv := mat.NewVecDense(f, nil)
			var ch mat.Cholesky
			for {
				mu.Lock()
				row := next
				next++
				mu.Unlock()
				if row >= len(rows) {
					return
				}
				a.CopySym(gram)
				for k := range f {
					a.SetSym(k, k, a.At(k, k)+p.Lambda)
					bv.SetVec(k, 0)
				}
				for _, b := range rows[row] {
					c := conf(row, b)
					v := in[b*f : (b+1)*f]
					for k := range f {
						for l := k; l < f; l++ {
							a.SetSym(k, l, a.At(k, l)+(c-1)*v[k]*v[l])
						}
						bv.SetVec(k, bv.AtVec(k)+c*v[k])
					}
				}
				if ch.Factorize(a) && ch.SolveVecTo(xv, bv) == nil {
					copy(out[row*f:(row+1)*f], xv.RawVector().Data)
				}
			}
		})
	}
	wg.Wait()
}

// Rank scores every item for c's user and returns the n best outside
// c.History; a user the model never saw gets nothing.
func (m *MF) Rank(_ context.Context, c *Case, n int) ([]features.Scored, error) {
	u, ok := m.users[c.User]
	if !ok {
		return nil, nil
	}
	seen := excluded(c)
	xu := m.x[u*m.f : (u+1)*m.f]
	all := make([]features.Scored, 0, len(m.items))
	for i, id := range m.items {
		if seen[id] {
			continue
		}
		s := 0.0
		for k, v := range m.y[i*m.f : (i+1)*m.f] {
			s += v * xu[k]
		}
		all = append(all, features.Scored{ID: id, Score: s})
	}
	slices.SortFunc(all, func(a, b features.Scored) int {
		if c := cmp.Compare(b.Score, a.Score); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return all[:min(n, len(all))], nil
}
