// Package online publishes the feature engine's state to a shared online
// store and reads it back for serving. It owns the document layout (which
// fields an entity's record holds and how they are encoded), the Publisher
// that writes what each apply changed together with the applied offset, and
// the Reader whose per-request views feed the recommendation pipeline
// through the cache tiers, degrading to typed defaults when the store fails.
package online
