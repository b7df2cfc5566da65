// Package recommend owns the serving pipeline: candidate generation
// (co-visitation of the user's recent items, category affinity × trending,
// popularity backfill), scoring over interaction features, filters (seen,
// hidden, explicit excludes), category diversity and explanations. It reads
// features through a small interface and knows nothing of transport.
package recommend
