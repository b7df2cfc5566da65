// Package redistest runs a private redis-server per test, so tests talk to
// real Redis and can crash it (Stop, Restart) or hang it (Freeze, Thaw).
// It speaks only enough RESP to know the server is up, so any package's
// tests can use it whatever client they use.
package redistest
