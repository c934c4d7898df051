//go:build !linux

package xmpptls

import "net"

// quickAck is a no-op where TCP_QUICKACK does not exist.
func quickAck(conn net.Conn) net.Conn { return conn }
