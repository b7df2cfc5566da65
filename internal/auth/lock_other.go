//go:build !unix

package auth

// lockFile is a no-op where flock does not exist: concurrent CLI runs on
// such systems must be serialised by the operator.
func lockFile(string) (unlock func(), err error) { return func() {}, nil }
