package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/distillery-dev/distillery/internal/testenv"
)

// The cluster commands and validate against a real kube-apiserver with the CRDs installed (envtest),
// through a kubeconfig file as a user has one; validate's output is compared with the real kubectl's.

var (
	kubeconfig string
	kubectlBin string
	dyn        dynamic.Interface
	kube       kubernetes.Interface
)

func TestMain(m *testing.M) { os.Exit(runSuite(m)) }

func runSuite(m *testing.M) int {
	kubectlBin = filepath.Join(testenv.Assets(), "kubectl")
	env, cfg, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer env.Stop()
	user, err := env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	b, err := user.KubeConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	dir, err := os.MkdirTemp("", "distillery-cli-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, b, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	dyn, kube = dynamic.NewForConfigOrDie(cfg), kubernetes.NewForConfigOrDie(cfg)
	return m.Run()
}

// distillery runs the command line in-process; it returns stdout and the error.
func distillery(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := NewRoot("distillery", IO{In: strings.NewReader(""), Out: &out, Err: &errOut})
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func newNamespace(t *testing.T, name string) string {
	t.Helper()
	_, err := kube.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return name
}

const sampleJob = "../../config/samples/distillery_v1alpha1_distillationjob.yaml"

// editedSample writes the job sample with old replaced by new.
func editedSample(t *testing.T, replacements ...string) string {
	t.Helper()
	b, err := os.ReadFile(sampleJob)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i < len(replacements); i += 2 {
		if !strings.Contains(s, replacements[i]) {
			t.Fatalf("the sample has no %q", replacements[i])
		}
		s = strings.Replace(s, replacements[i], replacements[i+1], 1)
	}
	f := filepath.Join(t.TempDir(), "job.yaml")
	if err := os.WriteFile(f, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestValidatePrintsWhatKubectlApplyPrints(t *testing.T) {
	cases := []struct {
		name string
		file string
		ok   bool
	}{
		{"the sample", sampleJob, true},
		{"an unknown field", editedSample(t, "model: demo-teacher", "model: demo-teacher\n    modle: x"), false},
		{"an OpenAPI bound", editedSample(t, "shards: 2 ", "shards: 300 "), false},
		{"a CEL rule", editedSample(t, "labels: [first, second]", "labels: [first]"), false},
		{"a CEL rule on metadata and a bound", editedSample(t, "name: compare-numbers", "name: compare.numbers", "maxTokens: 128", "maxTokens: 0"), false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNamespace(t, fmt.Sprintf("validate-%d", i)) // kubectl apply creates, as validate assumes
			ours, err := distillery(t, "validate", "-n", ns, tc.file)
			kubectl := exec.Command(kubectlBin, "--kubeconfig", kubeconfig, "-n", ns, "apply", "-f", tc.file)
			var kOut, kErr bytes.Buffer
			kubectl.Stdout, kubectl.Stderr = &kOut, &kErr
			kubectlErr := kubectl.Run()
			if tc.ok {
				if err != nil || kubectlErr != nil {
					t.Fatalf("validate: %v\n%s\nkubectl apply: %v\n%s", err, ours, kubectlErr, kErr.String())
				}
				if !strings.Contains(ours, "DistillationJob/compare-numbers is valid") {
					t.Errorf("validate printed %q", ours)
				}
				return
			}
			if err == nil || kubectlErr == nil {
				t.Fatalf("validate: %v\nkubectl apply: %v (%s)", err, kubectlErr, kOut.String())
			}
			if strings.TrimSpace(ours) != strings.TrimSpace(kErr.String()) {
				t.Errorf("validate printed\n%s\nkubectl apply printed\n%s", ours, kErr.String())
			}
		})
	}
}

func TestValidateOutputsTheJobAsStored(t *testing.T) {
	out, err := distillery(t, "validate", "-o", "yaml", sampleJob)
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := yaml.Unmarshal([]byte(strings.TrimPrefix(out, "---\n")), &obj); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := unstructured.NestedString(obj, "spec", "training", "strategy"); v != "DDP" {
		t.Errorf("spec.training.strategy = %q, want the default DDP", v)
	}
	if v, _, _ := unstructured.NestedString(obj, "metadata", "namespace"); v != "default" {
		t.Errorf("metadata.namespace = %q", v)
	}
}

// createSampleJob creates the job sample in ns and sets its status as the operator would.
func createSampleJob(t *testing.T, ns string, status map[string]any) {
	t.Helper()
	b, err := os.ReadFile(sampleJob)
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := yaml.Unmarshal(b, &obj); err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: obj}
	ctx := context.Background()
	created, err := dyn.Resource(jobsResource).Namespace(ns).Create(ctx, u, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if status == nil {
		return
	}
	created.Object["status"] = status
	if _, err := dyn.Resource(jobsResource).Namespace(ns).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestStatusShowsStagesProgressAndConditions(t *testing.T) {
	ns := newNamespace(t, "status")
	createSampleJob(t, ns, map[string]any{
		"stage": "Annotating", "progress": "512/1000",
		"startTime": "2026-11-30T10:00:00Z",
		"annotation": map[string]any{"total": int64(1000), "done": int64(512), "ok": int64(500), "rejected": int64(10),
			"teacherErrors": int64(2), "promptTokens": int64(51200), "completionTokens": int64(9000), "cacheHits": int64(0),
			"shardsSucceeded": int64(0), "shardsTotal": int64(2)},
		"conditions": []any{map[string]any{"type": "Annotated", "status": "False", "reason": "Running",
			"message": "2 annotation shards running", "lastTransitionTime": "2026-11-30T10:00:05Z"}},
	})
	out, err := distillery(t, "status", "compare-numbers", "-n", ns, "--kubeconfig", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Stage:      Annotating", "Progress:   512/1000", "Annotation:", "done:", "512",
		"promptTokens:", "51200", "Annotated  False   Running", "2 annotation shards running"} {
		if !strings.Contains(out, want) {
			t.Errorf("status output has no %q:\n%s", want, out)
		}
	}
	if _, err := distillery(t, "status", "nope", "-n", ns, "--kubeconfig", kubeconfig); err == nil || !strings.Contains(err.Error(), `no DistillationJob "nope" in namespace "status"`) {
		t.Errorf("a missing job: %v", err)
	}
}

func TestReportPrintsTheTablesAndWritesThePlot(t *testing.T) {
	ns := newNamespace(t, "report")
	createSampleJob(t, ns, nil)
	report := `{"job":"compare-numbers",
 "evaluation":{"metric":"accuracy","examples":96,"studentAccuracy":0.875,"teacherAccuracy":0.97,"agreement":0.89},
 "perClass":{"first":{"precision":0.9,"recall":0.85,"f1":0.874,"support":48},"second":{"precision":0.86,"recall":0.9,"f1":0.88,"support":48}},
 "points":[{"index":0,"fraction":0.5,"mode":"step-by-step","seed":0,"accuracy":0.81,"served":false},
           {"index":1,"fraction":1,"mode":"step-by-step","seed":0,"accuracy":0.875,"served":true}]}`
	svg := `<svg xmlns="http://www.w3.org/2000/svg"><text>loss</text></svg>`
	_, err := kube.CoreV1().ConfigMaps(ns).Create(context.Background(), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "compare-numbers-report"},
		Data:       map[string]string{"report.json": report, "report.svg": svg},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	plot := filepath.Join(t.TempDir(), "report.svg")
	out, err := distillery(t, "report", "compare-numbers", "-n", ns, "--kubeconfig", kubeconfig, "-o", plot)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"student accuracy           0.8750", "teacher accuracy           0.9700", "eval examples              96",
		"CLASS", "first", "0.8500", "INDEX  FRACTION  MODE          SEED  ACCURACY  SERVED", "1      1         step-by-step  0     0.8750    true", "0      0.5000    step-by-step  0     0.8100    false"} {
		if !strings.Contains(out, want) {
			t.Errorf("report output has no %q:\n%s", want, out)
		}
	}
	if b, err := os.ReadFile(plot); err != nil || string(b) != svg {
		t.Errorf("the plot file holds %q (%v)", b, err)
	}
}

func TestReportBeforeTheReportExists(t *testing.T) {
	ns := newNamespace(t, "report-early")
	createSampleJob(t, ns, map[string]any{"stage": "Training"})
	_, err := distillery(t, "report", "compare-numbers", "-n", ns, "--kubeconfig", kubeconfig)
	if err == nil || !strings.Contains(err.Error(), "has no report yet (stage Training)") {
		t.Errorf("a job still training: %v", err)
	}

	ns = newNamespace(t, "report-status")
	createSampleJob(t, ns, map[string]any{"stage": "Succeeded", "evaluation": map[string]any{"accuracy": "0.9010", "examples": int64(101)}})
	out, err := distillery(t, "report", "compare-numbers", "-n", ns, "--kubeconfig", kubeconfig)
	if err != nil || !strings.Contains(out, "student accuracy  0.9010") || !strings.Contains(out, "eval examples     101") {
		t.Errorf("the evaluation from the status: %v\n%s", err, out)
	}
}
