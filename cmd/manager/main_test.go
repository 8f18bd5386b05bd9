package main

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	utiltesting "github.com/distillery-dev/distillery/controllers/testing"
	"github.com/distillery-dev/distillery/internal/testenv"
)

// The operator as its flags build it, against a real apiserver (envtest): --watch-namespaces confines it
// to the listed namespaces, where a namespace-scoped install's Roles suffice, and --allowed-image-prefixes
// refuses other image overrides before any child.

var restConfig *rest.Config

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	env, cfg, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	restConfig = cfg
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"--allowed-image-prefixes= registry.example.com/ml/,,ghcr.io/acme/ ", "--watch-namespaces=team-a,team-b"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"registry.example.com/ml/", "ghcr.io/acme/"}; !reflect.DeepEqual(o.cfg.AllowedImagePrefixes, want) {
		t.Errorf("allowed prefixes = %q, want %q", o.cfg.AllowedImagePrefixes, want)
	}
	if want := []string{"team-a", "team-b"}; !reflect.DeepEqual(o.watchNamespaces, want) {
		t.Errorf("watch namespaces = %q, want %q", o.watchNamespaces, want)
	}
	if o, _ := parseFlags(nil); o.cfg.AllowedImagePrefixes != nil || o.watchNamespaces != nil {
		t.Errorf("defaults: allowed %q, namespaces %q; want none (any image, every namespace)", o.cfg.AllowedImagePrefixes, o.watchNamespaces)
	}
	// --pod-start-grace: 2m unless set (docs/operating.md).
	if o, _ := parseFlags(nil); o.cfg.PodStartGrace != 2*time.Minute {
		t.Errorf("default --pod-start-grace = %s, want 2m", o.cfg.PodStartGrace)
	}
	if o, err := parseFlags([]string{"--pod-start-grace=5m30s"}); err != nil || o.cfg.PodStartGrace != 5*time.Minute+30*time.Second {
		t.Errorf("--pod-start-grace=5m30s: %s (%v)", o.cfg.PodStartGrace, err)
	}
}

// The namespace-scoped install (config/namespaced, rendered by the real kubectl kustomize), with an image
// allow-list: the operator runs as its service account with only the overlay's Role and RoleBinding
// (envtest's apiserver authorizes with RBAC) and the overlay's --watch-namespaces.
func TestTheNamespacedInstallWithAnImageAllowList(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := client.New(restConfig, client.Options{Scheme: newScheme()})
	if err != nil {
		t.Fatal(err)
	}
	role, binding, deploy := renderNamespacedOverlay(t)
	watched, other := role.Namespace, namespace(t, c)
	for _, ns := range []string{watched, binding.Subjects[0].Namespace} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, obj := range []client.Object{role, binding} {
		if err := c.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	var watchArgs []string
	for _, a := range deploy.Spec.Template.Spec.Containers[0].Args {
		if strings.HasPrefix(a, "--watch-namespaces=") {
			watchArgs = append(watchArgs, a)
		}
	}
	if len(watchArgs) != 1 || watchArgs[0] != "--watch-namespaces="+watched {
		t.Fatalf("the overlay's manager args %q should watch the Role's namespace %s", deploy.Spec.Template.Spec.Containers[0].Args, watched)
	}
	o, err := parseFlags(append(watchArgs, "--allowed-image-prefixes=registry.example.com/",
		"--metrics-bind-address=0", "--health-probe-bind-address=0"))
	if err != nil {
		t.Fatal(err)
	}
	asOperator := rest.CopyConfig(restConfig)
	sa := binding.Subjects[0]
	asOperator.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + sa.Namespace + ":" + sa.Name,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + sa.Namespace, "system:authenticated"},
	}
	mgr, err := newManager(asOperator, o)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	defer func() {
		cancel()
		select { // a manager whose caches never synced (missing rights) may take minutes to stop
		case <-done:
		case <-time.After(10 * time.Second):
		}
	}()

	create := func(obj client.Object) {
		t.Helper()
		if err := c.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	create(utiltesting.MakeJob("ignored", other).Obj())
	create(utiltesting.MakeJob("runs", watched).Obj())
	refusedJob := utiltesting.MakeJob("elsewhere", watched).Obj()
	refusedJob.Spec.Training.Image = "evil.example.org/trainer:1"
	create(refusedJob)
	create(utiltesting.MakeModel("served-elsewhere", watched).Image("evil.example.org/server:1").Obj())

	// In the watched namespace: an allowed job gets its workspace (every kind of the Role: ConfigMaps,
	// PVC, ServiceAccount, Role, RoleBinding) and then its stage Job; refused specs fail naming the field
	// and the allowed prefixes, and get nothing.
	waitFor(t, "the allowed job's annotation Job, made with the Role's rights only", func() error {
		return c.Get(ctx, client.ObjectKey{Namespace: watched, Name: "runs-annotate"}, &batchv1.Job{})
	})
	waitFor(t, "the refused job to fail with InvalidSpec", func() error {
		var dj v1alpha1.DistillationJob
		if err := c.Get(ctx, client.ObjectKey{Namespace: watched, Name: "elsewhere"}, &dj); err != nil {
			return err
		}
		return wantCondition(dj.Status.Conditions, v1alpha1.ConditionFailed, metav1.ConditionTrue, "spec.training.image", "registry.example.com/")
	})
	if err := c.Get(ctx, client.ObjectKey{Namespace: watched, Name: "elsewhere-config"}, &corev1.ConfigMap{}); err == nil {
		t.Errorf("the refused job got a child")
	}
	waitFor(t, "the refused model to be not Ready with InvalidSpec", func() error {
		var sm v1alpha1.StudentModel
		if err := c.Get(ctx, client.ObjectKey{Namespace: watched, Name: "served-elsewhere"}, &sm); err != nil {
			return err
		}
		return wantCondition(sm.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, "spec.serving.image", "registry.example.com/")
	})

	// Elsewhere: nothing, though the operator has had time to reconcile the watched namespace.
	var dj v1alpha1.DistillationJob
	if err := c.Get(ctx, client.ObjectKey{Namespace: other, Name: "ignored"}, &dj); err != nil {
		t.Fatal(err)
	}
	var cms corev1.ConfigMapList
	if err := c.List(ctx, &cms, client.InNamespace(other), client.HasLabels{"distillery.dev/job"}); err != nil {
		t.Fatal(err)
	}
	if len(dj.Status.Conditions) != 0 || len(cms.Items) != 0 {
		t.Errorf("a job outside --watch-namespaces was reconciled: conditions %+v, %d ConfigMaps", dj.Status.Conditions, len(cms.Items))
	}
}

func namespace(t *testing.T, c client.Client) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "watch-"}}
	if err := c.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

func wantCondition(conds []metav1.Condition, ct v1alpha1.ConditionType, status metav1.ConditionStatus, mentions ...string) error {
	cond := meta.FindStatusCondition(conds, string(ct))
	if cond == nil || cond.Status != status || cond.Reason != string(v1alpha1.ReasonInvalidSpec) {
		return fmt.Errorf("%s is %+v, want %s with reason InvalidSpec", ct, cond, status)
	}
	for _, m := range mentions {
		if !strings.Contains(cond.Message, m) {
			return fmt.Errorf("%s message %q does not mention %s", ct, cond.Message, m)
		}
	}
	return nil
}

func waitFor(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
