package web

import (
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path"
	"regexp"
	"strings"
	"sync"
	"time"
)

// poshName is the only file name shape served: SERVICE.json, where
// SERVICE is a service name like xmpp-client or xmpp-server
// (^[a-z0-9][a-z0-9-]{0,62}\.json$), compiled on first use: every command
// links this package, and only the daemon serves POSH.
var poshName = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}\.json$`)
})

// maxPOSH bounds the size of a POSH document served.
const maxPOSH = 1 << 20

// handlePOSH is GET /.well-known/posh/{name}: ROOT/.well-known/posh/NAME,
// where ROOT is Options.POSHRoot of the request's Host. Files are opened
// through os.Root, which refuses "..", absolute names and symlinks that
// leave ROOT; only regular files are served, never a listing.
func (s *Server) handlePOSH(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if s.opts.POSHRoot == nil || !poshName().MatchString(name) {
		http.NotFound(w, r)
		return
	}
	dir := s.opts.POSHRoot(requestHost(r.Host))
	if dir == "" {
		http.NotFound(w, r)
		return
	}
	root, err := os.OpenRoot(dir)
	if errors.Is(err, fs.ErrNotExist) {
		http.NotFound(w, r)
		return
	}
	if err != nil {
		s.log.Warn("web: POSH directory unusable", "dir", dir, "err", err)
		http.NotFound(w, r)
		return
	}
	defer root.Close()
	f, err := root.Open(path.Join(".well-known", "posh", name))
	if errors.Is(err, fs.ErrNotExist) {
		http.NotFound(w, r)
		return
	}
	if err != nil {
		s.log.Warn("web: POSH document refused", "dir", dir, "name", name, "err", err)
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() > maxPOSH {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "max-age=300")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	http.ServeContent(w, r, "", fi.ModTime().Truncate(time.Second), io.NewSectionReader(f, 0, fi.Size()))
}

// requestHost is the host name of a Host header, lower case, without
// port or trailing dot.
func requestHost(hostport string) string {
	h := hostport
	if hh, _, err := net.SplitHostPort(hostport); err == nil {
		h = hh
	}
	return strings.ToLower(strings.TrimSuffix(h, "."))
}
