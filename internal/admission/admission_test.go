package admission

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/distillery-dev/distillery/internal/testenv"
)

// Offline admission against a real kube-apiserver (envtest) with the same CRDs: for good and bad
// objects, the error messages are equal character for character, and a good object is stored with the
// same defaults.

var (
	k8sClient  client.Client
	restConfig *rest.Config
)

func TestMain(m *testing.M) { os.Exit(runSuite(m)) }

func runSuite(m *testing.M) int {
	env, cfg, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer env.Stop()
	restConfig = cfg
	if k8sClient, err = client.New(cfg, client.Options{}); err != nil {
		fmt.Fprintf(os.Stderr, "creating test client: %v\n", err)
		return 1
	}
	return m.Run()
}

// sample reads a file of config/samples as a map, to edit.
func sample(t *testing.T, name string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "config", "samples", name))
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := yaml.Unmarshal(b, &obj); err != nil {
		t.Fatal(err)
	}
	return obj
}

const (
	jobSample   = "distillery_v1alpha1_distillationjob.yaml"
	modelSample = "distillery_v1alpha1_studentmodel.yaml"
	sweepSample = "distillery_v1alpha1_distillationjob_sweep.yaml"
)

func set(obj map[string]any, value any, path ...string) {
	if err := unstructured.SetNestedField(obj, value, path...); err != nil {
		panic(err)
	}
}

func TestMessagesAreTheAPIServers(t *testing.T) {
	cases := []struct {
		name   string
		sample string
		edit   func(obj map[string]any)
		// wantErr is a part of the message both must give; empty for a good object.
		wantErr string
	}{
		{name: "the job sample", sample: jobSample, edit: func(map[string]any) {}},
		{name: "the model sample", sample: modelSample, edit: func(map[string]any) {}},
		{name: "the sweep sample", sample: sweepSample, edit: func(map[string]any) {}},
		{name: "a budget's maxCost without both prices (CEL)", sample: jobSample, edit: func(o map[string]any) {
			budget := o["spec"].(map[string]any)["teacher"].(map[string]any)["budget"].(map[string]any)
			delete(budget, "completionPricePerMillion")
			budget["maxCost"] = "10"
		}, wantErr: "spec.teacher.budget.maxCost needs promptPricePerMillion and completionPricePerMillion"},
		{name: "a minimal job, defaults filled in", sample: jobSample, edit: func(o map[string]any) {
			spec := o["spec"].(map[string]any)
			for _, k := range []string{"annotation", "training", "serving", "storage", "ttlSecondsAfterFinished"} {
				delete(spec, k)
			}
			set(o, map[string]any{"endpoint": "https://api.example.com/v1", "model": "m"}, "spec", "teacher")
		}},
		{name: "minimum (OpenAPI)", sample: jobSample, edit: func(o map[string]any) {
			set(o, int64(0), "spec", "teacher", "maxConcurrency")
		}, wantErr: "spec.teacher.maxConcurrency: Invalid value: 0: spec.teacher.maxConcurrency in body should be greater than or equal to 1"},
		{name: "one label (CEL)", sample: jobSample, edit: func(o map[string]any) {
			set(o, []any{"first"}, "spec", "task", "labels")
		}, wantErr: "spec.task.labels must list at least 2 labels"},
		{name: "two dataset sources (CEL)", sample: jobSample, edit: func(o map[string]any) {
			set(o, map[string]any{"claimName": "data", "path": "train.jsonl"}, "spec", "dataset", "persistentVolumeClaim")
		}, wantErr: "spec.dataset must set exactly one source"},
		{name: "a key in the endpoint (CEL with a reason)", sample: jobSample, edit: func(o map[string]any) {
			set(o, "https://user:sk-123@api.example.com/v1", "spec", "teacher", "endpoint")
		}, wantErr: "spec.teacher.endpoint: Forbidden: spec.teacher.endpoint must not carry credentials"},
		{name: "evalFraction out of range (CEL on a string)", sample: jobSample, edit: func(o map[string]any) {
			set(o, "0.9", "spec", "dataset", "evalFraction")
		}, wantErr: "spec.dataset.evalFraction must be greater than 0 and at most 0.5"},
		{name: "unknown fields (strict field validation)", sample: jobSample, edit: func(o map[string]any) {
			set(o, "gpt", "spec", "teacher", "modle")
			set(o, int64(1), "spec", "replicas")
		}, wantErr: `strict decoding error: unknown field "spec.replicas", unknown field "spec.teacher.modle"`},
		{name: "a wrong type stops the CEL rules", sample: jobSample, edit: func(o map[string]any) {
			set(o, "many", "spec", "teacher", "maxTokens")
			set(o, []any{"first"}, "spec", "task", "labels")
		}, wantErr: "some validation rules were not checked"},
		{name: "a required field missing", sample: jobSample, edit: func(o map[string]any) {
			delete(o["spec"].(map[string]any), "student")
		}, wantErr: `spec.student: Required value`},
		{name: "a name with a dot (CEL on metadata) and too long", sample: jobSample, edit: func(o map[string]any) {
			set(o, "my.job-"+strings.Repeat("x", 50), "metadata", "name")
		}, wantErr: "metadata.name must be at most 50 characters"},
		{name: "duplicate labels in a set", sample: jobSample, edit: func(o map[string]any) {
			set(o, []any{"first", "second", "first"}, "spec", "task", "labels")
		}, wantErr: `Duplicate value: "first"`},
		{name: "several errors at once", sample: jobSample, edit: func(o map[string]any) {
			set(o, int64(300), "spec", "annotation", "shards")
			set(o, "0", "spec", "training", "rationaleWeight")
			set(o, "ftp://teacher/v1", "spec", "teacher", "endpoint")
		}, wantErr: "spec.annotation.shards"},
		{name: "model replicas below 0 (scale subresource)", sample: modelSample, edit: func(o map[string]any) {
			set(o, int64(-1), "spec", "serving", "replicas")
		}, wantErr: "spec.serving.replicas"},
		{name: "an example's label outside the labels (CEL with a fieldPath)", sample: jobSample, edit: func(o map[string]any) {
			set(o, []any{map[string]any{"input": "x", "rationale": "y", "label": "third"}}, "spec", "task", "examples")
		}, wantErr: "every example's label must be one of spec.task.labels"},
	}
	ctx := context.Background()
	offline, err := Distillery()
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns := fmt.Sprintf("case-%d", i)
			obj := sample(t, tc.sample)
			tc.edit(obj)
			doc, err := yaml.Marshal(obj)
			if err != nil {
				t.Fatal(err)
			}

			server := &unstructured.Unstructured{Object: deepCopy(obj)}
			server.SetNamespace(ns)
			ensureNamespace(t, ns)
			serverErr := k8sClient.Create(ctx, server, client.FieldValidation("Strict"))

			docs, err := offline.CreateAll(ctx, doc, ns)
			if err != nil || len(docs) != 1 {
				t.Fatalf("CreateAll = %d documents, %v", len(docs), err)
			}
			ours := docs[0]
			switch {
			case serverErr == nil && ours.Err == nil:
				if tc.wantErr != "" {
					t.Fatalf("both admitted it; want an error with %q", tc.wantErr)
				}
				if !reflect.DeepEqual(server.Object["spec"], ours.Object.Object["spec"]) {
					t.Errorf("the defaulted specs differ:\napiserver %v\noffline   %v", server.Object["spec"], ours.Object.Object["spec"])
				}
			case serverErr == nil || ours.Err == nil:
				t.Fatalf("apiserver: %v\noffline:   %v", serverErr, ours.Err)
			default:
				if !sameMessage(serverErr, ours.Err) {
					t.Errorf("messages differ:\napiserver: %s\noffline:   %s", serverErr, ours.Err)
				}
				if tc.wantErr == "" || !strings.Contains(ours.Err.Error(), tc.wantErr) {
					t.Errorf("message %q does not contain %q", ours.Err, tc.wantErr)
				}
			}
		})
	}
}

// sameMessage compares two refusals. With several field errors the apiserver's own order is not fixed
// (its CEL validator walks the object's maps in Go's random map order), so those compare as the same
// message prefix and the same multiset of causes; anything else compares as the exact text.
func sameMessage(server, offline error) bool {
	if server.Error() == offline.Error() {
		return true
	}
	s, ok1 := server.(apierrors.APIStatus)
	o, ok2 := offline.(apierrors.APIStatus)
	if !ok1 || !ok2 || s.Status().Details == nil || o.Status().Details == nil {
		return false
	}
	causes := func(st metav1.Status) []string {
		var out []string
		for _, c := range st.Details.Causes {
			out = append(out, fmt.Sprintf("%s|%s|%s", c.Type, c.Field, c.Message))
		}
		sort.Strings(out)
		return out
	}
	prefix := func(err error) string { return strings.SplitN(err.Error(), ": ", 2)[0] }
	return prefix(server) == prefix(offline) && reflect.DeepEqual(causes(s.Status()), causes(o.Status()))
}

func deepCopy(m map[string]any) map[string]any {
	return (&unstructured.Unstructured{Object: m}).DeepCopy().Object
}

func ensureNamespace(t *testing.T, ns string) {
	t.Helper()
	obj := &unstructured.Unstructured{}
	obj.SetAPIVersion("v1")
	obj.SetKind("Namespace")
	obj.SetName(ns)
	if err := k8sClient.Create(context.Background(), obj); err != nil {
		t.Fatal(err)
	}
}
