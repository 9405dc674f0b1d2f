package vmlab

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"slices"
)

// assetFS holds the image build scripts, the package list and the files copied into the guest.
//
//go:embed assets
var assetFS embed.FS

// Build inputs inside assetFS.
const (
	minbaseAsset  = "assets/minbase.sh"
	buildAsset    = "assets/build-image.sh"
	packagesAsset = "assets/packages.txt"
	guestDir      = "assets/guest"
)

// imageSize is the virtual size of the base image's disk; VMs grow the filesystem to their overlay's size.
const imageSize = "4G"

// keyVersion changes when the cache layout or the meaning of the key changes.
const keyVersion = "vmlab-image-1"

// buildInputs are what a base image is built from: the embedded assets plus the mirror and the guest's
// apt sources. Equal inputs give an equal Key.
type buildInputs struct {
	assets  fs.FS
	mirror  string
	sources string
}

// assetNames lists every file under the assets root of fsys, sorted.
func assetNames(fsys fs.FS) ([]string, error) {
	var names []string
	err := fs.WalkDir(fsys, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			names = append(names, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list image assets: %w", err)
	}
	slices.Sort(names)
	return names, nil
}

// hashFiles is the hex sha256 over the named files of fsys (name, length and content) and extra strings.
func hashFiles(fsys fs.FS, names []string, extra ...string) (string, error) {
	h := sha256.New()
	for _, n := range names {
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return "", fmt.Errorf("image asset %s: %w", n, err)
		}
		_, _ = fmt.Fprintf(h, "file\x00%s\x00%d\x00", path.Clean(n), len(b)) // a hash.Hash never fails to write
		h.Write(b)
	}
	for _, e := range extra {
		_, _ = fmt.Fprintf(h, "extra\x00%d\x00%s", len(e), e)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Key is the image cache key: 16 hex digits of a sha256 over every asset, the mirror, the guest's apt
// sources, the suite, the disk size and keyVersion.
func (in buildInputs) Key() (string, error) {
	names, err := assetNames(in.assets)
	if err != nil {
		return "", err
	}
	sum, err := hashFiles(in.assets, names, keyVersion, suite, imageSize, in.mirror, in.sources)
	if err != nil {
		return "", err
	}
	return sum[:16], nil
}

// MinbaseKey is the cache key of the stage-1 debootstrap tarball: the minbase script, suite and mirror.
func (in buildInputs) MinbaseKey() (string, error) {
	sum, err := hashFiles(in.assets, []string{minbaseAsset}, keyVersion, suite, in.mirror)
	if err != nil {
		return "", err
	}
	return sum[:16], nil
}
