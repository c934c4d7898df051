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
	"time"
)

// poshName is the only file name shape served: SERVICE.json, where
// SERVICE is a service name like xmpp-client or xmpp-server.
var poshName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}\.json$`)

// hostDir is the shape of a per-host directory: a DNS name in lower case.
var hostDir = regexp.MustCompile(`^[a-z0-9_]([a-z0-9_.-]{0,251}[a-z0-9_])?$`)

// maxPOSH bounds the size of a POSH document served.
const maxPOSH = 1 << 20

// handlePOSH is GET /.well-known/posh/{name}: DIR/HOST/NAME for a request
// to HOST when it exists, else DIR/NAME. Files are opened through
// os.Root, which refuses "..", absolute names and symlinks that leave
// POSHDir; only regular files are served, never a listing.
func (s *Server) handlePOSH(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if s.opts.POSHDir == "" || !poshName.MatchString(name) {
		http.NotFound(w, r)
		return
	}
	root, err := os.OpenRoot(s.opts.POSHDir)
	if err != nil {
		s.log.Warn("web: POSH directory unusable", "dir", s.opts.POSHDir, "err", err)
		http.NotFound(w, r)
		return
	}
	defer root.Close()
	var candidates []string
	if h := requestHost(r.Host); h != "" && hostDir.MatchString(h) && !strings.Contains(h, "..") {
		candidates = append(candidates, path.Join(h, name))
	}
	candidates = append(candidates, name)
	for _, c := range candidates {
		f, err := root.Open(c)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			s.log.Warn("web: POSH document refused", "name", c, "err", err)
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
		return
	}
	http.NotFound(w, r)
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
