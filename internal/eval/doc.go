// Package eval owns offline evaluation: the leave-one-out, full-ranking
// protocol of the sequential-recommendation literature (S3-Rec, SASRec), the
// session-based next-item protocol of session-rec and SR-GNN (with their
// SR and S-POP baselines and each public dataset's preprocessing),
// HR@K / NDCG@K / coverage computed the same way for every model, a leak-free
// PopRec baseline, and the JSON and Markdown reports that put Ripple's numbers
// beside the published ones. It drives the serving pipeline; it never serves.
package eval
