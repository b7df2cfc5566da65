// Package train builds Ripple's trained models from interaction histories:
// order-aware transitions, item kNN, EASE where the catalogue is small enough
// for its closed form, and time-decayed popularity. It also tunes how the
// serving pipeline blends them with the streaming features, on each user's
// last training event (the validation item), never on anything later.
package train
