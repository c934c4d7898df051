// Package smallfile reads small files whole, bounded in size, with as few
// system calls as reading a file can take. The lineage store reads two or
// three files of every lineage on every renew run, cron's twice a day
// included; an *os.File costs five more system calls than the read
// itself (it tries to register each regular file with the network poller
// and undoes the attempt): at 10,000 lineages, about a sixth of a renew
// run that had nothing to do, side by side on the machine of the
// README's figures.
package smallfile

import (
	"bytes"
	"fmt"
	"io/fs"
	"slices"
	"syscall"
)

// TooLargeError is a file larger than the limit it was read with. Path
// and Limit are as given to Read.
type TooLargeError struct {
	Path  string
	Limit int
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("%s: larger than %d bytes", e.Path, e.Limit)
}

// Read returns the content of the file at path, following symbolic links
// as open(2) does. A file larger than limit bytes is a *TooLargeError,
// found by reading at most limit+1 bytes of it. Failures to open or
// read are *fs.PathError, as os.ReadFile returns them (a directory's is
// syscall.EISDIR).
func Read(path string, limit int) ([]byte, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	for err == syscall.EINTR {
		fd, err = syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(fd)
	// Most files the store reads fit in 4 KiB: they are read into the
	// stack and copied out at their size, so that a caller keeping the
	// bytes (crypto/x509 does) keeps no more than the file.
	var small [4096]byte
	n, err := readFull(fd, small[:min(limit+1, len(small))])
	switch {
	case err != nil:
		return nil, &fs.PathError{Op: "read", Path: path, Err: err}
	case n > limit:
		return nil, &TooLargeError{Path: path, Limit: limit}
	case n < len(small):
		return bytes.Clone(small[:n]), nil
	}
	buf := make([]byte, n, min(4*n, limit+1))
	copy(buf, small[:n])
	for {
		end := min(cap(buf), limit+1)
		if len(buf) == end {
			buf = slices.Grow(buf, len(buf))
			end = min(cap(buf), limit+1)
		}
		m, err := readFull(fd, buf[len(buf):end])
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		buf = buf[:len(buf)+m]
		switch {
		case len(buf) > limit:
			return nil, &TooLargeError{Path: path, Limit: limit}
		case len(buf) < end:
			return buf, nil
		}
	}
}

// readFull reads into p until it is full or the file ends, and returns
// how much it read.
func readFull(fd int, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := syscall.Read(fd, p[n:])
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			return n, err
		case m == 0:
			return n, nil
		}
		n += m
	}
	return n, nil
}
