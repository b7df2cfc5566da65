// Package demo generates Ripple's deterministic synthetic dataset: a
// catalogue with categories and power-law popularity, users with category
// tastes, and sessions in which items follow each other along a hidden
// "related items" graph, so co-visitation has real signal to find.
package demo
