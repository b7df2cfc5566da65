// Package auth owns Ripple's API keys: scopes, random secrets stored only as
// SHA-256 hashes, the key file the CLI manages (written atomically, 0600),
// and the Store the server authenticates against, which reloads the file
// when it changes so a revoke takes effect without a restart.
package auth
