package argocdhealth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	lua "github.com/yuin/gopher-lua"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/distillery-dev/distillery/api/v1alpha1"
)

const argocdDir = "../../config/argocd"

// health runs an Argo CD health script against obj, as Argo CD does: obj is a global table, the script
// returns a table with status and message.
func health(t *testing.T, script string, obj runtime.Object) (status, message string) {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(argocdDir, script))
	if err != nil {
		t.Fatal(err)
	}
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	L := lua.NewState(lua.Options{SkipOpenLibs: false})
	defer L.Close()
	L.SetGlobal("obj", toLua(L, u))
	if err := L.DoString(string(src)); err != nil {
		t.Fatalf("running %s: %v", script, err)
	}
	hs, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		t.Fatalf("%s returned %s, want a table", script, L.Get(-1).Type())
	}
	return lua.LVAsString(hs.RawGetString("status")), lua.LVAsString(hs.RawGetString("message"))
}

func toLua(L *lua.LState, v any) lua.LValue {
	switch x := v.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(x)
	case string:
		return lua.LString(x)
	case int64:
		return lua.LNumber(x)
	case int32:
		return lua.LNumber(x)
	case int:
		return lua.LNumber(x)
	case float64:
		return lua.LNumber(x)
	case []any:
		t := L.NewTable()
		for _, e := range x {
			t.Append(toLua(L, e))
		}
		return t
	case map[string]any:
		t := L.NewTable()
		for k, e := range x {
			t.RawSetString(k, toLua(L, e))
		}
		return t
	}
	return lua.LString("")
}

func cond(t v1alpha1.ConditionType, status metav1.ConditionStatus, reason, msg string) metav1.Condition {
	return metav1.Condition{Type: string(t), Status: status, Reason: reason, Message: msg, LastTransitionTime: metav1.Now()}
}

func job(gen, observed int64, stage v1alpha1.Stage, conds ...metav1.Condition) *v1alpha1.DistillationJob {
	return &v1alpha1.DistillationJob{
		ObjectMeta: metav1.ObjectMeta{Name: "dj", Namespace: "ns", Generation: gen},
		Status:     v1alpha1.DistillationJobStatus{ObservedGeneration: observed, Stage: stage, Progress: "4500/5000", Conditions: conds},
	}
}

func model(gen, observed int64, conds ...metav1.Condition) *v1alpha1.StudentModel {
	return &v1alpha1.StudentModel{
		ObjectMeta: metav1.ObjectMeta{Name: "sm", Namespace: "ns", Generation: gen},
		Status:     v1alpha1.StudentModelStatus{ObservedGeneration: observed, Conditions: conds},
	}
}

const (
	T = metav1.ConditionTrue
	F = metav1.ConditionFalse
)

func TestDistillationJobHealth(t *testing.T) {
	cases := []struct {
		name        string
		obj         *v1alpha1.DistillationJob
		wantStatus  string
		wantMessage string
	}{
		{name: "new, no status", obj: job(1, 0, ""), wantStatus: "Progressing", wantMessage: "observe"},
		{name: "running", obj: job(1, 1, v1alpha1.StageAnnotating,
			cond(v1alpha1.ConditionSuspended, F, "NotSuspended", ""), cond(v1alpha1.ConditionComplete, F, "InProgress", ""),
			cond(v1alpha1.ConditionFailed, F, "InProgress", "")), wantStatus: "Progressing", wantMessage: "Annotating 4500/5000"},
		{name: "suspended", obj: job(2, 2, v1alpha1.StageSuspended,
			cond(v1alpha1.ConditionSuspended, T, "Suspended", "spec.suspend is true"), cond(v1alpha1.ConditionComplete, F, "InProgress", "")),
			wantStatus: "Suspended", wantMessage: "spec.suspend is true"},
		{name: "succeeded", obj: job(1, 1, v1alpha1.StageSucceeded,
			cond(v1alpha1.ConditionComplete, T, "Succeeded", "student model dj is trained"), cond(v1alpha1.ConditionFailed, F, "Succeeded", "")),
			wantStatus: "Healthy", wantMessage: "student model dj is trained"},
		{name: "failed", obj: job(1, 1, v1alpha1.StageFailed,
			cond(v1alpha1.ConditionComplete, F, "TeacherUnreachable", "the job failed"),
			cond(v1alpha1.ConditionFailed, T, "TeacherUnreachable", "teacher http://t:8000/v1 unreachable")),
			wantStatus: "Degraded", wantMessage: "TeacherUnreachable: teacher http://t:8000/v1 unreachable"},
		{name: "failed while suspended is still failed", obj: job(3, 3, v1alpha1.StageFailed,
			cond(v1alpha1.ConditionSuspended, T, "Suspended", ""), cond(v1alpha1.ConditionFailed, T, "DeadlineExceeded", "too long")),
			wantStatus: "Degraded", wantMessage: "DeadlineExceeded"},
		{name: "observedGeneration stale", obj: job(3, 2, v1alpha1.StageSucceeded,
			cond(v1alpha1.ConditionComplete, T, "Succeeded", "done")), wantStatus: "Progressing", wantMessage: "observe"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, msg := health(t, "distillationjob-health.lua", tc.obj)
			if status != tc.wantStatus || !strings.Contains(msg, tc.wantMessage) {
				t.Errorf("health = %s %q, want %s containing %q", status, msg, tc.wantStatus, tc.wantMessage)
			}
		})
	}
}

func TestStudentModelHealth(t *testing.T) {
	cases := []struct {
		name        string
		obj         *v1alpha1.StudentModel
		wantStatus  string
		wantMessage string
	}{
		{name: "new, no status", obj: model(1, 0), wantStatus: "Progressing", wantMessage: "observe"},
		{name: "ready", obj: model(1, 1, cond(v1alpha1.ConditionStopped, F, "Running", ""), cond(v1alpha1.ConditionReady, T, "Serving", "2/2 replicas ready")),
			wantStatus: "Healthy", wantMessage: "2/2 replicas ready"},
		{name: "not ready", obj: model(1, 1, cond(v1alpha1.ConditionStopped, F, "Running", ""), cond(v1alpha1.ConditionReady, F, "ReplicasNotReady", "0/1 replicas ready")),
			wantStatus: "Progressing", wantMessage: "0/1 replicas ready"},
		{name: "stopped", obj: model(2, 2, cond(v1alpha1.ConditionStopped, T, "Stopped", "spec.stopped is true"), cond(v1alpha1.ConditionReady, T, "Stopped", "the model is stopped")),
			wantStatus: "Suspended", wantMessage: "spec.stopped is true"},
		{name: "stalled", obj: model(1, 1, cond(v1alpha1.ConditionStopped, F, "Running", ""), cond(v1alpha1.ConditionStalled, T, "ProgressDeadlineExceeded", "timed out progressing"),
			cond(v1alpha1.ConditionReady, F, "ProgressDeadlineExceeded", "0/1 replicas ready")),
			wantStatus: "Degraded", wantMessage: "timed out progressing"},
		{name: "observedGeneration stale", obj: model(2, 1, cond(v1alpha1.ConditionReady, T, "Serving", "1/1")),
			wantStatus: "Progressing", wantMessage: "observe"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, msg := health(t, "studentmodel-health.lua", tc.obj)
			if status != tc.wantStatus || !strings.Contains(msg, tc.wantMessage) {
				t.Errorf("health = %s %q, want %s containing %q", status, msg, tc.wantStatus, tc.wantMessage)
			}
		})
	}
}

// TestKustomizationEmbedsTheScripts checks that the argocd-cm patch carries each script under the key
// Argo CD reads (resource.customizations.health.<group>_<kind>).
func TestKustomizationEmbedsTheScripts(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(argocdDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		ConfigMapGenerator []struct {
			Name     string   `json:"name"`
			Behavior string   `json:"behavior"`
			Files    []string `json:"files"`
		} `json:"configMapGenerator"`
	}
	if err := yaml.Unmarshal(b, &k); err != nil {
		t.Fatal(err)
	}
	if len(k.ConfigMapGenerator) != 1 || k.ConfigMapGenerator[0].Name != "argocd-cm" || k.ConfigMapGenerator[0].Behavior != "merge" {
		t.Fatalf("configMapGenerator = %+v, want a merge into argocd-cm", k.ConfigMapGenerator)
	}
	want := map[string]string{
		"resource.customizations.health.distillery.dev_DistillationJob": "distillationjob-health.lua",
		"resource.customizations.health.distillery.dev_StudentModel":    "studentmodel-health.lua",
	}
	got := map[string]string{}
	for _, f := range k.ConfigMapGenerator[0].Files {
		key, file, _ := strings.Cut(f, "=")
		got[key] = file
		if _, err := os.Stat(filepath.Join(argocdDir, file)); err != nil {
			t.Errorf("%s refers to a missing file: %v", key, err)
		}
	}
	for key, file := range want {
		if got[key] != file {
			t.Errorf("argocd-cm key %s = %q, want %q", key, got[key], file)
		}
	}
}
