// Package simenv runs the operator against the simulated (KWOK) cluster of hack/kwok: it brings the cluster
// up when it is not, builds and starts cmd/manager as a host process, and measures it (peak RSS, CPU
// seconds, its API requests). The simulation tests (test/sim) and the scale benchmark (hack/bench/scale)
// share it.
package simenv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/distillery-dev/distillery/api/v1alpha1"
)

// Annotations that choose a stage pod's outcome (hack/kwok/stages/pod-outcome.yaml).
const (
	AnnotationOutcome  = "sim.distillery.dev/outcome"
	AnnotationMessage  = "sim.distillery.dev/message"
	AnnotationExitCode = "sim.distillery.dev/exit-code"
	// HoldPrefix: stage pods of a DistillationJob whose name starts with it stay Running until told.
	HoldPrefix = "hold-"
	// WorkspaceClaim is the pre-bound claim that Workspace makes in a namespace (there is no volume
	// provisioner in the simulated cluster).
	WorkspaceClaim = "workspace"
)

// Env is a simulated cluster and the operator running against it.
type Env struct {
	Root       string // the repository
	Dir        string // the cluster's state dir (hack/kwok/lib.sh DISTILLERY_SIM_DIR)
	Kubeconfig string
	Config     *rest.Config
	Client     client.Client
	// StartedCluster: this Env ran hack/kwok/up.sh and Stop runs hack/kwok/down.sh.
	StartedCluster bool
	Operator       *Operator
}

// Root finds the repository root above the working directory.
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "hack", "kwok", "up.sh")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("repository root (hack/kwok/up.sh) not found above the working directory")
		}
		dir = parent
	}
}

// Scheme knows the built-in kinds and the operator's.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(v1alpha1.AddToScheme(s))
	return s
}

// Start brings the simulated cluster up, or brings an answering one up to date (then it is left running
// by Stop).
func Start(ctx context.Context, log io.Writer) (*Env, error) {
	root, err := Root()
	if err != nil {
		return nil, err
	}
	dir := os.Getenv("DISTILLERY_SIM_DIR")
	if dir == "" {
		dir = filepath.Join(root, ".dev-sim")
	}
	e := &Env{Root: root, Dir: dir, Kubeconfig: filepath.Join(dir, "kubeconfig")}
	// up.sh is idempotent: on a cluster that answers already it only re-applies this tree's CRDs (a
	// cluster left running from an older checkout would otherwise refuse new fields).
	e.StartedCluster = !e.reachable(ctx)
	cmd := exec.CommandContext(ctx, filepath.Join(root, "hack", "kwok", "up.sh"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("hack/kwok/up.sh: %w", err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", e.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", e.Kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = 500, 1000
	e.Config = cfg
	e.Client, err = client.New(cfg, client.Options{Scheme: Scheme()})
	if err != nil {
		return nil, err
	}
	return e, nil
}

func (e *Env) reachable(ctx context.Context) bool {
	cfg, err := clientcmd.BuildConfigFromFlags("", e.Kubeconfig)
	if err != nil {
		return false
	}
	cfg.Timeout = 3 * time.Second
	c, err := client.New(cfg, client.Options{Scheme: Scheme()})
	if err != nil {
		return false
	}
	var nodes corev1.NodeList
	return c.List(ctx, &nodes, client.MatchingLabels{"type": "kwok"}) == nil && len(nodes.Items) > 0
}

// Stop stops the operator and, if Start brought the cluster up, takes it down.
func (e *Env) Stop(log io.Writer) error {
	var errs []error
	if e.Operator != nil {
		errs = append(errs, e.Operator.Stop())
	}
	if e.StartedCluster && os.Getenv("SIM_KEEP_CLUSTER") == "" {
		cmd := exec.Command(filepath.Join(e.Root, "hack", "kwok", "down.sh"))
		cmd.Stdout, cmd.Stderr = log, log
		errs = append(errs, cmd.Run())
	}
	return errors.Join(errs...)
}

// Operator is cmd/manager running as a host process.
type Operator struct {
	Cmd         *exec.Cmd
	MetricsAddr string
	LogPath     string
	pidFile     string
}

// StartOperator builds cmd/manager and runs it against the cluster with its metrics on a free port.
// Its PID goes where hack/kwok/down.sh looks, so a test killed midway leaves nothing running after down.sh.
func (e *Env) StartOperator(ctx context.Context, extraArgs ...string) (*Operator, error) {
	bin := filepath.Join(e.Dir, "bin", "manager")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/manager")
	build.Dir = e.Root
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build ./cmd/manager: %w\n%s", err, out)
	}
	metrics, probe := freeAddr(), freeAddr()
	logPath := filepath.Join(e.Dir, "logs", "distillery-operator.log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	args := append([]string{"--kubeconfig", e.Kubeconfig, "--metrics-bind-address", metrics,
		"--health-probe-bind-address", probe, "--annotator-image", "distillery/operator:sim",
		"--trainer-image", "distillery/student:sim"}, extraArgs...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	_ = logf.Close()
	op := &Operator{Cmd: cmd, MetricsAddr: metrics, LogPath: logPath, pidFile: filepath.Join(e.Dir, "pids", "distillery-operator.pid")}
	_ = os.MkdirAll(filepath.Dir(op.pidFile), 0o755)
	_ = os.WriteFile(op.pidFile, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644)
	e.Operator = op
	// Ready means both controllers run workers, i.e. their caches synced: /readyz answers before that, and
	// jobs created while the informers still list arrive as low-priority "initial list" events.
	deadline := time.Now().Add(90 * time.Second)
	for {
		logText, _ := os.ReadFile(logPath)
		if strings.Contains(string(logText), `"msg":"Starting workers","controller":"distillationjob"`) &&
			strings.Contains(string(logText), `"msg":"Starting workers","controller":"studentmodel"`) {
			return op, nil
		}
		if time.Now().After(deadline) {
			return op, fmt.Errorf("operator's controllers not started after 90s; log: %s", logPath)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop ends the operator (SIGTERM, then SIGKILL after 10 s).
func (o *Operator) Stop() error {
	if o.Cmd.Process == nil {
		return nil
	}
	defer os.Remove(o.pidFile)
	_ = o.Cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- o.Cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = o.Cmd.Process.Kill()
		<-done
	}
	return nil
}

// Pid is the operator's process id.
func (o *Operator) Pid() int { return o.Cmd.Process.Pid }

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// ProcStats are a process's peak and current resident memory and CPU time.
type ProcStats struct {
	PeakRSSBytes, RSSBytes int64
	CPUSeconds             float64
}

// ReadProcStats reads /proc/<pid>/status (VmHWM, VmRSS) and /proc/<pid>/stat (utime+stime).
func ReadProcStats(pid int) (ProcStats, error) {
	var s ProcStats
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmHWM:":
			s.PeakRSSBytes = kb * 1024
		case "VmRSS:":
			s.RSSBytes = kb * 1024
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// Fields after the command name (which may hold spaces) start at state; utime and stime are 14 and 15.
	rest := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	if len(rest) > 13 {
		ut, _ := strconv.ParseFloat(rest[11], 64)
		st, _ := strconv.ParseFloat(rest[12], 64)
		s.CPUSeconds = (ut + st) / 100 // USER_HZ
	}
	return s, nil
}

// Metrics is a scrape of Prometheus text: sample lines by metric name.
type Metrics map[string][]Sample

// Sample is one line of a scrape.
type Sample struct {
	Labels map[string]string
	Value  float64
}

var labelRE = regexp.MustCompile(`(\w+)="((?:[^"\\]|\\.)*)"`)

// ParseMetrics parses Prometheus text exposition.
func ParseMetrics(r io.Reader) Metrics {
	m := Metrics{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, labels := line, ""
		if i := strings.IndexByte(line, '{'); i >= 0 {
			j := strings.LastIndexByte(line, '}')
			name, labels = line[:i], line[i+1:j]
			line = name + line[j+1:]
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			continue
		}
		s := Sample{Labels: map[string]string{}, Value: v}
		for _, kv := range labelRE.FindAllStringSubmatch(labels, -1) {
			s.Labels[kv[1]] = kv[2]
		}
		m[f[0]] = append(m[f[0]], s)
	}
	return m
}

// Sum adds the samples of name whose labels pass keep (nil keeps all).
func (m Metrics) Sum(name string, keep func(map[string]string) bool) float64 {
	var t float64
	for _, s := range m[name] {
		if keep == nil || keep(s.Labels) {
			t += s.Value
		}
	}
	return t
}

// ScrapeOperator reads the operator's /metrics.
func (o *Operator) Scrape() (Metrics, error) {
	resp, err := http.Get("http://" + o.MetricsAddr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return ParseMetrics(resp.Body), nil
}

// ScrapeAPIServer reads kube-apiserver's /metrics.
func (e *Env) ScrapeAPIServer(ctx context.Context) (Metrics, error) {
	rc, err := rest.HTTPClientFor(e.Config)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(e.Config.Host, "/")+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := rc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return ParseMetrics(resp.Body), nil
}

// IsWrite passes request samples (rest_client_requests_total's method, apiserver_request_total's verb)
// that change something.
func IsWrite(l map[string]string) bool {
	v := strings.ToUpper(l["method"] + l["verb"])
	switch v {
	case "POST", "PUT", "PATCH", "DELETE", "APPLY", "CREATE", "UPDATE", "DELETECOLLECTION":
		return true
	}
	return false
}

// Namespace creates a namespace with a pre-bound workspace claim (a hostPath volume nobody reads: pods on
// simulated nodes never run).
func (e *Env) Namespace(ctx context.Context, name string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := e.Client.Create(ctx, ns); client.IgnoreAlreadyExists(err) != nil {
		return err
	}
	pvName := "sim-workspace-" + name
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: pvName, Labels: map[string]string{"distillery.dev/sim": "workspace"}},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Ti")},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
			StorageClassName:              "sim",
			PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/tmp/distillery-sim"}},
			ClaimRef:                      &corev1.ObjectReference{Namespace: name, Name: WorkspaceClaim},
		},
	}
	if err := e.Client.Create(ctx, pv); client.IgnoreAlreadyExists(err) != nil {
		return err
	}
	sc := "sim"
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: WorkspaceClaim, Namespace: name},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany},
			StorageClassName: &sc,
			VolumeName:       pvName,
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Ti")}},
		},
	}
	if err := e.Client.Create(ctx, pvc); client.IgnoreAlreadyExists(err) != nil {
		return err
	}
	// Pods are refused until the namespace's default ServiceAccount exists, and the scheduler waits for
	// the claim to be bound.
	return Poll(ctx, 60*time.Second, func() error {
		var sa corev1.ServiceAccount
		if err := e.Client.Get(ctx, client.ObjectKey{Namespace: name, Name: "default"}, &sa); err != nil {
			return err
		}
		var c corev1.PersistentVolumeClaim
		if err := e.Client.Get(ctx, client.ObjectKey{Namespace: name, Name: WorkspaceClaim}, &c); err != nil {
			return err
		}
		if c.Status.Phase != corev1.ClaimBound {
			return fmt.Errorf("claim %s/%s is %s", name, WorkspaceClaim, c.Status.Phase)
		}
		return nil
	})
}

// DeleteNamespace deletes a namespace and its workspace volume (without waiting).
func (e *Env) DeleteNamespace(ctx context.Context, name string) {
	_ = e.Client.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	_ = e.Client.Delete(ctx, &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "sim-workspace-" + name}})
}

// Poll retries f every 100 ms until it returns nil or timeout passes (then it returns f's last error).
func Poll(ctx context.Context, timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Kinds a job's children come in, for checks that every child is gone.
var ChildLists = []client.ObjectList{
	&batchv1.JobList{}, &corev1.PodList{}, &corev1.ConfigMapList{}, &corev1.ServiceAccountList{},
	&corev1.ServiceList{}, &corev1.PersistentVolumeClaimList{}, &appsv1.DeploymentList{},
}
