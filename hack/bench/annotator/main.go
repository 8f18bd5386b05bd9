// Command bench-annotator measures the annotator binary against the fake teacher: throughput against the
// theoretical ceiling (concurrency / latency), and the annotator's own CPU time and peak RSS as the
// dataset grows. The teacher runs in this process, the annotator in its own, so the figures are the
// annotator's alone.
//
//	go build -o bin/annotator ./cmd/annotator
//	go run ./hack/bench/annotator --annotator bin/annotator --lines 10000,100000
//
// --shards N with --lines large measures the streaming read: the shard takes 1/N of the lines and
// skips the rest without holding them. The ceiling column compares teacher requests per second with
// concurrency/latency; a few synthetic inputs repeat, and those are cache hits, not requests.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/distillery-dev/distillery/internal/contract"
	"github.com/distillery-dev/distillery/internal/faketeacher"
)

type settings struct {
	annotator   string
	lines       []int
	latency     time.Duration
	concurrency int
	shards      int
	workDir     string
}

func main() {
	s, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	endpoint, fake, err := startTeacher(s.latency)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ceiling := float64(s.concurrency) / s.latency.Seconds()
	fmt.Printf("fake teacher latency %v, annotator concurrency %d, shards %d: ceiling %.0f requests/s\n", s.latency, s.concurrency, s.shards, ceiling)
	fmt.Printf("%10s %10s %9s %10s %10s %8s %9s %10s %10s\n", "lines", "requests", "wall_s", "lines/s", "req/s", "ceiling%", "cpu_s", "cpu_ms/req", "maxRSS_MiB")
	for _, n := range s.lines {
		before := fake.Calls()
		m, err := measure(s, endpoint, n)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		reqs := fake.Calls() - before
		rate := float64(reqs) / m.wall.Seconds()
		fmt.Printf("%10d %10d %9.2f %10.0f %10.0f %7.1f%% %9.2f %10.3f %10.1f\n", n, reqs, m.wall.Seconds(), float64(n)/m.wall.Seconds(), rate,
			100*rate/ceiling, m.cpu.Seconds(), 1000*m.cpu.Seconds()/float64(max(reqs, 1)), float64(m.maxRSSKiB)/1024)
	}
}

func parseFlags() (settings, error) {
	var s settings
	var lines string
	flag.StringVar(&s.annotator, "annotator", "bin/annotator", "the annotator binary")
	flag.StringVar(&lines, "lines", "10000", "comma-separated dataset sizes")
	flag.DurationVar(&s.latency, "latency", 50*time.Millisecond, "fake teacher latency")
	flag.IntVar(&s.concurrency, "concurrency", 64, "annotator maxConcurrency")
	flag.IntVar(&s.shards, "shards", 1, "shards in the config; the run is shard 0")
	flag.StringVar(&s.workDir, "work-dir", "", "where datasets and outputs go (default: a temporary folder)")
	flag.Parse()
	for _, f := range strings.Split(lines, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return s, fmt.Errorf("--lines: %w", err)
		}
		s.lines = append(s.lines, n)
	}
	if s.workDir == "" {
		dir, err := os.MkdirTemp("", "bench-annotator-")
		if err != nil {
			return s, err
		}
		s.workDir = dir
	}
	return s, nil
}

func startTeacher(latency time.Duration) (string, *faketeacher.Server, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("listening: %w", err)
	}
	fake := &faketeacher.Server{Latency: latency}
	go http.Serve(l, fake)
	return "http://" + l.Addr().String() + "/v1", fake, nil
}

type measurement struct {
	wall      time.Duration
	cpu       time.Duration
	maxRSSKiB int64
}

// measure writes a dataset of n lines and runs the annotator on shard 0 of it, with an empty output and
// cache, so every line of the shard costs one teacher request.
func measure(s settings, endpoint string, n int) (measurement, error) {
	dir := filepath.Join(s.workDir, strconv.Itoa(n))
	if err := os.RemoveAll(dir); err != nil {
		return measurement{}, err
	}
	config, err := prepare(dir, endpoint, n, s)
	if err != nil {
		return measurement{}, err
	}
	cmd := exec.Command(s.annotator, "--config", config, "--shard", "0", "--termination-log", filepath.Join(dir, "termination.json"))
	cmd.Env = append(os.Environ(), "KUBERNETES_SERVICE_HOST=")
	logs, _ := os.Create(filepath.Join(dir, "annotator.log"))
	defer logs.Close()
	cmd.Stdout, cmd.Stderr = logs, logs
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return measurement{}, fmt.Errorf("starting the annotator: %w", err)
	}
	peak := watchPeakRSS(cmd.Process.Pid)
	if err := cmd.Wait(); err != nil {
		return measurement{}, fmt.Errorf("annotator on %d lines: %w (log in %s)", n, err, logs.Name())
	}
	return measurement{
		wall:      time.Since(start),
		cpu:       cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(),
		maxRSSKiB: peak(),
	}, nil
}

// watchPeakRSS samples the process's VmHWM (peak RSS of its own address space) until it exits.
// rusage's ru_maxrss is not used: Linux carries the parent's peak over the fork and exec into the child,
// so it would report this benchmark's memory, not the annotator's.
func watchPeakRSS(pid int) (peak func() int64) {
	var mu sync.Mutex
	var hwm int64
	status := fmt.Sprintf("/proc/%d/status", pid)
	go func() {
		for {
			b, err := os.ReadFile(status)
			if err != nil {
				return
			}
			if kib := vmHWM(b); kib > 0 {
				mu.Lock()
				hwm = max(hwm, kib)
				mu.Unlock()
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	return func() int64 {
		mu.Lock()
		defer mu.Unlock()
		return hwm
	}
}

func vmHWM(status []byte) int64 {
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kib, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kib
		}
	}
	return 0
}

func prepare(dir, endpoint string, n int, s settings) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	data := filepath.Join(dir, "data.jsonl")
	f, err := os.Create(data)
	if err != nil {
		return "", err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if err := faketeacher.WriteCompareDataset(w, n, 1); err != nil {
		return "", err
	}
	if err := w.Flush(); err != nil {
		return "", err
	}
	f.Close()
	cfg := contract.AnnotateConfig{
		Job: "bench", Shards: s.shards,
		Teacher: contract.Teacher{Endpoint: endpoint, Model: "fake", MaxConcurrency: s.concurrency, MaxTokens: 64, TimeoutSeconds: 30, MaxRetries: 3},
		Task:    faketeacher.CompareTask(),
		Dataset: contract.DatasetRef{Path: data, IDField: "id", InputField: "input", LabelField: "label"},
		Filter:  contract.Filter{DropLabelMismatch: true},
		Output:  contract.AnnotateOut{Dir: filepath.Join(dir, "annotations"), CacheDir: filepath.Join(dir, "cache")},
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return "", err
	}
	config := filepath.Join(dir, "annotate.json")
	return config, os.WriteFile(config, b, 0o644)
}
