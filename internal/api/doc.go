// Package api owns Ripple's HTTP API v1: routing, handlers and middleware
// (request ids, recovery, metrics, load shedding, API key scopes, rate
// limits, body limits, deadlines). Handlers talk to the write path and the
// recommendation pipeline through small interfaces and never see storage
// details; the one exception is RedisLimiter, the shared rate limit store.
package api
