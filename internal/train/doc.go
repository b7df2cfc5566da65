// Package train builds Ripple's trained models from interaction histories:
// order-aware transitions, item kNN, and EASE where the catalogue is small
// enough for its closed form (time-decayed popularity stays the streaming
// engine's trending). It also tunes how the serving pipeline blends them
// with the streaming sources, on one held-out event per user (the last by
// default), never on anything an evaluation scores.
package train
