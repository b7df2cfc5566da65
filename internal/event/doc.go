// Package event owns Ripple's input vocabulary: interactions, item and user
// metadata, erasure tombstones. It parses JSON, NDJSON, CSV, MovieLens and
// sequence files, validates every field with a precise message, encodes
// records compactly for the event log, and deduplicates client retries by id.
package event
