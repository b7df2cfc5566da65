package recommend

import (
	"math"
	"math/rand/v2"
)

// betaSample draws from Beta(a, b) (a, b ≥ 1) as X/(X+Y) with X, Y Gamma
// draws (Marsaglia–Tsang): what Thompson sampling needs, without a
// dependency.
func betaSample(a, b float64) float64 {
	x, y := gammaSample(a), gammaSample(b)
	return x / (x + y)
}

// gammaSample draws from Gamma(shape, 1) for shape ≥ 1.
func gammaSample(shape float64) float64 {
	d := shape - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		z := rand.NormFloat64()
		v := 1 + c*z
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := rand.Float64()
		if math.Log(u) < 0.5*z*z+d-d*v+d*math.Log(v) {
			return d * v
		}
	}
}
