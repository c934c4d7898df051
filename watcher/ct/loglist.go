package ct

import (
	"encoding/json"
	"fmt"
	"net/url"
)

// MaxLogList bounds a log list file: Google's and Apple's are a few
// hundred KiB.
const MaxLogList = 4 << 20

// ParseLogList reads a log list in the v3 JSON format (Google's
// log_list.json, Apple's): the RFC 6962 logs of every operator ("logs",
// by "url") and the static-ct-api ones ("tiled_logs", by
// "monitoring_url"). Retired and rejected logs are left out: they take
// no new entries.
func ParseLogList(data []byte) ([]Log, error) {
	if len(data) > MaxLogList {
		return nil, malformed("a log list longer than %d bytes", MaxLogList)
	}
	type state struct {
		Retired  *struct{} `json:"retired"`
		Rejected *struct{} `json:"rejected"`
	}
	var list struct {
		Operators []struct {
			Name string `json:"name"`
			Logs []struct {
				Description string `json:"description"`
				URL         string `json:"url"`
				State       state  `json:"state"`
			} `json:"logs"`
			TiledLogs []struct {
				Description   string `json:"description"`
				MonitoringURL string `json:"monitoring_url"`
				State         state  `json:"state"`
			} `json:"tiled_logs"`
		} `json:"operators"`
	}
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, malformed("not a v3 log list: %v", err)
	}
	var out []Log
	add := func(desc, u string, tiled bool, st state) error {
		if st.Retired != nil || st.Rejected != nil {
			return nil
		}
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" {
			return malformed("log %q: %q is not an http(s) URL", desc, u)
		}
		if desc == "" {
			desc = u
		}
		out = append(out, Log{Name: desc, URL: u, Tiled: tiled})
		return nil
	}
	for _, op := range list.Operators {
		for _, l := range op.Logs {
			if err := add(l.Description, l.URL, false, l.State); err != nil {
				return nil, err
			}
		}
		for _, l := range op.TiledLogs {
			if err := add(l.Description, l.MonitoringURL, true, l.State); err != nil {
				return nil, err
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: the log list names no usable log", ErrMalformed)
	}
	return out, nil
}
