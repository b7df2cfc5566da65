// Package model owns trained recommendation models as versioned artifacts:
// the item–item neighbour tables that `ripple train` builds from the event
// log, their binary encoding, the on-disk registry (name@version files plus
// an atomically replaced manifest), and the Set a serving node swaps in one
// pointer store when a new version is promoted.
package model
