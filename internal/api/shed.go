package api

import (
	"net/http"
	"runtime"
)

// DefaultMaxInFlight is 256 requests per GOMAXPROCS. By Little's law the
// requests a node can hold without any of them outliving its budget is
// throughput × budget: about 3,100 recommendations/s on 2 cores
// (BENCHMARKS.md) × the 250 ms read budget ≈ 780, i.e. ~390 per core.
// 256 per core stays below that, so a request admitted at the bound still
// has time left for its own work, and stays above the 256 connections of
// `ripple bench`'s open loop, so a healthy node never sheds.
func DefaultMaxInFlight() int { return 256 * runtime.GOMAXPROCS(0) }

// shed answers 503 overloaded when max_in_flight requests are already
// being served. It runs before authentication and before any body is
// read, so a rejected request costs an atomic add. Health, readiness and
// metrics are exempt: an overloaded node must still say how it is.
func (s *Server) shed(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.exempt[r.URL.Path] {
			next.ServeHTTP(w, r)
			return
		}
		if s.inFlight.Add(1) > s.maxInFlight {
			s.inFlight.Add(-1)
			s.gm.shed.Inc()
			w.Header().Set("Retry-After", "1")
			writeError(w, r, http.StatusServiceUnavailable, "overloaded", "too many requests in flight; retry after the Retry-After seconds")
			return
		}
		defer s.inFlight.Add(-1)
		next.ServeHTTP(w, r)
	})
}
