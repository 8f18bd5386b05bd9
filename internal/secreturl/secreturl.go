// Package secreturl keeps credentials pasted into a URL (user:key@host, ?api_key=...) out of everything
// Distillery prints or stores: the rendered stage config, logs, errors, conditions and events. Admission
// refuses such endpoints; this is the second lock, for objects admitted before the rule and for URLs that
// reach an error message some other way.
package secreturl

import (
	"net/url"
	"regexp"
	"strings"
)

// Marker replaces every secret part.
const Marker = "redacted"

// minSecretLen is the shortest URL part Scrub hunts for outside a URL: shorter ones ("1" in ?v=1) would
// mangle the text and are no key.
const minSecretLen = 6

// urlPattern finds URLs in free text, up to the first space, quote or bracket.
var urlPattern = regexp.MustCompile(`[a-zA-Z][a-zA-Z0-9+.-]*://[^\s"'<>]+`)

// Redacted returns raw with its userinfo, query string and fragment replaced by Marker, so it can be
// printed. A URL with none of them comes back unchanged, byte for byte; a string that does not parse as a
// URL is replaced whole.
func Redacted(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "[" + Marker + " unparseable URL]"
	}
	if u.User == nil && u.RawQuery == "" && !u.ForceQuery && u.Fragment == "" && u.Opaque == "" {
		return raw
	}
	if u.Opaque != "" {
		return u.Scheme + ":[" + Marker + "]"
	}
	if u.User != nil {
		u.User = url.User(Marker)
	}
	if u.RawQuery != "" || u.ForceQuery {
		u.RawQuery, u.ForceQuery = Marker, false
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String()
}

// Scrub returns text with every URL in it redacted, and with each secret part (user, password, query
// value, fragment) of the known URLs replaced by Marker wherever else it appears, as servers and Go's
// HTTP errors may quote them apart from the URL.
func Scrub(text string, known ...string) string {
	text = urlPattern.ReplaceAllStringFunc(text, Redacted)
	for _, raw := range known {
		for _, part := range secretParts(raw) {
			text = strings.ReplaceAll(text, part, Marker)
		}
	}
	return text
}

// secretParts are the secret pieces of raw, as written and unescaped.
func secretParts(raw string) []string {
	u, err := url.Parse(raw)
	if err != nil {
		return nil
	}
	var parts []string
	if u.User != nil {
		parts = append(parts, u.User.Username())
		if p, ok := u.User.Password(); ok {
			parts = append(parts, p)
		}
	}
	for _, vs := range u.Query() {
		parts = append(parts, vs...)
	}
	parts = append(parts, u.RawQuery, u.Fragment)
	var out []string
	for _, p := range parts {
		if len(p) < minSecretLen {
			continue
		}
		out = append(out, p)
		if esc := url.QueryEscape(p); esc != p {
			out = append(out, esc)
		}
	}
	return out
}
