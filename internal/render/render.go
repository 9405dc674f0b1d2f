// Package render turns typed data into the files kubesmith installs on hosts: systemd units, component
// configurations, add-on manifests and shell scripts. Templates live in the templates package (go:embed) under
// templates/files and are executed with text/template and missingkey=error.
//
// Every template has a typed data struct in this package that implements File. Its Validate method rejects
// input that would render a broken or unsafe file (for example a loopback DNS forwarder, a label the kubelet
// would refuse, or a value that would break out of a systemd ExecStart line), and its Target method says where
// the file is installed. Rendering is deterministic: the same data always gives the same bytes, so Hash over the
// rendered files is the "config hash" that Read compares with the hosts for drift.
package render

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"text/template"

	"github.com/kubesmith/terraform-provider-kubesmith/templates"
	"sigs.k8s.io/yaml"
)

// filesRoot is the directory inside templates.FS that holds the templates.
const filesRoot = "files"

// Target says which template renders a file and where that file is installed.
type Target struct {
	// Template is the template path relative to templates/files, e.g. "systemd/etcd.service.tmpl".
	Template string
	// Path is the absolute install path on the host. It is empty for scripts that are piped to `sh -s` and for
	// add-on manifests, which are applied through the API.
	Path string
	// Mode is the file mode to install with.
	Mode fs.FileMode
}

// File is the typed input of one template.
type File interface {
	// Target describes the template and the install location.
	Target() Target
	// Validate reports input that would render a broken or unsafe file.
	Validate() error
}

// Rendered is a rendered file and where it goes.
type Rendered struct {
	Target
	// Data is the rendered content.
	Data []byte
}

// Render executes the template at name (relative to templates/files) with data.
func Render(name string, data any) ([]byte, error) {
	t, err := parse(name)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		return nil, fmt.Errorf("render %s: %w", name, err)
	}
	return buf.Bytes(), nil
}

// RenderFile validates f, renders its template, and checks that the output is well-formed for its kind
// (JSON, YAML).
func RenderFile(f File) (Rendered, error) {
	tgt := f.Target()
	if err := f.Validate(); err != nil {
		return Rendered{}, fmt.Errorf("render %s: invalid input: %w", tgt.Template, err)
	}
	data, err := Render(tgt.Template, f)
	if err != nil {
		return Rendered{}, err
	}
	if err := checkSyntax(tgt.Template, data); err != nil {
		return Rendered{}, fmt.Errorf("render %s: %w", tgt.Template, err)
	}
	return Rendered{Target: tgt, Data: data}, nil
}

// Templates lists every template path under templates/files, sorted.
func Templates() ([]string, error) {
	var names []string
	err := fs.WalkDir(templates.FS, filesRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".tmpl") {
			names = append(names, strings.TrimPrefix(p, filesRoot+"/"))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list templates: %w", err)
	}
	slices.Sort(names)
	return names, nil
}

func parse(name string) (*template.Template, error) {
	if name == "" || path.IsAbs(name) || strings.Contains(name, "..") {
		return nil, fmt.Errorf("template name %q is not a relative path under %s", name, filesRoot)
	}
	src, err := fs.ReadFile(templates.FS, path.Join(filesRoot, name))
	if err != nil {
		return nil, fmt.Errorf("read template %s: %w", name, err)
	}
	t, err := template.New(name).Option("missingkey=error").Funcs(funcs()).Parse(string(src))
	if err != nil {
		return nil, fmt.Errorf("parse template %s: %w", name, err)
	}
	return t, nil
}

// funcs is the template function map. It is built per call so that no package-level state exists.
func funcs() template.FuncMap {
	return template.FuncMap{
		"join":    func(sep string, items []string) string { return strings.Join(items, sep) },
		"quote":   quote,
		"shquote": shquote,
		"indent":  indent,
		"nindent": func(n int, s string) string { return "\n" + indent(n, s) },
		"toYAML":  toYAML,
		"toJSON":  toJSON,
	}
}

// quote renders s as a double-quoted JSON string, which is also a valid YAML double-quoted scalar.
func quote(s string) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // encoding a string cannot fail
	return strings.TrimSuffix(buf.String(), "\n")
}

// shquote renders s as a single POSIX shell word.
func shquote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// indent prefixes every non-empty line of s with n spaces.
func indent(n int, s string) string {
	pad := strings.Repeat(" ", n)
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = pad + l
		}
	}
	return strings.Join(lines, "\n")
}

func toYAML(v any) (string, error) {
	out, err := yaml.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("toYAML: %w", err)
	}
	return strings.TrimSuffix(string(out), "\n"), nil
}

func toJSON(v any) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", fmt.Errorf("toJSON: %w", err)
	}
	return strings.TrimSuffix(buf.String(), "\n"), nil
}

// checkSyntax parses JSON and YAML outputs so that a template bug never reaches a host.
func checkSyntax(name string, data []byte) error {
	base := strings.TrimSuffix(name, ".tmpl")
	switch {
	case strings.HasSuffix(base, ".json") || strings.HasSuffix(base, ".conflist"):
		if !json.Valid(data) {
			return errors.New("output is not valid JSON")
		}
	case strings.HasSuffix(base, ".yaml"):
		for i, doc := range splitYAML(data) {
			var v any
			if err := yaml.Unmarshal(doc, &v); err != nil {
				return fmt.Errorf("output document %d is not valid YAML: %w", i, err)
			}
		}
	}
	return nil
}

// splitYAML splits a multi-document YAML stream on "---" lines.
func splitYAML(data []byte) [][]byte {
	var docs [][]byte
	var cur []string
	for _, line := range strings.Split(string(data), "\n") {
		if strings.TrimRight(line, " ") == "---" {
			docs = append(docs, []byte(strings.Join(cur, "\n")))
			cur = nil
			continue
		}
		cur = append(cur, line)
	}
	return append(docs, []byte(strings.Join(cur, "\n")))
}

// Digest is the lowercase hex SHA-256 of data, as sha256sum prints it.
func Digest(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// Hash is the config hash of a set of files keyed by absolute path. It is HashDigests over each file's Digest.
func Hash(files map[string][]byte) string {
	digests := make(map[string]string, len(files))
	for p, data := range files {
		digests[p] = Digest(data)
	}
	return HashDigests(digests)
}

// HashDigests is the config hash from per-file SHA-256 digests keyed by path: the SHA-256 of the lines
// "<digest>  <path>\n" sorted by path in byte order. That is exactly the output of
// `LC_ALL=C sha256sum <paths in sorted order> | sha256sum`, so a host can compute the same value, and the
// preflight script's per-file digests can be combined here. An absent file is given the digest "absent".
func HashDigests(digests map[string]string) string {
	paths := make([]string, 0, len(digests))
	for p := range digests {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	h := sha256.New()
	for _, p := range paths {
		_, _ = fmt.Fprintf(h, "%s  %s\n", digests[p], p) // a hash.Hash never returns a write error
	}
	return hex.EncodeToString(h.Sum(nil))
}

// HashRendered is Hash over the installed files in rs (those with a Path).
func HashRendered(rs []Rendered) string {
	files := make(map[string][]byte, len(rs))
	for _, r := range rs {
		if r.Path != "" {
			files[r.Path] = r.Data
		}
	}
	return Hash(files)
}
