// Command imagepack builds a container image tarball (docker-save format, which `ctr images import` and
// `docker load` read) without a registry, a base image or a Docker engine.
//
// Each -dir flag becomes one layer holding a host directory at a path in the image; all -file flags
// together become one more layer. Layers are compressed in parallel, each in a single pass.
//
//	imagepack -o out.tar -tag distillery.local/operator:dev -entrypoint /manager \
//	    -file /manager=bin/manager -file /annotator=bin/annotator
//	imagepack -o student.tar -tag distillery.local/student:dev -cmd python3 \
//	    -dir /=rootfs -exclude '/dev/*' -dir /usr/local/lib/python3.11/dist-packages=.venv/lib/python3.11/site-packages
package main

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }

type mapping struct{ dst, src string }

func parseMapping(s string) mapping {
	dst, src, ok := strings.Cut(s, "=")
	if !ok || !strings.HasPrefix(dst, "/") {
		log.Fatalf("bad mapping %q: want /path/in/image=host/path", s)
	}
	return mapping{path.Clean(dst), src}
}

var excludes multi

func excluded(imagePath string) bool {
	for _, p := range excludes {
		if ok, _ := path.Match(p, imagePath); ok {
			return true
		}
	}
	return false
}

// tarWriter writes entries, emitting each parent directory once.
type tarWriter struct {
	tw   *tar.Writer
	dirs map[string]bool
}

func (t *tarWriter) parents(p string) error {
	var chain []string
	for d := path.Dir(p); d != "/" && d != "." && !t.dirs[d]; d = path.Dir(d) {
		chain = append(chain, d)
	}
	for i := len(chain) - 1; i >= 0; i-- {
		d := chain[i]
		t.dirs[d] = true
		if err := t.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(d, "/") + "/", Mode: 0o755, ModTime: time.Unix(0, 0)}); err != nil {
			return err
		}
	}
	return nil
}

// add writes one host file system entry at imagePath.
func (t *tarWriter) add(imagePath, hostPath string, fi fs.FileInfo, follow bool) error {
	if err := t.parents(imagePath); err != nil {
		return err
	}
	if follow && fi.Mode()&fs.ModeSymlink != 0 {
		var err error
		if fi, err = os.Stat(hostPath); err != nil {
			return err
		}
	}
	var link string
	if fi.Mode()&fs.ModeSymlink != 0 {
		var err error
		if link, err = os.Readlink(hostPath); err != nil {
			return err
		}
	} else if !fi.Mode().IsRegular() && !fi.IsDir() {
		return nil // devices, sockets, fifos: the runtime provides what a container needs
	}
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return err
	}
	hdr.Name = strings.TrimPrefix(imagePath, "/")
	if fi.IsDir() {
		hdr.Name += "/"
		t.dirs[imagePath] = true
	}
	hdr.Uname, hdr.Gname = "", ""
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && !follow {
		hdr.Uid, hdr.Gid = int(st.Uid), int(st.Gid)
	} else {
		hdr.Uid, hdr.Gid = 0, 0
	}
	hdr.Format = tar.FormatPAX
	hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
	if err := t.tw.WriteHeader(hdr); err != nil {
		return err
	}
	if fi.Mode().IsRegular() {
		f, err := os.Open(hostPath)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := io.Copy(t.tw, f); err != nil {
			return fmt.Errorf("%s: %w", hostPath, err)
		}
	}
	return nil
}

// writeDir streams a host directory tree into the tar at dst.
func (t *tarWriter) writeDir(m mapping) error {
	return filepath.WalkDir(m.src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(m.src, p)
		ip := path.Join(m.dst, filepath.ToSlash(rel))
		if ip == "/" {
			return nil
		}
		if rel != "." && excluded(ip) { // a layer's own root is never excluded
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		return t.add(ip, p, fi, false)
	})
}

// buildLayer writes one gzip layer file in a single pass and returns it as a v1.Layer.
func buildLayer(out string, level int, fill func(*tarWriter) error) (v1.Layer, error) {
	f, err := os.Create(out)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zw, err := gzip.NewWriterLevel(f, level)
	if err != nil {
		return nil, err
	}
	diff := sha256.New()
	tw := tar.NewWriter(io.MultiWriter(zw, diff))
	if err := fill(&tarWriter{tw: tw, dirs: map[string]bool{}}); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return fileLayer(out, diff)
}

// fileLayer is a gzip layer file whose uncompressed digest (diffID) we already know: it avoids the extra
// decompression pass that tarball.LayerFromFile would make.
func fileLayer(p string, diff hash.Hash) (v1.Layer, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	f.Close()
	if err != nil {
		return nil, err
	}
	return &gzLayer{path: p, size: n,
		digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))},
		diffID: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(diff.Sum(nil))}}, nil
}

func main() {
	var (
		out, tag, entrypoint, cmd, workdir, user, tmpdir, cacheDir string
		files, dirs, envs                                          multi
		level                                                      int
	)
	flag.StringVar(&out, "o", "", "output tarball")
	flag.StringVar(&tag, "tag", "", "image reference, e.g. distillery.local/operator:dev")
	flag.StringVar(&entrypoint, "entrypoint", "", "entrypoint: a JSON array or a single path")
	flag.StringVar(&cmd, "cmd", "", "cmd: a JSON array or a single word")
	flag.StringVar(&workdir, "workdir", "", "working directory")
	flag.StringVar(&user, "user", "", "user (uid[:gid])")
	flag.StringVar(&tmpdir, "tmpdir", "", "where layer files are staged (default: next to -o)")
	flag.StringVar(&cacheDir, "cache", "", "keep -dir layers here, keyed by their files' metadata, and reuse them (unused ones are removed)")
	flag.IntVar(&level, "level", gzip.BestSpeed, "gzip level of the layers (0: stored, fastest)")
	flag.Var(&files, "file", "/path/in/image=host/file (repeatable; all in one layer; symlinks followed)")
	flag.Var(&dirs, "dir", "/path/in/image=host/dir (repeatable; one layer each)")
	flag.Var(&excludes, "exclude", "image path glob to leave out of -dir layers, e.g. '/dev/*' (repeatable)")
	flag.Var(&envs, "env", "KEY=VALUE (repeatable)")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("imagepack: ")
	if out == "" || tag == "" || (len(files) == 0 && len(dirs) == 0) {
		flag.Usage()
		os.Exit(2)
	}
	ref, err := name.ParseReference(tag)
	if err != nil {
		log.Fatal(err)
	}
	if tmpdir == "" {
		tmpdir = filepath.Dir(out)
	}
	stage, err := os.MkdirTemp(tmpdir, ".imagepack-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(stage)

	type job struct {
		name string
		key  string // cache key, for -dir layers when -cache is set
		fill func(*tarWriter) error
	}
	var jobs []job
	for _, d := range dirs {
		m := parseMapping(d)
		key := ""
		if cacheDir != "" {
			if key, err = dirKey(m, level); err != nil {
				log.Fatal(err)
			}
		}
		jobs = append(jobs, job{m.dst + " <- " + m.src, key, func(t *tarWriter) error { return t.writeDir(m) }})
	}
	if len(files) > 0 {
		var ms []mapping
		for _, f := range files {
			ms = append(ms, parseMapping(f))
		}
		jobs = append(jobs, job{fmt.Sprintf("%d file(s)", len(ms)), "", func(t *tarWriter) error {
			for _, m := range ms {
				fi, err := os.Lstat(m.src)
				if err != nil {
					return err
				}
				if err := t.add(m.dst, m.src, fi, true); err != nil {
					return err
				}
			}
			return nil
		}})
	}

	start := time.Now()
	layers := make([]v1.Layer, len(jobs))
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if j.key == "" {
				layers[i], errs[i] = buildLayer(filepath.Join(stage, fmt.Sprintf("layer%d.tar.gz", i)), level, j.fill)
				return
			}
			layers[i], errs[i] = cachedLayer(cacheDir, j.key, level, j.fill)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			log.Fatalf("layer %s: %v", jobs[i].name, err)
		}
		sz, _ := layers[i].Size()
		log.Printf("layer %d (%s): %.1f MB", i, jobs[i].name, float64(sz)/1e6)
	}

	if cacheDir != "" {
		keep := map[string]bool{}
		for _, j := range jobs {
			keep[j.key+".tar.gz"], keep[j.key+".json"] = true, true
		}
		ents, _ := os.ReadDir(cacheDir)
		for _, e := range ents {
			if !keep[e.Name()] {
				os.RemoveAll(filepath.Join(cacheDir, e.Name()))
			}
		}
	}

	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		log.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		log.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	cf.Config.Entrypoint = words(entrypoint)
	cf.Config.Cmd = words(cmd)
	cf.Config.WorkingDir = workdir
	cf.Config.User = user
	cf.Config.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, envs...)
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		log.Fatal(err)
	}
	tmp := out + ".tmp"
	if err := tarball.WriteToFile(tmp, ref, img); err != nil {
		log.Fatal(err)
	}
	if err := os.Rename(tmp, out); err != nil {
		log.Fatal(err)
	}
	d, _ := img.Digest()
	fi, _ := os.Stat(out)
	log.Printf("wrote %s (%s, %s, %.1f MB) in %s", out, ref.Name(), d, float64(fi.Size())/1e6, time.Since(start).Round(time.Millisecond))
}

func words(s string) []string {
	if s == "" {
		return nil
	}
	if strings.HasPrefix(s, "[") {
		var w []string
		if err := json.Unmarshal([]byte(s), &w); err != nil {
			log.Fatalf("bad JSON array %q: %v", s, err)
		}
		return w
	}
	return []string{s}
}

// gzLayer is a gzip-compressed layer on disk with precomputed digests.
type gzLayer struct {
	path           string
	size           int64
	digest, diffID v1.Hash
}

func (l *gzLayer) Digest() (v1.Hash, error) { return l.digest, nil }
func (l *gzLayer) DiffID() (v1.Hash, error) { return l.diffID, nil }
func (l *gzLayer) Size() (int64, error)     { return l.size, nil }
func (l *gzLayer) MediaType() (types.MediaType, error) {
	return types.DockerLayer, nil
}
func (l *gzLayer) Compressed() (io.ReadCloser, error) { return os.Open(l.path) }
func (l *gzLayer) Uncompressed() (io.ReadCloser, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{zr, f}, nil
}

// dirKey identifies a -dir layer by its mapping, the excludes, the level and every entry's metadata (path,
// mode, size, mtime, link target): a changed, added or removed file changes it, without reading contents.
func dirKey(m mapping, level int) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "v1 %s %s %d %q\n", m.dst, m.src, level, excludes)
	err := filepath.WalkDir(m.src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(m.src, p)
		ip := path.Join(m.dst, filepath.ToSlash(rel))
		if rel != "." && excluded(ip) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			link, _ = os.Readlink(p)
		}
		fmt.Fprintf(h, "%s %o %d %d %s\n", rel, fi.Mode(), fi.Size(), fi.ModTime().UnixNano(), link)
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))[:24], err
}

type layerMeta struct {
	Digest, DiffID string
	Size           int64
}

// cachedLayer returns the layer kept in dir under key, building and keeping it first if needed.
func cachedLayer(dir, key string, level int, fill func(*tarWriter) error) (v1.Layer, error) {
	gz, meta := filepath.Join(dir, key+".tar.gz"), filepath.Join(dir, key+".json")
	if b, err := os.ReadFile(meta); err == nil {
		var lm layerMeta
		if json.Unmarshal(b, &lm) == nil {
			if fi, err := os.Stat(gz); err == nil && fi.Size() == lm.Size {
				d, err1 := v1.NewHash(lm.Digest)
				di, err2 := v1.NewHash(lm.DiffID)
				if err1 == nil && err2 == nil {
					log.Printf("reusing cached layer %s", key)
					return &gzLayer{path: gz, size: lm.Size, digest: d, diffID: di}, nil
				}
			}
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	l, err := buildLayer(gz+".tmp", level, fill)
	if err != nil {
		return nil, err
	}
	if err := os.Rename(gz+".tmp", gz); err != nil {
		return nil, err
	}
	gl := l.(*gzLayer)
	gl.path = gz
	b, _ := json.Marshal(layerMeta{Digest: gl.digest.String(), DiffID: gl.diffID.String(), Size: gl.size})
	return gl, os.WriteFile(meta, b, 0o644)
}
