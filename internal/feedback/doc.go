// Package feedback closes the loop between what Ripple showed and what users
// did next: it remembers each user's recent recommendation lists (model and
// positions), attributes later clicks, carts and purchases of shown items to
// the list, model and position that showed them, and reports engagement
// rates by model and position with the position bias estimated and divided
// out, so models that place items differently compare fairly.
package feedback
