package train

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"

	"github.com/ripple-rec/ripple/internal/model"
)

// TransitionParams shape the order-aware transition model: item j scores
// for anchor i by how often j came shortly after i (and, weighed down by
// Backward, shortly before it), each pair weighed Decay^(distance-1) and
// divided by popularity(j)^PopPenalty. Rows are scaled to sum 1.
type TransitionParams struct {
	Window     int     `yaml:"window" json:"window"`
	Decay      float64 `yaml:"decay" json:"decay"`
	Backward   float64 `yaml:"backward" json:"backward"`
	PopPenalty float64 `yaml:"pop_penalty" json:"pop_penalty"`
	TopN       int     `yaml:"top_n" json:"top_n"`
}

// Transition trains the transition model.
func Transition(c *Corpus, p TransitionParams) (*model.ItemItem, error) {
	pen := popPenalty(c, p.PopPenalty)
	decay := make([]float32, p.Window+1)
	for d := 1; d <= p.Window; d++ {
		decay[d] = float32(math.Pow(p.Decay, float64(d-1)))
	}
	back := float32(p.Backward)
	return buildRows(c.Items, p.TopN, func(i int32, acc *accumulator) {
		for _, o := range c.ByItem[i] {
			seq := c.Seqs[o.User]
			for d := 1; d <= p.Window; d++ {
				if a := int(o.Pos) + d; a < len(seq) {
					acc.add(seq[a], decay[d]*pen[seq[a]])
				}
				if b := int(o.Pos) - d; back > 0 && b >= 0 {
					acc.add(seq[b], back*decay[d]*pen[seq[b]])
				}
			}
		}
	}, normalizeSum)
}

// KNNParams shape item kNN: cosine similarity of items over the users who
// had both (each user's last MaxHistory distinct items, a user weighing
// 1/log2(2+items) so heavy users do not dominate), with Shrink added to the
// denominator against similarities from a handful of users.
type KNNParams struct {
	MaxHistory int     `yaml:"max_history" json:"max_history"`
	Shrink     float64 `yaml:"shrink" json:"shrink"`
	TopN       int     `yaml:"top_n" json:"top_n"`
}

// KNN trains item kNN.
func KNN(c *Corpus, p KNNParams) (*model.ItemItem, error) {
	sets, users := distinctRecent(c, p.MaxHistory)
	uw := make([]float32, len(sets))
	norm := make([]float64, len(c.Items)) // Σ uw² over the item's users
	for u, s := range sets {
		uw[u] = float32(1 / math.Log2(2+float64(len(s))))
		for _, it := range s {
			norm[it] += float64(uw[u]) * float64(uw[u])
		}
	}
	for i := range norm {
		norm[i] = math.Sqrt(norm[i])
	}
	shrink := float32(p.Shrink)
	return buildRows(c.Items, p.TopN, func(i int32, acc *accumulator) {
		for _, u := range users[i] {
			w := uw[u] * uw[u]
			for _, j := range sets[u] {
				acc.add(j, w)
			}
		}
	}, func(i int32, row []entry) {
		for k := range row {
			row[k].w /= float32(norm[i]*norm[row[k].j]) + shrink
		}
	})
}

// EASEParams shape EASE (Steck 2019), the closed-form linear item–item
// model B = I − P·diag(1/diag(P)), P = (XᵀX + λI)⁻¹: only where the
// catalogue has at most MaxItems items (memory n², time n³).
type EASEParams struct {
	Lambda   float64 `yaml:"lambda" json:"lambda"`
	MaxItems int     `yaml:"max_items" json:"max_items"`
	TopN     int     `yaml:"top_n" json:"top_n"`
}

// ErrTooLarge means a model is not trained for this catalogue size.
var ErrTooLarge = fmt.Errorf("train: catalogue too large for the model")

// EASE trains EASE on the users' distinct items, keeping each row's TopN
// positive weights.
func EASE(c *Corpus, p EASEParams) (*model.ItemItem, error) {
	n := len(c.Items)
	if n > p.MaxItems {
		return nil, fmt.Errorf("%w: EASE on %d items (max_items %d)", ErrTooLarge, n, p.MaxItems)
	}
	sets, _ := distinctRecent(c, 0)
	g := make([]float64, n*n)
	for _, s := range sets {
		for _, i := range s {
			row := g[int(i)*n:]
			for _, j := range s {
				row[j]++
			}
		}
	}
	for i := range n {
		g[i*n+i] += p.Lambda
	}
	var ch mat.Cholesky
	if !ch.Factorize(mat.NewSymDense(n, g)) {
		return nil, fmt.Errorf("train: EASE: the Gram matrix is not positive definite (lambda %g)", p.Lambda)
	}
	var inv mat.SymDense
	if err := ch.InverseTo(&inv); err != nil {
		return nil, fmt.Errorf("train: EASE: %w", err)
	}
	diag := make([]float64, n)
	for j := range n {
		diag[j] = inv.At(j, j)
	}
	raw := inv.RawSymmetric().Data // upper triangle is authoritative
	at := func(i, j int) float64 {
		if i > j {
			i, j = j, i
		}
		return raw[i*n+j]
	}
	return buildRows(c.Items, p.TopN, func(i int32, acc *accumulator) {
		for j := range n {
			if w := -at(int(i), j) / diag[j]; w > 0 && j != int(i) {
				acc.add(int32(j), float32(w))
			}
		}
	}, nil)
}

// distinctRecent returns each user's last max distinct items (all when max
// is 0), newest first, and for each item the users holding it.
func distinctRecent(c *Corpus, limit int) (sets [][]int32, users [][]int32) {
	sets = make([][]int32, len(c.Seqs))
	users = make([][]int32, len(c.Items))
	seen := map[int32]struct{}{}
	for u, seq := range c.Seqs {
		clear(seen)
		for k := len(seq) - 1; k >= 0 && (limit <= 0 || len(sets[u]) < limit); k-- {
			if _, ok := seen[seq[k]]; !ok {
				seen[seq[k]] = struct{}{}
				sets[u] = append(sets[u], seq[k])
			}
		}
		for _, it := range sets[u] {
			users[it] = append(users[it], int32(u))
		}
	}
	return sets, users
}

// popPenalty is 1/count^beta per item.
func popPenalty(c *Corpus, beta float64) []float32 {
	pen := make([]float32, len(c.Items))
	for i, n := range c.Count {
		pen[i] = float32(math.Pow(float64(max(n, 1)), -beta))
	}
	return pen
}
