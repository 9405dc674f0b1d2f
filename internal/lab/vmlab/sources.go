package vmlab

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// suite is the Debian release of the guest image.
const suite = "bookworm"

// fallbackMirror is used when the host's apt sources name no Debian mirror for suite.
const fallbackMirror = "http://deb.debian.org/debian"

// aptSource is one apt source (a deb822 stanza or a sources.list line) of type deb.
type aptSource struct {
	URIs       []string
	Suites     []string
	Components []string
}

// parseDeb822 returns the enabled "deb" sources of a deb822 .sources file.
func parseDeb822(text string) []aptSource {
	var out []aptSource
	for _, stanza := range strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n\n") {
		fields := map[string]string{}
		last := ""
		for _, line := range strings.Split(stanza, "\n") {
			if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
				continue
			}
			if (strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t")) && last != "" {
				fields[last] += " " + strings.TrimSpace(line) // continuation line
				continue
			}
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			last = strings.ToLower(strings.TrimSpace(k))
			fields[last] = strings.TrimSpace(v)
		}
		if !slices.Contains(strings.Fields(fields["types"]), "deb") || strings.EqualFold(fields["enabled"], "no") {
			continue
		}
		out = append(out, aptSource{
			URIs:       strings.Fields(fields["uris"]),
			Suites:     strings.Fields(fields["suites"]),
			Components: strings.Fields(fields["components"]),
		})
	}
	return out
}

// parseSourcesList returns the "deb" lines of a one-line-style sources.list.
func parseSourcesList(text string) []aptSource {
	var out []aptSource
	for _, line := range strings.Split(text, "\n") {
		line, _, _ = strings.Cut(line, "#")
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "deb" {
			continue
		}
		f = f[1:]
		if strings.HasPrefix(f[0], "[") { // deb [option=value ...] uri suite components
			for len(f) > 0 && !strings.HasSuffix(f[0], "]") {
				f = f[1:]
			}
			if len(f) > 0 {
				f = f[1:]
			}
		}
		if len(f) < 2 {
			continue
		}
		out = append(out, aptSource{URIs: f[:1], Suites: f[1:2], Components: f[2:]})
	}
	return out
}

// hostAptSources reads the host's enabled apt sources: sources.list and the *.list and *.sources files of
// sources.list.d (files with other suffixes, such as disabled ones, are ignored as apt does).
func hostAptSources(etcApt string) []aptSource {
	var out []aptSource
	if b, err := os.ReadFile(filepath.Join(etcApt, "sources.list")); err == nil {
		out = append(out, parseSourcesList(string(b))...)
	}
	lists, _ := filepath.Glob(filepath.Join(etcApt, "sources.list.d", "*.list"))
	for _, f := range lists {
		if b, err := os.ReadFile(f); err == nil {
			out = append(out, parseSourcesList(string(b))...)
		}
	}
	deb822, _ := filepath.Glob(filepath.Join(etcApt, "sources.list.d", "*.sources"))
	for _, f := range deb822 {
		if b, err := os.ReadFile(f); err == nil {
			out = append(out, parseDeb822(string(b))...)
		}
	}
	return out
}

// guestSources picks the Debian mirror for debootstrap and writes the guest's deb822 apt sources: the
// host's sources for suite, suite-updates and suite-security (component main), or, when mirror is given or
// the host has none, mirror (default fallbackMirror) for suite and suite-updates.
func guestSources(host []aptSource, mirror string) (string, string) {
	type stanza struct {
		uri    string
		suites []string
	}
	var stanzas []stanza
	if mirror == "" {
		for _, s := range host {
			if !slices.Contains(s.Components, "main") {
				continue
			}
			var suites []string
			for _, su := range s.Suites {
				if su == suite || su == suite+"-updates" || su == suite+"-security" {
					suites = append(suites, su)
				}
			}
			if len(suites) == 0 {
				continue
			}
			for _, u := range s.URIs {
				stanzas = append(stanzas, stanza{uri: u, suites: suites})
				if mirror == "" && slices.Contains(suites, suite) {
					mirror = u
				}
			}
		}
	}
	if mirror == "" {
		mirror = fallbackMirror
	}
	if !slices.ContainsFunc(stanzas, func(s stanza) bool { return s.uri == mirror }) {
		stanzas = []stanza{{uri: mirror, suites: []string{suite, suite + "-updates"}}}
	}
	var b strings.Builder
	for i, s := range stanzas {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
			s.uri, strings.Join(s.suites, " "))
	}
	return strings.TrimRight(mirror, "/"), b.String()
}
