package redis

import (
	"net"
	"time"
)

// netDialer bounds connection set-up: a Redis that is down must cost a
// request its budget at most, not a kernel connect timeout.
func netDialer() net.Dialer {
	return net.Dialer{Timeout: 200 * time.Millisecond, KeepAlive: 30 * time.Second}
}
